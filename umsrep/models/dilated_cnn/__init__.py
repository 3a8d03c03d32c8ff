"""``representation.kind: supervised`` — the supervised UMS-Rep encoder: a dilated CNN (six 3x3 'same' conv
layers, ReLU, dilation in layers 4-6; :mod:`.encoder`), trained end to end with a classification head (GAP ->
Dense -> Dropout 0.5 -> softmax) on the task with most labels. With the default widths and a 128-unit head it has
~440k parameters (paper: ~460k). 2x2 max-pooling after layers 1-3 keeps it affordable at 256x256
(``pool_after``). Its heads are the standard ones.
"""

from __future__ import annotations

from typing import ClassVar, List, Literal

from pydantic import Field

from umsrep.models import Encoder
from umsrep.registry import ENCODERS
from umsrep.settings import EncoderSettings


class DilatedCNNSettings(EncoderSettings):
    kind: Literal["supervised"] = "supervised"
    DEFAULT_TRAINING: ClassVar[str] = "supervised"
    DEFAULT_FILTERS: ClassVar[list] = [32, 64, 64, 128, 128, 128]

    dilation: int = Field(2, ge=1, description="dilation rate of `dilated_layers`")
    dilated_layers: List[int] = Field(default_factory=lambda: [4, 5, 6])
    pool_after: List[int] = Field(default_factory=lambda: [1, 2, 3], description="2x2 max-pool after these "
                                                                                 "conv layers")


ENCODERS.register("supervised", Encoder(DilatedCNNSettings, "umsrep.models.dilated_cnn.encoder:build"))
