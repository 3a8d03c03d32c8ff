"""Task heads attached to a shared encoder's feature pyramid.

A head is a functional ``keras.Model`` named ``head_<task>`` whose inputs are the pyramid levels it uses,
named ``p<level>`` (0 = shallowest). :func:`attach` wires any head to any encoder by those names, so one
mechanism serves the denoising decoder, segmentation decoders and classifiers. Builders are looked up by task
type in :data:`HEADS`.
"""

from __future__ import annotations

import keras
from keras import layers

from umsrep.models.blocks.conv import conv_bn_relu
from umsrep.registry import Registry

HEADS = Registry("head")


def pyramid_spec(encoder):
    """[(height, width, channels), ...] of the encoder's outputs, shallowest first."""
    return [tuple(int(d) for d in t.shape[1:]) for t in encoder.outputs]


def _level_inputs(spec, levels):
    return {lv: keras.Input(shape=spec[lv], name=f"p{lv}") for lv in levels}


def build_decoder(spec, input_size, *, out_channels, activation, filters=None, skips=False, name,
                  out_dtype="float32", attention=False, upsample="nearest", bn_momentum=0.99):
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
    inputs = _level_inputs(spec, levels)
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


@HEADS.register("segmentation")
def segmentation_head(spec, input_size, *, name, n_classes, filters=None, skips=False, **_):
    """Binary: 1 sigmoid channel. Multi-class: softmax over background + classes."""
    if n_classes == 1:
        return build_decoder(spec, input_size, out_channels=1, activation="sigmoid", filters=filters,
                             skips=skips, name=name)
    return build_decoder(spec, input_size, out_channels=n_classes + 1, activation="softmax", filters=filters,
                         skips=skips, name=name)


@HEADS.register("classification")
def classification_head(spec, input_size, *, name, n_classes, units=128, dropout=0.5, **_):
    """GAP -> Dense(ReLU) -> Dropout -> Dense softmax, on the deepest pyramid level."""
    deepest = len(spec) - 1
    inp = keras.Input(shape=spec[deepest], name=f"p{deepest}")
    x = layers.GlobalAveragePooling2D(name=f"{name}_gap")(inp)
    x = layers.Dense(units, activation="relu", name=f"{name}_dense")(x)
    x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    out = layers.Dense(n_classes, activation="softmax", dtype="float32", name=f"{name}_probs")(x)
    return keras.Model(inp, out, name=f"head_{name}")


def head_builder(kind: str, task_type: str, encoder_kind: str):
    """The registered head builder for a task: ``head.kind`` if given, else the encoder architecture's own head
    for this task type (:data:`umsrep.models.heads.seeds.ARCH_HEADS`), else the standard one."""
    from umsrep.models.heads.seeds import ARCH_HEADS

    if kind != "auto":
        return HEADS.get(kind)
    return HEADS.get(ARCH_HEADS.get((encoder_kind, task_type), task_type))


@HEADS.register("denoise")
def denoise_head(spec, input_size, *, name="denoise", channels=1, filters=None, **_):
    """The denoising autoencoder's symmetric decoder, reconstructing a clean image in [0, 1]."""
    return build_decoder(spec, input_size, out_channels=channels, activation="sigmoid", filters=filters,
                         name=name)


def head_levels(head):
    """Pyramid levels a head reads, from its input names ``p<level>``."""
    return [int(t.name.split(":")[0][1:]) for t in head.inputs]


def _apply(head, feats):
    args = [feats[lv] for lv in head_levels(head)]
    return head(args if len(args) > 1 else args[0])


def attach(encoder, heads, name="umsrep"):
    """One functional model: image -> {head name: output}, sharing ``encoder`` (a nested sub-model)."""
    image = keras.Input(shape=encoder.input_shape[1:], name="image")
    feats = encoder(image)
    return keras.Model(image, {h: _apply(head, feats) for h, head in heads.items()}, name=name)


def attach_one(encoder, head):
    """image -> the output of one head (the model a single-task stage trains and evaluates)."""
    image = keras.Input(shape=encoder.input_shape[1:], name="image")
    return keras.Model(image, _apply(head, encoder(image)), name=f"{head.name}_model")
