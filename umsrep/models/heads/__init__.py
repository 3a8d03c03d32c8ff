"""The standard heads, for any encoder's feature pyramid (:mod:`umsrep.models.pyramid`):

- ``segmentation`` (:mod:`.segmentation`): the symmetric upsampling decoder of :mod:`.decoder`, optionally with
  U-Net skip connections (``skips``); binary: one sigmoid channel, multi-class: softmax over background + classes;
- ``classification`` (:mod:`.classification`): GAP -> Dense(ReLU) -> Dropout -> softmax on the deepest level;
- ``denoise`` (:mod:`.denoise`): the denoising autoencoder's decoder (the representation stage's, not a task's);
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


class SegmentationHead(HeadSettings):
    kind: Literal["segmentation"] = "segmentation"
    filters: Optional[List[int]] = Field(None, description="decoder widths, deepest first (default: the "
                                                           "encoder's, mirrored)")
    skips: bool = Field(False, description="concatenate encoder features (U-Net style)")


class ClassificationHead(HeadSettings):
    kind: Literal["classification"] = "classification"
    units: int = Field(128, ge=1, description="Dense width")
    dropout: float = Field(0.5, ge=0, lt=1)


class DenoiseHead(HeadSettings):
    kind: Literal["denoise"] = "denoise"
    filters: Optional[List[int]] = Field(None, description="decoder widths, deepest first (default: mirrored)")
    channels: int = Field(1, ge=1, description="image channels reconstructed")


HEADS.register("auto", Head(AutoHead, "umsrep.models.heads:_no_builder", TASK_TYPES))
HEADS.register("segmentation", Head(SegmentationHead, "umsrep.models.heads.segmentation:build", ("segmentation",),
                                    default=True))
HEADS.register("classification", Head(ClassificationHead, "umsrep.models.heads.classification:build",
                                      ("classification",), default=True))
HEADS.register("denoise", Head(DenoiseHead, "umsrep.models.heads.denoise:build", ("denoise",)))


def _no_builder(*_args, **_kwargs):
    raise ValueError("head kind 'auto' must be resolved first (umsrep.models.resolve_head)")
