"""Wiring heads to an encoder's feature pyramid.

An encoder maps an image to a list of feature maps, one per resolution, shallowest first; a head is a functional
``keras.Model`` named ``head_<task>`` whose inputs are the pyramid levels it reads, named ``p<level>``
(0 = shallowest), plus optionally ``image``: the model's input image itself (full resolution, in [0, 1]), which the
U-Net decoders concatenate at their last, full-resolution step. :func:`attach` wires any head to any encoder by
those names, so one mechanism serves the denoising decoder, segmentation decoders and classifiers.
"""

from __future__ import annotations

import keras


def pyramid_spec(encoder):
    """[(height, width, channels), ...] of the encoder's outputs, shallowest first."""
    return [tuple(int(d) for d in t.shape[1:]) for t in encoder.outputs]


def level_inputs(spec, levels):
    """``{level: keras.Input named p<level>}`` for the pyramid levels a head reads."""
    return {lv: keras.Input(shape=spec[lv], name=f"p{lv}") for lv in levels}


IMAGE = "image"  # the input name of a head that reads the image itself


def image_input(input_size, channels):
    """The ``image`` input of a head (see :data:`IMAGE`)."""
    return keras.Input(shape=(*input_size, channels), name=IMAGE)


def _input_name(t) -> str:
    return t.name.split(":")[0]


def head_levels(head):
    """Pyramid levels a head reads, from its input names ``p<level>`` (the ``image`` input is not a level)."""
    return [int(n[1:]) for n in map(_input_name, head.inputs) if n != IMAGE]


def head_inputs(head, feats, image):
    """The tensors a head reads, in the order of its inputs: pyramid levels from ``feats``, ``image`` itself."""
    return [image if _input_name(t) == IMAGE else feats[int(_input_name(t)[1:])] for t in head.inputs]


def fits(head, encoder) -> bool:
    """Whether ``head`` (saved with some encoder) reads exactly the shapes ``encoder`` gives (levels and image)."""
    spec = pyramid_spec(encoder)
    for t in head.inputs:
        name = _input_name(t)
        level = None if name == IMAGE else int(name[1:])
        want = tuple(encoder.input_shape[1:]) if level is None else spec[level] if level < len(spec) else None
        if tuple(t.shape[1:]) != want:
            return False
    return True


def _apply(head, feats, image):
    args = head_inputs(head, feats, image)
    return head(args if len(args) > 1 else args[0])


def attach(encoder, heads, name="umsrep"):
    """One functional model: image -> {head name: output}, sharing ``encoder`` (a nested sub-model)."""
    image = keras.Input(shape=encoder.input_shape[1:], name="image")
    feats = encoder(image)
    return keras.Model(image, {h: _apply(head, feats, image) for h, head in heads.items()}, name=name)


def attach_one(encoder, head):
    """image -> the output of one head (the model a single-task stage trains and evaluates)."""
    image = keras.Input(shape=encoder.input_shape[1:], name="image")
    return keras.Model(image, _apply(head, encoder(image), image), name=f"{head.name}_model")


def select_heads(model, names, name=None):
    """image -> {head: output} for the heads ``names`` of a multi-head umsrep model (its ``encoder`` and
    ``head_<name>`` layers, weights shared): the other heads are not run."""
    return attach(model.get_layer("encoder"), {n: model.get_layer(f"head_{n}") for n in names},
                  name=name or model.name)


def task_model(model, name):
    """image -> task ``name``'s output, from a multi-head umsrep model (its encoder + ``head_<name>``) or a dict
    ``{task: image -> output}`` (e.g. the baseline's separate models)."""
    if isinstance(model, dict):
        return model[name]
    return attach_one(model.get_layer("encoder"), model.get_layer(f"head_{name}"))
