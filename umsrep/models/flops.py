"""Parameters and FLOPs of a model, for the architecture tables and benchmarks.

FLOPs are counted by TensorFlow's profiler on the frozen inference graph of one image (batch 1): every
floating-point operation of the forward pass, a multiply-add counting as 2.
"""

from __future__ import annotations


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


def model_cost(model) -> dict:
    """``{parameters, trainable_parameters, flops_per_image}``."""
    import numpy as np

    return {"parameters": int(model.count_params()),
            "trainable_parameters": int(sum(np.prod(v.shape) for v in model.trainable_weights)),
            "flops_per_image": count_flops(model)}
