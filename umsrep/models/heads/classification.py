"""``head.kind: classification``: GAP -> Dense(ReLU) -> Dropout -> Dense softmax, on the deepest pyramid level."""

from __future__ import annotations

import keras
from keras import layers


def gap_classifier(x, name, n_classes, units, dropout):
    """GAP -> Dense(ReLU) -> Dropout -> softmax (float32) on features ``x``; layers named ``{name}_...``."""
    x = layers.GlobalAveragePooling2D(name=f"{name}_gap")(x)
    x = layers.Dense(units, activation="relu", name=f"{name}_dense")(x)
    x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.Dense(n_classes, activation="softmax", dtype="float32", name=f"{name}_probs")(x)


def build(s, spec, input_size, *, name, n_classes):
    deepest = len(spec) - 1
    inp = keras.Input(shape=spec[deepest], name=f"p{deepest}")
    return keras.Model(inp, gap_classifier(inp, name, n_classes, s.units, s.dropout), name=f"head_{name}")
