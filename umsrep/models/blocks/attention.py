"""Attention and shrinkage blocks of the seed architectures, as serializable Keras layers.

- :class:`CoordinateAttention` (Hou et al. 2021, used by MMA-Net): pool along H and along W, concatenate, a
  shared 1x1 conv + BN + ReLU, split, one 1x1 conv + sigmoid per direction; output ``x · a_h · a_w``.
- :class:`ResidualAttention` (Wang et al. 2017, used by the attention encoder-decoder for DCM): trunk branch
  ``T`` of four 3x3 conv + BN + ReLU, soft-mask branch ``M``: a small encoder (two stride-2 1x1 convs) and
  decoder (two stride-2 7x7 transposed convs), ``mask_filters`` wide, with a sigmoid; output ``(1 + M(x)) · T(x)``.
- :class:`SoftThreshold` (deep residual shrinkage, used by the lightweight myositis classifier): per-channel
  thresholds ``τ = α · mean|x|`` with ``α = sigmoid(FC(ReLU(FC(GAP|x|))))``; output ``sign(x)·max(|x| − τ, 0)``.

Each layer exposes its intermediate quantities (``attention_maps``, ``branches``, ``thresholds``) so tests can
check the defining equation.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from umsrep.models.blocks.conv import BN_MOMENTUM  # noqa: E402  (one value for every block)
from umsrep.models.blocks.norm import FusedBatchNormalization


@keras.saving.register_keras_serializable(package="umsrep")
class CoordinateAttention(layers.Layer):
    def __init__(self, reduction=8, min_channels=8, **kwargs):
        super().__init__(**kwargs)
        self.reduction, self.min_channels = int(reduction), int(min_channels)

    def build(self, input_shape):
        c = int(input_shape[-1])
        mid = max(self.min_channels, c // self.reduction)
        self.shared = layers.Conv2D(mid, 1, use_bias=False, name="shared_conv")
        self.bn = FusedBatchNormalization(momentum=BN_MOMENTUM, name="shared_bn")
        self.conv_h = layers.Conv2D(c, 1, name="conv_h")
        self.conv_w = layers.Conv2D(c, 1, name="conv_w")
        h, w = int(input_shape[1]), int(input_shape[2])
        self.shared.build((None, h + w, 1, c))
        self.bn.build((None, h + w, 1, mid))
        self.conv_h.build((None, h, 1, mid))
        self.conv_w.build((None, w, 1, mid))
        self._hw = (h, w)

    def attention_maps(self, x, training=None):
        """(a_h: (N, H, 1, C), a_w: (N, 1, W, C)), both in (0, 1)."""
        h, w = self._hw
        pooled_h = ops.mean(x, axis=2, keepdims=True)                              # (N, H, 1, C)
        pooled_w = ops.transpose(ops.mean(x, axis=1, keepdims=True), (0, 2, 1, 3))  # (N, W, 1, C)
        y = ops.relu(self.bn(self.shared(ops.concatenate([pooled_h, pooled_w], axis=1)), training=training))
        a_h = ops.sigmoid(self.conv_h(y[:, :h]))
        a_w = ops.transpose(ops.sigmoid(self.conv_w(y[:, h:h + w])), (0, 2, 1, 3))
        return a_h, a_w

    def call(self, x, training=None):
        a_h, a_w = self.attention_maps(x, training=training)
        return x * a_h * a_w

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction, "min_channels": self.min_channels}


@keras.saving.register_keras_serializable(package="umsrep")
class ResidualAttention(layers.Layer):
    def __init__(self, filters, mask_filters=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.mask_filters = int(mask_filters or max(8, self.filters // 4))
        f, fm = self.filters, self.mask_filters
        self.trunk = [(layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"trunk{i}_conv"),
                       FusedBatchNormalization(momentum=BN_MOMENTUM, name=f"trunk{i}_bn")) for i in range(1, 5)]
        self.mask_down = [layers.Conv2D(fm, 1, strides=2, activation="relu", name=f"mask_down{i}")
                          for i in range(1, 3)]
        self.mask_up = [layers.Conv2DTranspose(fm, 7, strides=2, padding="same", name="mask_up1",
                                               activation="relu"),
                        layers.Conv2DTranspose(f, 7, strides=2, padding="same", name="mask_up2")]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv, bn in self.trunk:
            conv.build(shape)
            shape = (*shape[:-1], self.filters)
            bn.build(shape)
        m = tuple(input_shape)
        for conv in self.mask_down:
            conv.build(m)
            m = conv.compute_output_shape(m)
        for conv in self.mask_up:
            conv.build(m)
            m = conv.compute_output_shape(m)

    def branches(self, x, training=None):
        """(T(x), M(x)); M in (0, 1), same shape as T (input H and W must be divisible by 4)."""
        t = x
        for conv, bn in self.trunk:
            t = ops.relu(bn(conv(t), training=training))
        m = x
        for conv in self.mask_down + self.mask_up:
            m = conv(m)
        return t, ops.sigmoid(m)

    def call(self, x, training=None):
        t, m = self.branches(x, training=training)
        return (1.0 + m) * t

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "mask_filters": self.mask_filters}


@keras.saving.register_keras_serializable(package="umsrep")
class SoftThreshold(layers.Layer):
    def __init__(self, reduction=4, **kwargs):
        super().__init__(**kwargs)
        self.reduction = int(reduction)

    def build(self, input_shape):
        c = int(input_shape[-1])
        self.fc1 = layers.Dense(max(4, c // self.reduction), name="fc1")
        self.bn = FusedBatchNormalization(momentum=BN_MOMENTUM, name="bn")
        self.fc2 = layers.Dense(c, name="fc2")
        self.fc1.build((None, c))
        self.bn.build((None, max(4, c // self.reduction)))
        self.fc2.build((None, max(4, c // self.reduction)))

    def thresholds(self, x, training=None):
        """τ per image and channel, shape (N, 1, 1, C): α · mean|x| with α in (0, 1)."""
        mean_abs = ops.mean(ops.abs(x), axis=(1, 2))                       # (N, C)
        alpha = ops.sigmoid(self.fc2(ops.relu(self.bn(self.fc1(mean_abs), training=training))))
        return ops.expand_dims(ops.expand_dims(alpha * mean_abs, 1), 1)

    def call(self, x, training=None):
        tau = self.thresholds(x, training=training)
        return ops.sign(x) * ops.maximum(ops.abs(x) - tau, 0.0)

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction}
