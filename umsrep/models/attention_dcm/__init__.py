"""``representation.kind: attention_dcm`` — the attention encoder-decoder for dilated cardiomyopathy (2019).
The extraction path (:mod:`.encoder`): per level a 1x1 conv + BN + ReLU and a residual block, 2x2 max-pool
between levels. Its own heads (:mod:`.heads`, chosen by ``head.kind: auto``):

- ``dcm_classification``: the attention path — two residual attention modules ``(1 + M)·T`` on the deepest
  features (projected to at most 64 channels by a 1x1 conv) — then GAP -> Dense(ReLU) -> Dropout -> softmax;
- ``dcm_segmentation``: the recovery path — transposed convolutions with skip connections.
"""

from __future__ import annotations

from typing import List, Literal, Optional

from pydantic import Field

from umsrep.models import Encoder, Head
from umsrep.registry import ENCODERS, HEADS
from umsrep.settings import EncoderSettings, HeadSettings


class AttentionDCMSettings(EncoderSettings):
    kind: Literal["attention_dcm"] = "attention_dcm"
    DEFAULT_FILTERS = [32, 64, 128, 256]


class DCMClassificationHead(HeadSettings):
    kind: Literal["dcm_classification"] = "dcm_classification"
    units: int = Field(128, ge=1, description="Dense width")
    dropout: float = Field(0.5, ge=0, lt=1)


class DCMSegmentationHead(HeadSettings):
    kind: Literal["dcm_segmentation"] = "dcm_segmentation"
    filters: Optional[List[int]] = Field(None, description="decoder widths, deepest first (default: mirrored)")


ENCODERS.register("attention_dcm", Encoder(AttentionDCMSettings, "umsrep.models.attention_dcm.encoder:build",
                                           heads={"classification": "dcm_classification",
                                                  "segmentation": "dcm_segmentation"}))
HEADS.register("dcm_classification", Head(DCMClassificationHead, "umsrep.models.attention_dcm.heads:classification",
                                          ("classification",)))
HEADS.register("dcm_segmentation", Head(DCMSegmentationHead, "umsrep.models.attention_dcm.heads:segmentation",
                                        ("segmentation",)))
