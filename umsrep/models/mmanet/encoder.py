"""MMA-Net's encoder: residual blocks per level (``enc<i>_res``), ASPP after levels 2-4 (``enc<i>_aspp``)."""

from __future__ import annotations

import keras
from keras import layers

from umsrep.models.blocks.attention import BN_MOMENTUM
from umsrep.models.blocks.conv import aspp, residual_block
from umsrep.models.layers import image_input

ASPP_LEVELS = (2, 3, 4)


def build(s, image, name="encoder"):
    filters = list(s.filters or s.DEFAULT_FILTERS)
    inputs, x = image_input(image)
    pyramid = []
    for i, f in enumerate(filters, start=1):
        if i > 1:
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
        x = residual_block(x, f, kernel=s.kernel_size, name=f"enc{i}_res", bn_momentum=BN_MOMENTUM)
        if s.aspp and i in ASPP_LEVELS:
            x = aspp(x, f, rates=tuple(s.aspp_rates), name=f"enc{i}_aspp", bn_momentum=BN_MOMENTUM)
        pyramid.append(x)
    return keras.Model(inputs, pyramid, name=name)
