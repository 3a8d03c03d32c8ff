"""Basic convolution blocks shared by encoders and heads."""

from __future__ import annotations

from keras import layers


def conv_bn_relu(x, filters, *, strides=1, dilation=1, kernel=3, name, batchnorm=True):
    """3x3 conv (no bias when followed by BN) + BatchNorm + ReLU; every layer gets a stable name."""
    x = layers.Conv2D(filters, kernel, strides=strides, dilation_rate=dilation, padding="same",
                      use_bias=not batchnorm, name=f"{name}_conv")(x)
    if batchnorm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)
