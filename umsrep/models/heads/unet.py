"""``head.kind: unet``: the U-Net decoder — the default segmentation head, and the denoising decoder of the
representation stage (``representation.decoder: unet``).

From the deepest pyramid level back to the input size, each step upsamples (bilinear) to the next shallower
level's resolution, concatenates that level's encoder features (the skip connection), and runs ``convs`` 3x3
conv + BN + ReLU; the last step reaches the input resolution and concatenates the image itself (head input
``image``), so the output keeps full-resolution detail even when the encoder's shallowest level is already
downsampled (the denoising autoencoder's first conv has stride 2). Default widths mirror the encoder: the width of
the level being reached, and half the shallowest width (at least 16) at full resolution.

Chosen by measurement (scratch comparison on the quickstart's synthetic set and on BUSI at 128², 15-30 epochs,
Adam + cosine): a skip-connected decoder beats the noisy input at every noise level (BUSI: Gaussian 0.05
26.3 → 30.0 dB, 0.1 20.5 → 27.9, Poisson 30 19.9 → 27.2, speckle 0.2 22.6 → 28.5), where the paper's skip-less
decoder blurs every image to ≈ 24 dB whatever its noise, and residual learning (output = input − predicted noise)
on either decoder was worse than plain skips (docs/results.md).
"""

from __future__ import annotations

import keras
from keras import layers

from umsrep.models.blocks.conv import conv_bn_relu
from umsrep.models.pyramid import image_input, level_inputs


def default_filters(spec):
    """Widths per step, deepest first: each level's own width, then half the shallowest (>= 16) at full size."""
    deepest = len(spec) - 1
    return [spec[lv][2] for lv in range(deepest - 1, -1, -1)] + [max(16, spec[0][2] // 2)]


def unet_decoder(spec, input_size, *, out_channels, activation, filters=None, convs=2, image_channels=1, name,
                 out_dtype="float32"):
    """A ``keras.Model`` named ``head_<name>`` with inputs ``p0 .. p<deepest>`` and ``image``."""
    deepest = len(spec) - 1
    targets = [tuple(spec[lv][:2]) for lv in range(deepest - 1, -1, -1)] + [tuple(input_size)]
    filters = list(filters) if filters is not None else default_filters(spec)
    if len(filters) != len(targets):
        raise ValueError(f"{name}: the U-Net decoder needs {len(targets)} filter widths (deepest first), got "
                         f"{len(filters)}")
    inputs = level_inputs(spec, range(deepest + 1))
    image = image_input(input_size, image_channels)
    x, cur = inputs[deepest], tuple(spec[deepest][:2])
    for k, (target, f) in enumerate(zip(targets, filters), start=1):
        fy, fx = target[0] // cur[0], target[1] // cur[1]
        if fy * cur[0] != target[0] or fx * cur[1] != target[1]:
            raise ValueError(f"{name}: cannot upsample {cur} to {target}; image size must be divisible by the "
                             f"encoder's total stride")
        if (fy, fx) != (1, 1):
            x = layers.UpSampling2D((fy, fx), interpolation="bilinear", name=f"{name}_up{k}")(x)
        lv = deepest - k
        x = layers.Concatenate(name=f"{name}_skip{k}")([x, inputs[lv] if lv >= 0 else image])
        for j in range(convs):
            x = conv_bn_relu(x, f, name=f"{name}_dec{k}{'abcd'[j]}")
        cur = target
    out = layers.Conv2D(out_channels, 1, padding="same", name=f"{name}_logits")(x)
    out = layers.Activation(activation, dtype=out_dtype, name=f"{name}_out")(out)
    return keras.Model([inputs[lv] for lv in range(deepest + 1)] + [image], out, name=f"head_{name}")


def build(s, spec, input_size, *, name, n_classes, image_channels=1):
    """Segmentation: binary -> 1 sigmoid channel; multi-class -> softmax over background + classes."""
    from umsrep.models.heads.decoder import seg_output

    out_channels, activation = seg_output(n_classes)
    return unet_decoder(spec, input_size, out_channels=out_channels, activation=activation, filters=s.filters,
                        convs=s.convs, image_channels=image_channels, name=name)


def build_denoise(s, spec, input_size, *, name="denoise", n_classes=1):
    """The representation stage's denoising decoder: a clean image in [0, 1] (as many channels as the image)."""
    return unet_decoder(spec, input_size, out_channels=s.channels, activation="sigmoid", filters=s.filters,
                        convs=s.convs, image_channels=s.channels, name=name)
