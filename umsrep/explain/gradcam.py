"""Grad-CAM and Grad-CAM++ for any classification head of a umsrep model.

A umsrep model is ``image -> encoder (nested model "encoder") -> head_<task>``. Keras cannot hand out a
nested layer's output in the outer graph, so the explainer splits the model at the chosen layer instead:
``encoder' = image -> [target activation, encoder outputs]`` (built inside the encoder's own graph) and the
head up to its last Dense. One forward pass under a ``GradientTape`` then gives the class score and its
gradient with respect to the target activation ``A`` (shape ``h × w × k``):

- Grad-CAM (Selvaraju et al. 2017): ``α_k = mean_ij ∂y/∂A_ijk``, ``L = ReLU(Σ_k α_k A_k)``;
- Grad-CAM++ (Chattopadhay et al. 2018, closed form for ``exp(y)``): ``α_ijk = g² / (2g² + Σ_ab A_abk g³)``,
  ``w_k = Σ_ij α_ijk ReLU(g_ijk)``, ``L = ReLU(Σ_k w_k A_k)``, with ``g = ∂y/∂A``.

``y`` is the class *logit* (the pre-softmax value of the head's final Dense layer), as in the papers. ``L`` is
divided by its maximum (an all-zero map stays zero) and resized bilinearly to the input size.

The layer is addressed by a path: ``encoder/<layer>`` (any layer of the encoder with a 4-D output) or
``<layer>`` for a top-level layer name inside the encoder; default: the layer producing the deepest encoder
feature map the classification head reads, i.e. the last convolutional block of the encoder before the head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from umsrep.errors import RecipeError

METHODS = ("gradcam", "gradcam++")


@dataclass
class CamResult:
    maps: np.ndarray            # (n, H, W) in [0, 1], input resolution
    classes: List[int]          # explained class per image
    probs: np.ndarray           # (n, n_classes) head probabilities
    layer: str                  # the path of the explained layer


def conv_layers(encoder) -> List[str]:
    """Encoder layers with a 4-D output (candidates for Grad-CAM), input side first."""
    out = []
    for layer in encoder.layers:
        shape = getattr(layer.output, "shape", None) if not isinstance(layer.output, (list, tuple)) else None
        if shape is not None and len(shape) == 4 and layer.__class__.__name__ != "InputLayer":
            out.append(layer.name)
    return out


def resolve_layer(model, task: str, layer: Optional[str] = None):
    """``(encoder, target layer, head, path)`` for ``task``; a clear error for an unknown task or layer."""
    names = [ly.name for ly in model.layers]
    heads = [n[len("head_"):] for n in names if n.startswith("head_")]
    if f"head_{task}" not in names:
        raise RecipeError(f"--task: unknown task {task!r}; the model's heads are {heads}")
    head = model.get_layer(f"head_{task}")
    last = head.layers[-1]
    if last.__class__.__name__ != "Dense" or len(head.output.shape) != 2:
        raise RecipeError(f"--task: {task!r} is not a classification head (Grad-CAM explains class scores)")
    if "encoder" not in names:
        raise RecipeError("the model has no nested 'encoder'; Grad-CAM needs umsrep's encoder + heads layout")
    encoder = model.get_layer("encoder")
    candidates = conv_layers(encoder)
    if layer is None:  # the deepest encoder feature map this head reads
        level = max(int(t.name.split(":")[0][1:]) for t in head.inputs)
        deepest = encoder.outputs[level]
        target = next(ly for ly in reversed(encoder.layers) if ly.output is deepest)
    else:
        name = layer[len("encoder/"):] if layer.startswith("encoder/") else layer
        if name not in candidates:
            raise RecipeError(f"--layer: {layer!r} is not a 4-D layer of the encoder; choose one of "
                              f"{['encoder/' + c for c in candidates]}")
        target = encoder.get_layer(name)
    return encoder, target, head, f"encoder/{target.name}"


class GradCam:
    """Explainer bound to one model, task and layer; reusable over many batches."""

    def __init__(self, model, task: str, layer: Optional[str] = None, method: str = "gradcam"):
        import keras

        if method not in METHODS:
            raise RecipeError(f"--method: {method!r} is not one of {list(METHODS)}")
        self.method, self.task = method, task
        encoder, target, head, self.layer = resolve_layer(model, task, layer)
        self.size = tuple(int(d) for d in model.input_shape[1:3])
        self._features = keras.Model(encoder.inputs, [target.output] + list(encoder.outputs),
                                     name="gradcam_features")
        self._levels = [int(t.name.split(":")[0][1:]) for t in head.inputs]
        dense = head.layers[-1]
        self._pre = keras.Model(head.inputs, dense.input, name="gradcam_head")
        self._dense = dense

    def _scores(self, x):
        """(activation, logits, probabilities) for a batch; differentiable w.r.t. the activation."""
        import tensorflow as tf

        outs = self._features(x, training=False)
        act, feats = outs[0], outs[1:]
        args = [feats[lv] for lv in self._levels]
        h = self._pre(args if len(args) > 1 else args[0], training=False)
        kernel = tf.convert_to_tensor(self._dense.kernel)
        h = tf.cast(h, kernel.dtype)  # mixed precision: the head's last Dense computes in float32
        logits = tf.matmul(h, kernel) + (tf.cast(self._dense.bias, kernel.dtype) if self._dense.use_bias else 0.0)
        return act, logits, tf.nn.softmax(logits, axis=-1)

    def __call__(self, x, class_index=None) -> CamResult:
        """Heat maps for a batch ``x`` (n, H, W, C) of preprocessed images (the model's input scale).

        ``class_index``: None (each image's predicted class), an int, or one int per image."""
        import tensorflow as tf

        x = tf.convert_to_tensor(np.asarray(x, np.float32))
        with tf.GradientTape() as tape:
            tape.watch(x)  # records every op from the input on, frozen or not
            act, logits, probs = self._scores(x)
            if class_index is None:
                cls = tf.argmax(logits, axis=-1, output_type=tf.int32)
            else:
                cls = tf.broadcast_to(tf.constant(class_index, tf.int32), [tf.shape(x)[0]])
            score = tf.gather(logits, cls, axis=1, batch_dims=1)
        grads = tape.gradient(score, act)
        if grads is None:
            raise RecipeError(f"--layer: {self.layer} does not feed the {self.task!r} head's class scores")
        a, g = act.numpy().astype(np.float64), grads.numpy().astype(np.float64)
        if self.method == "gradcam":
            weights = g.mean(axis=(1, 2), keepdims=True)
        else:
            g2, g3 = g ** 2, g ** 3
            denom = 2.0 * g2 + a.sum(axis=(1, 2), keepdims=True) * g3
            alpha = np.where(denom != 0.0, g2 / np.where(denom != 0.0, denom, 1.0), 0.0)
            weights = (alpha * np.maximum(g, 0.0)).sum(axis=(1, 2), keepdims=True)
        cam = np.maximum((weights * a).sum(axis=-1), 0.0)
        peak = cam.max(axis=(1, 2), keepdims=True)
        cam = np.where(peak > 0, cam / np.where(peak > 0, peak, 1.0), 0.0)
        return CamResult(upsample(cam, self.size), [int(c) for c in cls.numpy()], probs.numpy(), self.layer)


def upsample(cams: np.ndarray, size) -> np.ndarray:
    """(n, h, w) -> (n, H, W), bilinear, clipped to [0, 1]."""
    import cv2

    h, w = size
    return np.stack([np.clip(cv2.resize(c.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)
                     for c in cams]) if len(cams) else np.zeros((0, h, w), np.float32)


def mass_inside(cam: np.ndarray, mask: np.ndarray) -> Optional[float]:
    """Fraction of the heat map's total mass that lies inside ``mask`` (None for an all-zero map)."""
    total = float(cam.sum())
    return None if total <= 0 else float(cam[mask > 0].sum() / total)


def colorize(cam: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8 RGB heat map (OpenCV JET)."""
    import cv2

    return cv2.applyColorMap(np.round(cam * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a heat map over an image in [0, 1] (H, W, 1|3) -> RGB uint8."""
    img = np.clip(np.asarray(image, np.float32), 0, 1)
    img = np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img
    heat = colorize(cam).astype(np.float32) / 255.0
    return np.round(255 * ((1 - alpha) * img + alpha * heat)).astype(np.uint8)
