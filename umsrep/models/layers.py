"""Serializable custom layers (no Lambda layers anywhere: every saved model reloads by name)."""

from __future__ import annotations

import keras
from keras import ops

MODES = ("none", "image_mean", "image_zscore", "dataset_zscore")


@keras.saving.register_keras_serializable(package="umsrep")
class Normalize(keras.layers.Layer):
    """Input normalization stored inside the model, so a saved model carries its own preprocessing.

    Inputs are images scaled to [0, 1]. Modes: ``none``; ``image_mean`` (x - mean(x), per image);
    ``image_zscore`` ((x - mean) / std per image); ``dataset_zscore`` ((x - mean) / std with the training
    set's statistics, fixed at build time and saved in the layer config).
    """

    def __init__(self, mode="dataset_zscore", mean=0.0, std=1.0, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"normalization mode {mode!r} not in {MODES}")
        self.mode, self.mean, self.std = mode, float(mean), float(std)

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        if self.mode == "none":
            return x
        if self.mode == "dataset_zscore":
            return (x - self.mean) / max(self.std, 1e-6)
        mu = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        if self.mode == "image_mean":
            return x - mu
        sd = ops.std(x, axis=(1, 2, 3), keepdims=True)
        return (x - mu) / ops.maximum(sd, 1e-6)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package="umsrep")
class GaussianLowpass(keras.layers.Layer):
    """Fixed (non-trainable) Gaussian low-pass filter per channel, ``same`` padding (reflect-free: zero padding
    is avoided by normalising with the filtered ones image). The ultrasound preprocessing of the DeepLab
    lesion-segmentation paper (σ = 2); inside the model, so prediction applies it too."""

    def __init__(self, sigma=2.0, **kwargs):
        super().__init__(**kwargs)
        self.sigma = float(sigma)

    def build(self, input_shape):
        import numpy as np

        radius = max(1, int(round(3 * self.sigma)))
        t = np.arange(-radius, radius + 1, dtype="float32")
        g = np.exp(-(t ** 2) / (2 * self.sigma ** 2))
        g /= g.sum()
        c = int(input_shape[-1])
        self._kernel = np.tile((g[:, None] * g[None, :])[:, :, None, None], (1, 1, c, 1)).astype("float32")

    def call(self, x):
        k = ops.cast(self._kernel, x.dtype)
        blurred = ops.depthwise_conv(x, k, strides=1, padding="same")
        norm = ops.depthwise_conv(ops.ones_like(x[:1]), k, strides=1, padding="same")
        return blurred / norm

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma}


def image_input(image):
    """Every encoder's first layers from an :class:`umsrep.models.ImageSpec`: ``(inputs, x)`` with the optional
    Gaussian low-pass and the normalization."""
    inputs = keras.Input(shape=tuple(image.shape), name="image")
    x = GaussianLowpass(image.lowpass_sigma, name="lowpass")(inputs) if image.lowpass_sigma else inputs
    return inputs, Normalize(image.normalization, image.mean, image.std, name="normalize")(x)


# every custom layer must be registered before a saved model is loaded: importing this module registers them all
from umsrep.models.blocks import attention  # noqa: E402,F401
