"""MMA-Net's classification branch and attention U-Net segmentation decoder (see the package docstring)."""

from __future__ import annotations

import keras
from keras import layers

from umsrep.models.blocks.attention import BN_MOMENTUM, CoordinateAttention
from umsrep.models.blocks.conv import conv_bn_relu
from umsrep.models.heads.classification import gap_classifier
from umsrep.models.heads.decoder import build_decoder, seg_output
from umsrep.models.pyramid import level_inputs


def classification(s, spec, input_size, *, name, n_classes):
    deepest = len(spec) - 1
    start = min(max(s.branch_level, 1), len(spec)) - 1
    levels = [start] + ([deepest] if s.connection and deepest != start else [])
    inputs = level_inputs(spec, levels)
    x = inputs[start]
    if s.attention:
        x = CoordinateAttention(name=f"{name}_ca")(x)
    width = spec[start][2]
    stage = 0
    while x.shape[1] > spec[deepest][0]:
        stage += 1
        width *= 2
        x = conv_bn_relu(x, width, name=f"{name}_vgg{stage}a", bn_momentum=BN_MOMENTUM)
        x = conv_bn_relu(x, width, name=f"{name}_vgg{stage}b", bn_momentum=BN_MOMENTUM)
        x = layers.MaxPooling2D(2, name=f"{name}_vgg{stage}_pool")(x)
    if s.connection and deepest != start:
        x = layers.Concatenate(name=f"{name}_connection")([x, inputs[deepest]])
        x = conv_bn_relu(x, int(x.shape[-1]) // 2, kernel=1, name=f"{name}_fuse", bn_momentum=BN_MOMENTUM)
    out = gap_classifier(x, name, n_classes, s.units, s.dropout)
    return keras.Model([inputs[lv] for lv in levels], out, name=f"head_{name}")


def segmentation(s, spec, input_size, *, name, n_classes):
    out_channels, activation = seg_output(n_classes)
    return build_decoder(spec, input_size, out_channels=out_channels, activation=activation, filters=s.filters,
                         skips=True, name=name, attention=s.attention, bn_momentum=BN_MOMENTUM)
