"""The denoising autoencoder's encoder: per width a 3x3 stride-2 conv + BN + ReLU (``enc<i>``), then
``convs_per_level - 1`` stride-1 ones (``enc<i>_<j>``); with ``first_stride: 1`` the first level's first conv
has stride 1, so the pyramid's shallowest level has the input's size."""

from __future__ import annotations

import keras

from umsrep.models.blocks.conv import conv_bn_relu
from umsrep.models.layers import image_input


def build(s, image, name="encoder"):
    filters = list(s.filters or s.DEFAULT_FILTERS)
    inputs, x = image_input(image)
    pyramid = []
    for i, f in enumerate(filters, start=1):
        x = conv_bn_relu(x, f, strides=s.first_stride if i == 1 else 2, kernel=s.kernel_size, name=f"enc{i}")
        for j in range(2, s.convs_per_level + 1):
            x = conv_bn_relu(x, f, kernel=s.kernel_size, name=f"enc{i}_{j}")
        pyramid.append(x)
    return keras.Model(inputs, pyramid, name=name)
