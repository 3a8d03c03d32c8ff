"""BatchNorm on TensorFlow's fused kernel.

Keras 3's ``BatchNormalization`` computes its statistics and normalisation from separate ops (moments, Mul,
Sum, Tile, Sub), in float32 even under ``mixed_bfloat16`` (with a Cast each way). On a CPU that made BatchNorm
20 % of the denoising autoencoder's float32 training step and 28 % of its bfloat16 step (bench/profile_step.py),
against 10-15 % in PyTorch. :class:`FusedBatchNormalization` is the same layer — same weights, config, names,
momentum and biased moving variance — whose 4-D channels-last calls run ``FusedBatchNormV3`` (one kernel
forward, one backward; bfloat16 inputs with float32 statistics). Other inputs fall back to the Keras code.
Measured on 2 cores (docs/performance.md): the autoencoder's training step +29 % float32, +62 % bfloat16.
"""

from __future__ import annotations

import keras
import tensorflow as tf

_FUSED_DTYPES = (tf.float32, tf.bfloat16, tf.float16)


@keras.saving.register_keras_serializable(package="umsrep")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    def _fusable(self, inputs, mask):
        return (len(inputs.shape) == 4 and self.axis in (-1, 3) and mask is None and not self.synchronized
                and tf.as_dtype(inputs.dtype) in _FUSED_DTYPES)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        c = inputs.shape[-1]
        scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([c], tf.float32)
        offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([c], tf.float32)
        if training and self.trainable:
            y, mean, var, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=scale, offset=offset, mean=tf.constant([], tf.float32),
                variance=tf.constant([], tf.float32), epsilon=self.epsilon, exponential_avg_factor=1.0,
                data_format="NHWC", is_training=True)
            n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), tf.float32)
            var = var * (n - 1.0) / tf.maximum(n, 1.0)  # the kernel returns the unbiased variance; Keras keeps biased
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + var * (1.0 - m))
        else:
            y = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=scale, offset=offset, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon,
                exponential_avg_factor=1.0, data_format="NHWC", is_training=False)[0]
        return tf.cast(y, self.compute_dtype)
