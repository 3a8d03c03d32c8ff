"""Per stage: stride-2 separable conv + BN + ReLU (``enc<i>_sep``), 3x3 conv + BN + ReLU, soft threshold."""

from __future__ import annotations

import keras
from keras import layers

from umsrep.models.blocks.attention import BN_MOMENTUM, SoftThreshold
from umsrep.models.blocks.conv import conv_bn_relu
from umsrep.models.blocks.norm import FusedBatchNormalization
from umsrep.models.layers import image_input


def build(s, image, name="encoder"):
    filters = list(s.filters or s.DEFAULT_FILTERS)
    inputs, x = image_input(image)
    pyramid = []
    for i, f in enumerate(filters, start=1):
        x = layers.SeparableConv2D(f, s.kernel_size, strides=2, padding="same", use_bias=False,
                                   name=f"enc{i}_sep")(x)
        x = FusedBatchNormalization(momentum=BN_MOMENTUM, name=f"enc{i}_sep_bn")(x)
        x = layers.ReLU(name=f"enc{i}_sep_relu")(x)
        x = conv_bn_relu(x, f, kernel=s.kernel_size, name=f"enc{i}", bn_momentum=BN_MOMENTUM)
        x = SoftThreshold(name=f"enc{i}_shrink")(x)
        pyramid.append(x)
    return keras.Model(inputs, pyramid, name=name)
