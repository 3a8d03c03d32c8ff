"""The standard heads, for any encoder's feature pyramid (:mod:`umsrep.models.pyramid`):

- ``unet`` (:mod:`.unet`, the default for segmentation tasks): the U-Net decoder — skip connections from every
  encoder level and the image itself at full resolution; binary: one sigmoid channel, multi-class: softmax over
  background + classes;
- ``symmetric`` (:mod:`.segmentation`): the UMS-Rep paper's symmetric upsampling decoder from the deepest level
  (no skips unless ``skips: true``), for reproducing the paper; ``segmentation`` is its older name;
- ``classification`` (:mod:`.classification`): GAP -> Dense(ReLU) -> Dropout -> softmax on the deepest level;
- ``denoise`` (:mod:`.denoise`): the representation stage's denoising decoder (not a task's): the U-Net decoder,
  or the paper's symmetric one (``representation.decoder``);
- ``auto``: the encoder architecture's own head for the task type, else the task type's default head (registered
  with ``default=True``: ``segmentation``, ``classification``) (:func:`umsrep.models.resolve_head`); the fields
  given with it belong to that head.
"""

from __future__ import annotations

from typing import List, Literal, Optional

from pydantic import ConfigDict, Field

from umsrep.models import Head
from umsrep.registry import HEADS
from umsrep.settings import HeadSettings

TASK_TYPES = ("segmentation", "classification")


class AutoHead(HeadSettings):
    """``kind: auto``: the fields are those of the head it resolves to, checked when the encoder is known."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    kind: Literal["auto"] = "auto"


class UNetHead(HeadSettings):
    kind: Literal["unet"] = "unet"
    filters: Optional[List[int]] = Field(None, description="decoder widths per step, deepest first, the last at the "
                                                           "input resolution (default: the encoder's, mirrored)")
    convs: int = Field(2, ge=1, le=4, description="3x3 conv + BN + ReLU per decoder step")


class SegmentationHead(HeadSettings):
    kind: Literal["segmentation"] = "segmentation"
    filters: Optional[List[int]] = Field(None, description="decoder widths, deepest first (default: the "
                                                           "encoder's, mirrored)")
    skips: bool = Field(False, description="concatenate encoder features (U-Net style)")


class SymmetricHead(SegmentationHead):
    kind: Literal["symmetric"] = "symmetric"


class ClassificationHead(HeadSettings):
    kind: Literal["classification"] = "classification"
    units: int = Field(128, ge=1, description="Dense width")
    dropout: float = Field(0.5, ge=0, lt=1)


class DenoiseHead(HeadSettings):
    kind: Literal["denoise"] = "denoise"
    filters: Optional[List[int]] = Field(None, description="decoder widths, deepest first (default: mirrored)")
    channels: int = Field(1, ge=1, description="image channels reconstructed")
    decoder: Literal["unet", "symmetric"] = Field("unet", description="unet: skip connections + the image at full "
                                                  "resolution; symmetric: the paper's skip-less decoder")
    convs: int = Field(2, ge=1, le=4, description="unet: 3x3 conv + BN + ReLU per decoder step")


HEADS.register("auto", Head(AutoHead, "umsrep.models.heads:_no_builder", TASK_TYPES))
HEADS.register("unet", Head(UNetHead, "umsrep.models.heads.unet:build", ("segmentation",), default=True))
HEADS.register("symmetric", Head(SymmetricHead, "umsrep.models.heads.segmentation:build", ("segmentation",)))
HEADS.register("segmentation", Head(SegmentationHead, "umsrep.models.heads.segmentation:build", ("segmentation",)))
HEADS.register("classification", Head(ClassificationHead, "umsrep.models.heads.classification:build",
                                      ("classification",), default=True))
HEADS.register("denoise", Head(DenoiseHead, "umsrep.models.heads.denoise:build", ("denoise",)))


def _no_builder(*_args, **_kwargs):
    raise ValueError("head kind 'auto' must be resolved first (umsrep.models.resolve_head)")
