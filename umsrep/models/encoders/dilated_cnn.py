"""Supervised UMS-Rep encoder: a dilated CNN (six 3x3 'same' conv layers, ReLU, dilation in layers 4-6).

Trained end to end with a classification head (GAP -> Dense -> Dropout 0.5 -> softmax) on the task with most
labels; with the default widths and a 128-unit head it has ~440k parameters (paper: ~460k). 2x2 max-pooling
after layers 1-3 keeps it affordable at 256x256 (configurable: ``representation.pool_after``).
"""

from __future__ import annotations

import keras
from keras import layers

from umsrep.models.blocks.conv import conv_bn_relu
from umsrep.models.encoders import ENCODERS
from umsrep.models.layers import image_input

DEFAULT_FILTERS = [32, 64, 64, 128, 128, 128]


@ENCODERS.register("supervised")
def build(input_shape, *, filters=None, normalization="dataset_zscore", mean=0.0, std=1.0,
          kernel_size=3, dilation=2, dilated_layers=(4, 5, 6), pool_after=(1, 2, 3), lowpass_sigma=None,
          name="encoder", **_):
    filters = list(filters or DEFAULT_FILTERS)
    inputs, x = image_input(input_shape, normalization, mean, std, lowpass_sigma)
    pyramid = []
    for i, f in enumerate(filters, start=1):
        x = conv_bn_relu(x, f, dilation=dilation if i in dilated_layers else 1, kernel=kernel_size, name=f"enc{i}",
                         batchnorm=False)
        if i in pool_after:
            pyramid.append(x)  # last feature map at this resolution
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
    pyramid.append(x)
    return keras.Model(inputs, pyramid, name=name)
