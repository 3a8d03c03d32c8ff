"""Convolutional denoising autoencoder encoder (UMS-Rep, unsupervised): 3x3 stride-2 conv + BN + ReLU layers.

With the default widths [32, 64, 128, 256] the encoder plus its symmetric denoising decoder
(:func:`umsrep.models.heads.build_decoder`) has ~786k parameters, close to the paper's ~800k.
"""

from __future__ import annotations

import keras

from umsrep.models.blocks.conv import conv_bn_relu
from umsrep.models.encoders import ENCODERS
from umsrep.models.layers import image_input

DEFAULT_FILTERS = [32, 64, 128, 256]


@ENCODERS.register("denoising_autoencoder")
def build(input_shape, *, filters=None, normalization="dataset_zscore", mean=0.0, std=1.0, kernel_size=3,
          lowpass_sigma=None, name="encoder", **_):
    filters = list(filters or DEFAULT_FILTERS)
    inputs, x = image_input(input_shape, normalization, mean, std, lowpass_sigma)
    pyramid = []
    for i, f in enumerate(filters, start=1):
        x = conv_bn_relu(x, f, strides=2, kernel=kernel_size, name=f"enc{i}")
        pyramid.append(x)
    return keras.Model(inputs, pyramid, name=name)
