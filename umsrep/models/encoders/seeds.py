"""Encoders of the seed architectures umsrep reproduces (their heads are in :mod:`umsrep.models.heads.seeds`).

Every encoder maps an image in [0, 1] to a feature pyramid (shallowest first), like the UMS-Rep encoders, so
any head — the architecture's own or the standard ones — attaches to it and any strategy trains it.

- ``mmanet`` (MMA-Net, Entropy 2023): five U-Net levels of residual blocks (2x2 max-pool between levels),
  ASPP (rates 1, 6, 12, 18 + image pooling) after the residual blocks of levels 2, 3 and 4. The
  classification branch (head ``mmanet_classification``) leaves after level ``head.branch_level`` (3); the
  remaining levels are the segmentation branch's encoder half.
- ``attention_dcm`` (attention encoder-decoder for DCM, 2019): the extraction path — per level a 1x1 conv +
  BN + ReLU and a residual block, 2x2 max-pool between levels.
- ``lightweight`` (lightweight myositis classifier, 2024): per stage a stride-2 depthwise-separable conv and a
  conventional 3x3 conv (each + BN + ReLU), then a soft-threshold attention block.
- ``deeplab`` (DeepLab-style ultrasound lesion segmentation, 2021): a ResNet-style backbone — 7x7 stride-2 stem,
  two stride-2 residual stages, then atrous residual blocks (dilation 2 and 4) at output stride 8; ASPP and the
  bilinear upsampling are in its head ``deeplab_segmentation``.
"""

from __future__ import annotations

import keras
from keras import layers

from umsrep.models.blocks.attention import BN_MOMENTUM, SoftThreshold
from umsrep.models.blocks.conv import aspp, conv_bn_relu, residual_block
from umsrep.models.blocks.norm import FusedBatchNormalization
from umsrep.models.encoders import ENCODERS
from umsrep.models.layers import image_input

DEFAULT_FILTERS = {"mmanet": [16, 32, 64, 128, 256], "attention_dcm": [32, 64, 128, 256],
                   "lightweight": [16, 32, 64, 128], "deeplab": [32, 64, 128, 256]}


@ENCODERS.register("mmanet")
def mmanet(input_shape, *, filters=None, normalization="dataset_zscore", mean=0.0, std=1.0, kernel_size=3,
           lowpass_sigma=None, aspp_enabled=True, aspp_rates=(1, 6, 12, 18), aspp_levels=(2, 3, 4),
           name="encoder", **_):
    filters = list(filters or DEFAULT_FILTERS["mmanet"])
    inputs, x = image_input(input_shape, normalization, mean, std, lowpass_sigma)
    pyramid = []
    for i, f in enumerate(filters, start=1):
        if i > 1:
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
        x = residual_block(x, f, kernel=kernel_size, name=f"enc{i}_res", bn_momentum=BN_MOMENTUM)
        if aspp_enabled and i in aspp_levels:
            x = aspp(x, f, rates=tuple(aspp_rates), name=f"enc{i}_aspp", bn_momentum=BN_MOMENTUM)
        pyramid.append(x)
    return keras.Model(inputs, pyramid, name=name)


@ENCODERS.register("attention_dcm")
def attention_dcm(input_shape, *, filters=None, normalization="dataset_zscore", mean=0.0, std=1.0, kernel_size=3,
                  lowpass_sigma=None, name="encoder", **_):
    filters = list(filters or DEFAULT_FILTERS["attention_dcm"])
    inputs, x = image_input(input_shape, normalization, mean, std, lowpass_sigma)
    pyramid = []
    for i, f in enumerate(filters, start=1):
        if i > 1:
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
        x = conv_bn_relu(x, f, kernel=1, name=f"enc{i}_extract", bn_momentum=BN_MOMENTUM)
        x = residual_block(x, f, kernel=kernel_size, name=f"enc{i}_res", bn_momentum=BN_MOMENTUM)
        pyramid.append(x)
    return keras.Model(inputs, pyramid, name=name)


@ENCODERS.register("lightweight")
def lightweight(input_shape, *, filters=None, normalization="dataset_zscore", mean=0.0, std=1.0, kernel_size=3,
                lowpass_sigma=None, name="encoder", **_):
    filters = list(filters or DEFAULT_FILTERS["lightweight"])
    inputs, x = image_input(input_shape, normalization, mean, std, lowpass_sigma)
    pyramid = []
    for i, f in enumerate(filters, start=1):
        x = layers.SeparableConv2D(f, kernel_size, strides=2, padding="same", use_bias=False,
                                   name=f"enc{i}_sep")(x)
        x = FusedBatchNormalization(momentum=BN_MOMENTUM, name=f"enc{i}_sep_bn")(x)
        x = layers.ReLU(name=f"enc{i}_sep_relu")(x)
        x = conv_bn_relu(x, f, kernel=kernel_size, name=f"enc{i}", bn_momentum=BN_MOMENTUM)
        x = SoftThreshold(name=f"enc{i}_shrink")(x)
        pyramid.append(x)
    return keras.Model(inputs, pyramid, name=name)


@ENCODERS.register("deeplab")
def deeplab(input_shape, *, filters=None, normalization="dataset_zscore", mean=0.0, std=1.0, kernel_size=3,
            lowpass_sigma=None, name="encoder", **_):
    f0, f1, f2, f3 = list(filters or DEFAULT_FILTERS["deeplab"])
    inputs, x = image_input(input_shape, normalization, mean, std, lowpass_sigma)
    p0 = conv_bn_relu(x, f0, strides=2, kernel=7, name="stem", bn_momentum=BN_MOMENTUM)  # /2
    p1 = residual_block(p0, f1, strides=2, kernel=kernel_size, name="stage1", bn_momentum=BN_MOMENTUM)  # /4
    p2 = residual_block(p1, f2, strides=2, kernel=kernel_size, name="stage2", bn_momentum=BN_MOMENTUM)  # /8
    p3 = residual_block(p2, f3, dilation=2, kernel=kernel_size, name="stage3a", bn_momentum=BN_MOMENTUM)  # /8, atrous
    p3 = residual_block(p3, f3, dilation=4, kernel=kernel_size, name="stage3b", bn_momentum=BN_MOMENTUM)
    return keras.Model(inputs, [p0, p1, p2, p3], name=name)
