"""Parameters and FLOPs of a model, for metrics.json, the architecture tables and benchmarks — the one place
they are counted.

FLOPs are counted by TensorFlow's profiler on the frozen inference graph of one image (batch 1): every
floating-point operation of the forward pass, a multiply-add counting as 2.
"""

from __future__ import annotations

import math


def count_parameters(model_or_variables) -> dict:
    """``{"trainable": n, "total": n}`` of a Keras model (or layer), or of a list of variables (total = every
    variable given, trainable = those marked trainable)."""
    if hasattr(model_or_variables, "trainable_weights"):
        m = model_or_variables
        return {"trainable": _size(m.trainable_weights), "total": _size(m.weights)}
    variables = list(model_or_variables)
    return {"trainable": _size([v for v in variables if getattr(v, "trainable", True)]), "total": _size(variables)}


def _size(variables) -> int:
    return int(sum(math.prod(int(d) for d in v.shape) for v in variables))


def count_flops(model) -> int:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    graph = convert_variables_to_constants_v2(fn).graph
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=graph, options=opts)
    return int(info.total_float_ops)
