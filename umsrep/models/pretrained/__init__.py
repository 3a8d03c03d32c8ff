"""``representation.kind: pretrained`` — a shipped or published encoder (:mod:`umsrep.pretrained`), loaded with
its card (SHA-256 verified), not built: ``name`` is a shipped encoder (``umsrep pretrained list``) or the path
of an encoder folder with card.yaml. Its heads are those of the architecture the card names."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from umsrep.models import Encoder
from umsrep.registry import ENCODERS
from umsrep.settings import RepresentationSettings


class PretrainedSettings(RepresentationSettings):
    kind: Literal["pretrained"] = "pretrained"
    name: Optional[str] = Field(None, description="a shipped encoder (`umsrep pretrained list`) or the path of an "
                                                  "encoder folder with card.yaml")

    @model_validator(mode="after")
    def _pretrained(self):
        if not self.name:
            raise ValueError("kind: pretrained needs `name` (a shipped encoder or an encoder folder path)")
        if self.init_from:
            raise ValueError("give either kind: pretrained with `name`, or `init_from`, not both")
        if self.train not in ("auto", "none"):
            raise ValueError("kind: pretrained is loaded, not trained here: leave `train` unset")
        return self

    @property
    def source(self):
        return self.name


ENCODERS.register("pretrained", Encoder(PretrainedSettings, None))
