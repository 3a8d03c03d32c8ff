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
