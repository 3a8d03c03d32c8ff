"""``representation.kind: lightweight`` — the lightweight myositis classifier (2024): per stage a stride-2
depthwise-separable conv and a conventional 3x3 conv (each + BN + ReLU), then a soft-threshold attention block
(:mod:`.encoder`). Its heads are the standard ones (the classifier is the GAP head)."""

from __future__ import annotations

from typing import Literal

from umsrep.models import Encoder
from umsrep.registry import ENCODERS
from umsrep.settings import EncoderSettings


class LightweightSettings(EncoderSettings):
    kind: Literal["lightweight"] = "lightweight"
    DEFAULT_FILTERS = [16, 32, 64, 128]


ENCODERS.register("lightweight", Encoder(LightweightSettings, "umsrep.models.lightweight.encoder:build"))
