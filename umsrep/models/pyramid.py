"""Wiring heads to an encoder's feature pyramid.

An encoder maps an image to a list of feature maps, one per resolution, shallowest first; a head is a functional
``keras.Model`` named ``head_<task>`` whose inputs are the pyramid levels it reads, named ``p<level>``
(0 = shallowest). :func:`attach` wires any head to any encoder by those names, so one mechanism serves the
denoising decoder, segmentation decoders and classifiers.
"""

from __future__ import annotations

import keras


def pyramid_spec(encoder):
    """[(height, width, channels), ...] of the encoder's outputs, shallowest first."""
    return [tuple(int(d) for d in t.shape[1:]) for t in encoder.outputs]


def level_inputs(spec, levels):
    """``{level: keras.Input named p<level>}`` for the pyramid levels a head reads."""
    return {lv: keras.Input(shape=spec[lv], name=f"p{lv}") for lv in levels}


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
