"""The extraction path: per level a 1x1 conv + BN + ReLU (``enc<i>_extract``) and a residual block."""

from __future__ import annotations

import keras
from keras import layers

from umsrep.models.blocks.attention import BN_MOMENTUM
from umsrep.models.blocks.conv import conv_bn_relu, residual_block
from umsrep.models.layers import image_input


def build(s, image, name="encoder"):
    filters = list(s.filters or s.DEFAULT_FILTERS)
    inputs, x = image_input(image)
    pyramid = []
    for i, f in enumerate(filters, start=1):
        if i > 1:
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
        x = conv_bn_relu(x, f, kernel=1, name=f"enc{i}_extract", bn_momentum=BN_MOMENTUM)
        x = residual_block(x, f, kernel=s.kernel_size, name=f"enc{i}_res", bn_momentum=BN_MOMENTUM)
        pyramid.append(x)
    return keras.Model(inputs, pyramid, name=name)
