"""``representation.kind: deeplab`` — DeepLab-style ultrasound lesion segmentation (2021): a ResNet-style backbone
(:mod:`.encoder`) — 7x7 stride-2 stem, two stride-2 residual stages, then atrous residual blocks (dilation 2 and 4)
at output stride 8. Its own segmentation head (:mod:`.heads`, ``head.kind: auto``):

- ``deeplab_segmentation``: ASPP (``aspp_rates``, default 6, 12, 18, 24, + image pooling) on the deepest
  features, a 1x1 classifier, bilinear upsampling to the input size.
"""

from __future__ import annotations

from typing import List, Literal

from pydantic import Field, field_validator

from umsrep.models import Encoder, Head
from umsrep.registry import ENCODERS, HEADS
from umsrep.settings import EncoderSettings, HeadSettings


class DeepLabSettings(EncoderSettings):
    kind: Literal["deeplab"] = "deeplab"
    DEFAULT_FILTERS = [32, 64, 128, 256]

    @field_validator("filters")
    @classmethod
    def _four(cls, v):
        if v is not None and len(v) != 4:
            raise ValueError("deeplab takes 4 widths (stem, stage1, stage2, atrous stage)")
        return v


class DeepLabSegmentationHead(HeadSettings):
    kind: Literal["deeplab_segmentation"] = "deeplab_segmentation"
    aspp_rates: List[int] = Field(default_factory=lambda: [6, 12, 18, 24], description="ASPP rates")


ENCODERS.register("deeplab", Encoder(DeepLabSettings, "umsrep.models.deeplab.encoder:build",
                                     heads={"segmentation": "deeplab_segmentation"}))
HEADS.register("deeplab_segmentation", Head(DeepLabSegmentationHead, "umsrep.models.deeplab.heads:segmentation",
                                            ("segmentation",)))
