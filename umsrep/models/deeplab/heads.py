"""DeepLab's head: ASPP on the deepest features, 1x1 classifier, bilinear upsampling to the input size."""

from __future__ import annotations

import keras
from keras import layers

from umsrep.models.blocks.attention import BN_MOMENTUM
from umsrep.models.blocks.conv import aspp
from umsrep.models.heads.decoder import seg_output


def segmentation(s, spec, input_size, *, name, n_classes):
    deepest = len(spec) - 1
    inp = keras.Input(shape=spec[deepest], name=f"p{deepest}")
    x = aspp(inp, spec[deepest][2], rates=tuple(s.aspp_rates), name=f"{name}_aspp", bn_momentum=BN_MOMENTUM)
    out_channels, activation = seg_output(n_classes)
    x = layers.Conv2D(out_channels, 1, name=f"{name}_logits")(x)
    fy, fx = input_size[0] // int(inp.shape[1]), input_size[1] // int(inp.shape[2])
    x = layers.UpSampling2D((fy, fx), interpolation="bilinear", name=f"{name}_up")(x)
    out = layers.Activation(activation, dtype="float32", name=f"{name}_out")(x)
    return keras.Model(inp, out, name=f"head_{name}")
