"""The dilated CNN: per width a conv + ReLU (``enc<i>``, dilated in ``dilated_layers``), 2x2 max-pool after
``pool_after``; the pyramid holds the last map of every resolution."""

from __future__ import annotations

import keras
from keras import layers

from umsrep.models.blocks.conv import conv_bn_relu
from umsrep.models.layers import image_input


def build(s, image, name="encoder"):
    filters = list(s.filters or s.DEFAULT_FILTERS)
    inputs, x = image_input(image)
    pyramid = []
    for i, f in enumerate(filters, start=1):
        x = conv_bn_relu(x, f, dilation=s.dilation if i in s.dilated_layers else 1, kernel=s.kernel_size,
                         name=f"enc{i}", batchnorm=False)
        if i in s.pool_after:
            pyramid.append(x)  # last feature map at this resolution
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
    pyramid.append(x)
    return keras.Model(inputs, pyramid, name=name)
