"""The transform registry and the base classes; importing this module imports no TensorFlow.

A transform is a small pydantic settings class (its probability ``p`` and its ranges) registered by name in
:data:`TRANSFORMS`. The class also carries the TensorFlow ops that draw its random parameters and apply it, so
one transform lives in one place; TensorFlow is imported inside those methods, when a pipeline is built.

Two kinds:

* :class:`SpatialTransform` - moves pixels; applied identically to the image and to every mask (label maps,
  nearest neighbour). Affine ones return a 3x3 matrix; all of a sample's matrices are composed into one warp
  so the image is interpolated once.
* :class:`IntensityTransform` - changes image values only; masks and labels are never touched.

Randomness is stateless: every draw is keyed by the per-sample seed pair ``(seed, sample counter)`` folded with
a fixed number per transform name (:func:`salt`), so a sample's augmentation depends only on the run's seed, the
sample counter and the transform's own settings - not on which other transforms are on.
"""

from __future__ import annotations

import zlib
from typing import ClassVar, Tuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from umsrep.registry import Registry

#: name -> transform settings class (a subclass of :class:`Transform`)
TRANSFORMS: Registry = Registry("transform")


class Transform(BaseModel):
    """Settings of one transform: ``p`` = probability that a sample gets it."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    kind: ClassVar[str] = ""
    #: application order within its kind (intensity: noise before blur before brightness ... as in nnU-Net)
    order: ClassVar[int] = 0
    p: float = Field(0.2, ge=0, le=1, description="probability that a training sample gets this transform")

    @classmethod
    def describe(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0]


class SpatialTransform(Transform):
    kind: ClassVar[str] = "spatial"

    def matrix(self, height: int, width: int, seed):
        """The inverse map (output pixel -> input pixel) as a 3x3 float32 matrix in pixel coordinates centred
        on the image centre, or None when the transform is not affine."""
        return None

    def displacement(self, height: int, width: int, seed):
        """A dense (H, W, 2) displacement (rows, columns) in pixels added to the sampling positions, or None."""
        return None


class IntensityTransform(Transform):
    kind: ClassVar[str] = "intensity"

    def apply(self, image, seed):
        """The transformed (H, W, C) float32 image; the caller clips to [0, 1]."""
        raise NotImplementedError


def salt(name: str) -> int:
    """A fixed 31-bit number per transform name, folded into the sample's seed."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


def check_range(v, lo=None, hi=None, positive=False) -> Tuple[float, float]:
    """A ``[min, max]`` pair (a single number ``a`` means ``[a, a]``) with ``min <= max`` inside ``[lo, hi]``."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = (v, v)
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ValueError("expected [min, max]")
    a, b = (float(x) for x in v)
    if not a <= b:
        raise ValueError(f"[min, max] needs min <= max: [{a:g}, {b:g}]")
    if lo is not None and a < lo or hi is not None and b > hi:
        raise ValueError(f"range [{a:g}, {b:g}] must lie within [{lo:g}, {hi:g}]")
    if positive and a <= 0:
        raise ValueError(f"range [{a:g}, {b:g}] must be > 0")
    return a, b


def range_validator(*fields, lo=None, hi=None, positive=False):
    """A pydantic field validator turning ``fields`` into checked ``(min, max)`` tuples."""

    def _v(cls, v):
        return check_range(v, lo, hi, positive)

    return field_validator(*fields, mode="before")(classmethod(_v))
