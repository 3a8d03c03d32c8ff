"""Heads of the seed architectures (their encoders are in :mod:`umsrep.models.encoders.seeds`).

Registered in :data:`umsrep.models.heads.HEADS` by name; ``head.kind: auto`` picks the architecture's own head
(:data:`ARCH_HEADS`) for ``representation.kind`` and the task type.

- ``mmanet_classification``: the MMA-Net classification branch — from pyramid level ``branch_level``
  (1-based, default 3): coordinate attention (``attention``), VGG-like stages (two 3x3 conv + BN + ReLU, 2x2
  max-pool) down to the deepest resolution, the **connection** (``connection``: the segmentation branch's
  deepest features concatenated in), GAP → Dense(ReLU) → Dropout → softmax.
- ``mmanet_segmentation``: coordinate attention on the deepest features, then the U-Net decoder with skip
  connections from every level (sigmoid / softmax output).
- ``dcm_classification``: the attention path — two residual attention modules ``(1 + M)·T`` on the deepest
  features (projected to at most 64 channels by a 1x1 conv) — then GAP → Dense(ReLU) → Dropout → softmax.
- ``dcm_segmentation``: the recovery path — transposed convolutions with skip connections.
- ``deeplab_segmentation``: ASPP (``aspp_rates``, default 6, 12, 18, 24, + image pooling) on the deepest
  features, a 1x1 classifier, bilinear upsampling to the input size.
"""

from __future__ import annotations

import keras
from keras import layers

from umsrep.models.blocks.attention import BN_MOMENTUM, CoordinateAttention, ResidualAttention
from umsrep.models.blocks.conv import aspp, conv_bn_relu
from umsrep.models.heads import HEADS, _level_inputs, build_decoder

ARCH_HEADS = {("mmanet", "classification"): "mmanet_classification",
              ("mmanet", "segmentation"): "mmanet_segmentation",
              ("attention_dcm", "classification"): "dcm_classification",
              ("attention_dcm", "segmentation"): "dcm_segmentation",
              ("deeplab", "segmentation"): "deeplab_segmentation"}


def _classifier(x, name, n_classes, units, dropout):
    x = layers.GlobalAveragePooling2D(name=f"{name}_gap")(x)
    x = layers.Dense(units, activation="relu", name=f"{name}_dense")(x)
    x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.Dense(n_classes, activation="softmax", dtype="float32", name=f"{name}_probs")(x)


def _seg_out(n_classes):
    return (1, "sigmoid") if n_classes == 1 else (n_classes + 1, "softmax")


@HEADS.register("mmanet_classification")
def mmanet_classification(spec, input_size, *, name, n_classes, units=128, dropout=0.5, attention=True,
                          connection=True, branch_level=3, **_):
    deepest = len(spec) - 1
    start = min(max(branch_level, 1), len(spec)) - 1
    levels = [start] + ([deepest] if connection and deepest != start else [])
    inputs = _level_inputs(spec, levels)
    x = inputs[start]
    if attention:
        x = CoordinateAttention(name=f"{name}_ca")(x)
    width = spec[start][2]
    stage = 0
    while x.shape[1] > spec[deepest][0]:
        stage += 1
        width *= 2
        x = conv_bn_relu(x, width, name=f"{name}_vgg{stage}a", bn_momentum=BN_MOMENTUM)
        x = conv_bn_relu(x, width, name=f"{name}_vgg{stage}b", bn_momentum=BN_MOMENTUM)
        x = layers.MaxPooling2D(2, name=f"{name}_vgg{stage}_pool")(x)
    if connection and deepest != start:
        x = layers.Concatenate(name=f"{name}_connection")([x, inputs[deepest]])
        x = conv_bn_relu(x, int(x.shape[-1]) // 2, kernel=1, name=f"{name}_fuse", bn_momentum=BN_MOMENTUM)
    out = _classifier(x, name, n_classes, units, dropout)
    return keras.Model([inputs[lv] for lv in levels], out, name=f"head_{name}")


@HEADS.register("mmanet_segmentation")
def mmanet_segmentation(spec, input_size, *, name, n_classes, filters=None, attention=True, **_):
    out_channels, activation = _seg_out(n_classes)
    return build_decoder(spec, input_size, out_channels=out_channels, activation=activation, filters=filters,
                         skips=True, name=name, attention=attention, bn_momentum=BN_MOMENTUM)


@HEADS.register("dcm_classification")
def dcm_classification(spec, input_size, *, name, n_classes, units=128, dropout=0.5, **_):
    deepest = len(spec) - 1
    inp = keras.Input(shape=spec[deepest], name=f"p{deepest}")
    width = min(spec[deepest][2], 64)
    x = inp
    if spec[deepest][2] != width:
        x = conv_bn_relu(inp, width, kernel=1, name=f"{name}_proj", bn_momentum=BN_MOMENTUM)
    x = ResidualAttention(width, name=f"{name}_attention1")(x)
    x = ResidualAttention(width, name=f"{name}_attention2")(x)
    return keras.Model(inp, _classifier(x, name, n_classes, units, dropout), name=f"head_{name}")


@HEADS.register("dcm_segmentation")
def dcm_segmentation(spec, input_size, *, name, n_classes, filters=None, **_):
    out_channels, activation = _seg_out(n_classes)
    return build_decoder(spec, input_size, out_channels=out_channels, activation=activation, filters=filters,
                         skips=True, name=name, upsample="transpose", bn_momentum=BN_MOMENTUM)


@HEADS.register("deeplab_segmentation")
def deeplab_segmentation(spec, input_size, *, name, n_classes, aspp_rates=(6, 12, 18, 24), **_):
    deepest = len(spec) - 1
    inp = keras.Input(shape=spec[deepest], name=f"p{deepest}")
    x = aspp(inp, spec[deepest][2], rates=tuple(aspp_rates), name=f"{name}_aspp", bn_momentum=BN_MOMENTUM)
    out_channels, activation = _seg_out(n_classes)
    x = layers.Conv2D(out_channels, 1, name=f"{name}_logits")(x)
    fy, fx = input_size[0] // int(inp.shape[1]), input_size[1] // int(inp.shape[2])
    x = layers.UpSampling2D((fy, fx), interpolation="bilinear", name=f"{name}_up")(x)
    out = layers.Activation(activation, dtype="float32", name=f"{name}_out")(x)
    return keras.Model(inp, out, name=f"head_{name}")
