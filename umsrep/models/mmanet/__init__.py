"""``representation.kind: mmanet`` — MMA-Net (Entropy 2023): five U-Net levels of residual blocks (2x2 max-pool
between levels), ASPP (rates 1, 6, 12, 18 + image pooling) after the residual blocks of levels 2, 3 and 4
(:mod:`.encoder`). Its own heads (:mod:`.heads`, chosen by ``head.kind: auto``):

- ``mmanet_classification``: the classification branch — from pyramid level ``branch_level`` (1-based, default
  3): coordinate attention (``attention``), VGG-like stages (two 3x3 conv + BN + ReLU, 2x2 max-pool) down to the
  deepest resolution, the **connection** (``connection``: the segmentation branch's deepest features
  concatenated in), GAP -> Dense(ReLU) -> Dropout -> softmax;
- ``mmanet_segmentation``: coordinate attention on the deepest features, then the U-Net decoder with skip
  connections from every level (sigmoid / softmax output).
"""

from __future__ import annotations

from typing import List, Literal, Optional

from pydantic import Field

from umsrep.models import Encoder, Head
from umsrep.registry import ENCODERS, HEADS
from umsrep.settings import EncoderSettings, HeadSettings


class MMANetSettings(EncoderSettings):
    kind: Literal["mmanet"] = "mmanet"
    DEFAULT_FILTERS = [16, 32, 64, 128, 256]

    aspp: bool = Field(True, description="ASPP after the residual blocks of levels 2, 3, 4")
    aspp_rates: List[int] = Field(default_factory=lambda: [1, 6, 12, 18], description="encoder ASPP rates")


class MMANetClassificationHead(HeadSettings):
    kind: Literal["mmanet_classification"] = "mmanet_classification"
    units: int = Field(128, ge=1, description="Dense width")
    dropout: float = Field(0.5, ge=0, lt=1)
    attention: bool = Field(True, description="coordinate attention at the start of the branch")
    connection: bool = Field(True, description="concatenate the segmentation branch's deepest features into the "
                                               "classification branch")
    branch_level: int = Field(3, ge=1, le=8, description="levels shared before the classification branch leaves "
                                                         "(1-based)")


class MMANetSegmentationHead(HeadSettings):
    kind: Literal["mmanet_segmentation"] = "mmanet_segmentation"
    filters: Optional[List[int]] = Field(None, description="decoder widths, deepest first (default: mirrored)")
    attention: bool = Field(True, description="coordinate attention on the deepest features")


ENCODERS.register("mmanet", Encoder(MMANetSettings, "umsrep.models.mmanet.encoder:build",
                                    heads={"classification": "mmanet_classification",
                                           "segmentation": "mmanet_segmentation"}))
HEADS.register("mmanet_classification", Head(MMANetClassificationHead, "umsrep.models.mmanet.heads:classification",
                                             ("classification",)))
HEADS.register("mmanet_segmentation", Head(MMANetSegmentationHead, "umsrep.models.mmanet.heads:segmentation",
                                           ("segmentation",)))
