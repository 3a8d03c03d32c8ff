"""The ResNet-style backbone at output stride 8 (``stem``, ``stage1``, ``stage2``, ``stage3a/b``)."""

from __future__ import annotations

import keras

from umsrep.models.blocks.attention import BN_MOMENTUM
from umsrep.models.blocks.conv import conv_bn_relu, residual_block
from umsrep.models.layers import image_input


def build(s, image, name="encoder"):
    f0, f1, f2, f3 = list(s.filters or s.DEFAULT_FILTERS)
    k = s.kernel_size
    inputs, x = image_input(image)
    p0 = conv_bn_relu(x, f0, strides=2, kernel=7, name="stem", bn_momentum=BN_MOMENTUM)  # /2
    p1 = residual_block(p0, f1, strides=2, kernel=k, name="stage1", bn_momentum=BN_MOMENTUM)  # /4
    p2 = residual_block(p1, f2, strides=2, kernel=k, name="stage2", bn_momentum=BN_MOMENTUM)  # /8
    p3 = residual_block(p2, f3, dilation=2, kernel=k, name="stage3a", bn_momentum=BN_MOMENTUM)  # /8, atrous
    p3 = residual_block(p3, f3, dilation=4, kernel=k, name="stage3b", bn_momentum=BN_MOMENTUM)
    return keras.Model(inputs, [p0, p1, p2, p3], name=name)
