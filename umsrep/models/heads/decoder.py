"""The upsampling decoder shared by the segmentation heads and the denoising decoder."""

from __future__ import annotations

import keras
from keras import layers

from umsrep.models.blocks.conv import BN_MOMENTUM, conv_bn_relu
from umsrep.models.pyramid import level_inputs


def seg_output(n_classes):
    """(channels, activation) of a segmentation output: binary -> 1 sigmoid; else softmax over background +
    classes."""
    return (1, "sigmoid") if n_classes == 1 else (n_classes + 1, "softmax")


def build_decoder(spec, input_size, *, out_channels, activation, filters=None, skips=False, name,
                  out_dtype="float32", attention=False, upsample="nearest", bn_momentum=BN_MOMENTUM):
    """Symmetric upsampling decoder from the deepest pyramid level back to ``input_size``.

    Each step: UpSampling2D to the next shallower level's resolution (then the input's), 3x3 conv + BN +
    ReLU, optionally concatenating that level's encoder features first (``skips``, U-Net style).
    Default widths mirror the encoder: the width of the level being reached, and the shallowest width last.
    ``attention``: coordinate attention on the deepest features first (MMA-Net's branch start); ``upsample``:
    ``nearest`` / ``bilinear`` (UpSampling2D) or ``transpose`` (a stride-k transposed 3x3 conv, the recovery path
    of the attention encoder-decoder).
    """
    deepest = len(spec) - 1
    targets = [spec[lv][:2] for lv in range(deepest - 1, -1, -1)] + [tuple(input_size)]
    if filters is None:
        filters = [spec[lv][2] for lv in range(deepest - 1, -1, -1)] + [spec[0][2]]
    if len(filters) != len(targets):
        raise ValueError(f"{name}: decoder needs {len(targets)} filter widths, got {len(filters)}")
    levels = list(range(deepest + 1)) if skips else [deepest]
    inputs = level_inputs(spec, levels)
    x = inputs[deepest]
    if attention:
        from umsrep.models.blocks.attention import CoordinateAttention

        x = CoordinateAttention(name=f"{name}_ca")(x)
    cur = spec[deepest][:2]
    for k, (target, f) in enumerate(zip(targets, filters), start=1):
        fy, fx = target[0] // cur[0], target[1] // cur[1]
        if fy * cur[0] != target[0] or fx * cur[1] != target[1]:
            raise ValueError(f"{name}: cannot upsample {cur} to {target}; image size must be divisible "
                             f"by the encoder's total stride")
        if (fy, fx) != (1, 1) and upsample == "transpose":
            x = layers.Conv2DTranspose(int(x.shape[-1]), 3, strides=(fy, fx), padding="same",
                                       name=f"{name}_up{k}")(x)
        elif (fy, fx) != (1, 1):
            x = layers.UpSampling2D((fy, fx), interpolation=upsample, name=f"{name}_up{k}")(x)
        lv = deepest - k
        if skips and lv >= 0:
            x = layers.Concatenate(name=f"{name}_skip{k}")([x, inputs[lv]])
        x = conv_bn_relu(x, f, name=f"{name}_dec{k}", bn_momentum=bn_momentum)
        cur = target
    out = layers.Conv2D(out_channels, 3 if activation == "sigmoid" and out_channels <= 3 else 1,
                        padding="same", name=f"{name}_logits")(x)
    out = layers.Activation(activation, dtype=out_dtype, name=f"{name}_out")(out)
    return keras.Model([inputs[lv] for lv in levels], out, name=f"head_{name}")
