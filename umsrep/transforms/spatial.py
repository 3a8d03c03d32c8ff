"""Spatial transforms: applied identically to the image (bilinear) and to every mask (nearest neighbour).

Each affine transform returns its inverse map (output pixel -> input pixel) as a 3x3 matrix in pixel coordinates
``(x = column, y = row, 1)`` centred on the image centre; :mod:`umsrep.transforms.compose` multiplies a sample's
matrices in ``order`` (crop, scale, rotate, flips, translate) and warps once. Pixels that come from outside the
image are 0 in the image and background (0) in the masks.
"""

from __future__ import annotations

import math
from typing import ClassVar, Tuple

from pydantic import Field, field_validator

from umsrep.transforms.base import TRANSFORMS, SpatialTransform, check_range, range_validator


def _uniform(seed, lo, hi, shape=()):
    import tensorflow as tf

    return tf.random.stateless_uniform(list(shape), seed=seed, minval=lo, maxval=hi, dtype=tf.float32)


def _mat(rows):
    import tensorflow as tf

    return tf.stack([tf.stack([tf.cast(v, tf.float32) for v in r]) for r in rows])


@TRANSFORMS.register("flip_h")
class FlipH(SpatialTransform):
    """Horizontal flip (mirror left <-> right); wrong where sides matter (e.g. chest X-ray heart side)."""

    order: ClassVar[int] = 3
    p: float = Field(0.5, ge=0, le=1)

    def matrix(self, height, width, seed):
        return _mat([[-1, 0, 0], [0, 1, 0], [0, 0, 1]])


@TRANSFORMS.register("flip_v")
class FlipV(SpatialTransform):
    """Vertical flip (mirror top <-> bottom); wrong where the probe or patient orientation matters."""

    order: ClassVar[int] = 4
    p: float = Field(0.5, ge=0, le=1)

    def matrix(self, height, width, seed):
        return _mat([[1, 0, 0], [0, -1, 0], [0, 0, 1]])


@TRANSFORMS.register("rotate")
class Rotate(SpatialTransform):
    """Rotation about the image centre by an angle drawn uniformly from ``degrees``."""

    order: ClassVar[int] = 2
    degrees: Tuple[float, float] = Field((-15.0, 15.0), description="angle range in degrees; a number d means "
                                                                    "[-d, d]")

    @field_validator("degrees", mode="before")
    @classmethod
    def _deg(cls, v):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = (-abs(v), abs(v))
        return check_range(v, -180, 180)

    def matrix(self, height, width, seed):
        import tensorflow as tf

        a = _uniform(seed, *self.degrees) * (math.pi / 180.0)
        c, s = tf.cos(a), tf.sin(a)
        return _mat([[c, s, 0], [-s, c, 0], [0, 0, 1]])  # inverse of a rotation by a


@TRANSFORMS.register("scale")
class Scale(SpatialTransform):
    """Zoom about the image centre by a factor drawn from ``zoom`` (> 1 enlarges the content)."""

    order: ClassVar[int] = 1
    zoom: Tuple[float, float] = Field((0.85, 1.25), description="[min, max] zoom factor")
    isotropic: bool = Field(True, description="one factor for both axes (false: one per axis)")
    _zoom = range_validator("zoom", lo=0.1, hi=10, positive=True)

    def matrix(self, height, width, seed):
        z = _uniform(seed, *self.zoom, shape=(2,))
        zx, zy = (z[0], z[0]) if self.isotropic else (z[0], z[1])
        return _mat([[1 / zx, 0, 0], [0, 1 / zy, 0], [0, 0, 1]])


@TRANSFORMS.register("translate")
class Translate(SpatialTransform):
    """Shift by up to ``fraction`` of the image size along each axis."""

    order: ClassVar[int] = 5
    fraction: float = Field(0.1, ge=0, le=0.5, description="largest shift, as a fraction of height / width")

    def matrix(self, height, width, seed):
        t = _uniform(seed, -self.fraction, self.fraction, shape=(2,))
        return _mat([[1, 0, -t[0] * width], [0, 1, -t[1] * height], [0, 0, 1]])


@TRANSFORMS.register("crop")
class Crop(SpatialTransform):
    """Random crop: a window of ``size`` times the side, anywhere inside the image, resized to the full size."""

    order: ClassVar[int] = 0
    size: Tuple[float, float] = Field((0.7, 1.0), description="[min, max] window side as a fraction of the image")
    _size = range_validator("size", lo=0.05, hi=1, positive=True)

    def matrix(self, height, width, seed):
        import tensorflow as tf

        seeds = tf.random.experimental.stateless_split(seed, 2)
        f = _uniform(seeds[0], *self.size)
        o = _uniform(seeds[1], -0.5, 0.5, shape=(2,)) * (1.0 - f)  # window centre, kept inside the image
        return _mat([[f, 0, o[0] * width], [0, f, o[1] * height], [0, 0, 1]])


@TRANSFORMS.register("elastic")
class Elastic(SpatialTransform):
    """Elastic deformation: a smooth random displacement field (random offsets on a coarse grid, upsampled
    bicubically). Off in every preset; costs a dense resampling of the image."""

    order: ClassVar[int] = 6
    magnitude: float = Field(0.03, gt=0, le=0.25, description="displacement std as a fraction of the image side")
    grid: int = Field(5, ge=2, le=64, description="control points per side (fewer = smoother)")

    def displacement(self, height, width, seed):
        import tensorflow as tf

        d = tf.random.stateless_normal([1, self.grid, self.grid, 2], seed=seed, dtype=tf.float32)
        d = d * (self.magnitude * tf.constant([width, height], tf.float32))
        return tf.image.resize(d, [height, width], method="bicubic")[0]
