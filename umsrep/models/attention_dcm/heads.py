"""The attention path (classification) and the recovery path (segmentation) of the DCM encoder-decoder."""

from __future__ import annotations

import keras

from umsrep.models.blocks.attention import BN_MOMENTUM, ResidualAttention
from umsrep.models.blocks.conv import conv_bn_relu
from umsrep.models.heads.classification import gap_classifier
from umsrep.models.heads.decoder import build_decoder, seg_output


def classification(s, spec, input_size, *, name, n_classes):
    deepest = len(spec) - 1
    inp = keras.Input(shape=spec[deepest], name=f"p{deepest}")
    width = min(spec[deepest][2], 64)
    x = inp
    if spec[deepest][2] != width:
        x = conv_bn_relu(inp, width, kernel=1, name=f"{name}_proj", bn_momentum=BN_MOMENTUM)
    x = ResidualAttention(width, name=f"{name}_attention1")(x)
    x = ResidualAttention(width, name=f"{name}_attention2")(x)
    return keras.Model(inp, gap_classifier(x, name, n_classes, s.units, s.dropout), name=f"head_{name}")


def segmentation(s, spec, input_size, *, name, n_classes):
    out_channels, activation = seg_output(n_classes)
    return build_decoder(spec, input_size, out_channels=out_channels, activation=activation, filters=s.filters,
                         skips=True, name=name, upsample="transpose", bn_momentum=BN_MOMENTUM)
