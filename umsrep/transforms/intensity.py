"""Intensity transforms: change image values only, never masks or labels. Images are float32 in [0, 1];
each transform's output is clipped to [0, 1]. Applied in ``order`` (noise, speckle, blur, brightness, contrast,
low resolution, gamma), after the spatial warp, as nnU-Net does."""

from __future__ import annotations

import math
from typing import ClassVar, Tuple

from pydantic import Field

from umsrep.transforms.base import TRANSFORMS, IntensityTransform, range_validator


def _uniform(seed, lo, hi):
    import tensorflow as tf

    return tf.random.stateless_uniform([], seed=seed, minval=lo, maxval=hi, dtype=tf.float32)


@TRANSFORMS.register("noise")
class GaussianNoise(IntensityTransform):
    """Additive Gaussian noise with a standard deviation drawn from ``sigma``."""

    order: ClassVar[int] = 0
    p: float = Field(0.15, ge=0, le=1)
    sigma: Tuple[float, float] = Field((0.0, 0.05), description="[min, max] noise std (image in [0, 1])")
    _sigma = range_validator("sigma", lo=0, hi=1)

    def apply(self, image, seed):
        import tensorflow as tf

        seeds = tf.random.experimental.stateless_split(seed, 2)
        n = tf.random.stateless_normal(tf.shape(image), seed=seeds[1], dtype=tf.float32)
        return image + _uniform(seeds[0], *self.sigma) * n


@TRANSFORMS.register("speckle")
class Speckle(IntensityTransform):
    """Multiplicative (speckle) noise ``x + x * sigma * n``, sigma drawn from ``sigma``."""

    order: ClassVar[int] = 1
    p: float = Field(0.15, ge=0, le=1)
    sigma: Tuple[float, float] = Field((0.0, 0.2), description="[min, max] std of the multiplicative noise")
    _sigma = range_validator("sigma", lo=0, hi=2)

    def apply(self, image, seed):
        import tensorflow as tf

        seeds = tf.random.experimental.stateless_split(seed, 2)
        n = tf.random.stateless_normal(tf.shape(image), seed=seeds[1], dtype=tf.float32)
        return image + image * _uniform(seeds[0], *self.sigma) * n


@TRANSFORMS.register("blur")
class Blur(IntensityTransform):
    """Gaussian blur with a standard deviation (pixels) drawn from ``sigma``."""

    order: ClassVar[int] = 2
    sigma: Tuple[float, float] = Field((0.5, 1.0), description="[min, max] blur std in pixels")
    _sigma = range_validator("sigma", lo=0.05, hi=10, positive=True)

    def apply(self, image, seed):
        import tensorflow as tf

        r = max(1, int(math.ceil(3 * self.sigma[1])))
        s = _uniform(seed, *self.sigma)
        t = tf.range(-r, r + 1, dtype=tf.float32)
        k = tf.exp(-0.5 * tf.square(t / s))
        k = k / tf.reduce_sum(k)
        c = image.shape[-1]
        x = tf.pad(image[None], [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
        x = tf.nn.depthwise_conv2d(x, tf.tile(tf.reshape(k, [-1, 1, 1, 1]), [1, 1, c, 1]), [1, 1, 1, 1], "VALID")
        x = tf.nn.depthwise_conv2d(x, tf.tile(tf.reshape(k, [1, -1, 1, 1]), [1, 1, c, 1]), [1, 1, 1, 1], "VALID")
        return x[0]


@TRANSFORMS.register("brightness")
class Brightness(IntensityTransform):
    """Multiplicative brightness: the image times a factor drawn from ``factor``."""

    order: ClassVar[int] = 3
    p: float = Field(0.15, ge=0, le=1)
    factor: Tuple[float, float] = Field((0.75, 1.25), description="[min, max] multiplier")
    _factor = range_validator("factor", lo=0, hi=10)

    def apply(self, image, seed):
        return image * _uniform(seed, *self.factor)


@TRANSFORMS.register("contrast")
class Contrast(IntensityTransform):
    """Contrast about the image mean: ``mean + factor * (x - mean)``, factor drawn from ``factor``."""

    order: ClassVar[int] = 4
    p: float = Field(0.15, ge=0, le=1)
    factor: Tuple[float, float] = Field((0.75, 1.25), description="[min, max] contrast factor")
    _factor = range_validator("factor", lo=0, hi=10)

    def apply(self, image, seed):
        import tensorflow as tf

        m = tf.reduce_mean(image)
        return m + _uniform(seed, *self.factor) * (image - m)


@TRANSFORMS.register("lowres")
class LowResolution(IntensityTransform):
    """Low-resolution simulation: downsample by a factor drawn from ``zoom`` (nearest), upsample back
    (bilinear)."""

    order: ClassVar[int] = 5
    p: float = Field(0.15, ge=0, le=1)
    zoom: Tuple[float, float] = Field((0.5, 1.0), description="[min, max] downsampling factor")
    _zoom = range_validator("zoom", lo=0.05, hi=1, positive=True)

    def apply(self, image, seed):
        import tensorflow as tf

        h, w = image.shape[0], image.shape[1]
        z = _uniform(seed, *self.zoom)
        small = tf.cast(tf.maximum(1.0, tf.round(z * tf.constant([h, w], tf.float32))), tf.int32)
        x = tf.image.resize(image, small, method="nearest")
        return tf.image.resize(x, [h, w], method="bilinear")


@TRANSFORMS.register("gamma")
class Gamma(IntensityTransform):
    """Gamma: ``x ** gamma``, gamma drawn from ``gamma`` (< 1 brightens, > 1 darkens the mid-tones)."""

    order: ClassVar[int] = 6
    p: float = Field(0.3, ge=0, le=1)
    gamma: Tuple[float, float] = Field((0.7, 1.5), description="[min, max] exponent")
    _gamma = range_validator("gamma", lo=0.05, hi=20, positive=True)

    def apply(self, image, seed):
        import tensorflow as tf

        return tf.pow(tf.maximum(image, 0.0), _uniform(seed, *self.gamma))
