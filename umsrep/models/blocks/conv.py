"""Basic convolution blocks shared by encoders and heads."""

from __future__ import annotations

from keras import layers

from umsrep.models.blocks.norm import FusedBatchNormalization

#: BatchNorm momentum of every block: 0.9 (Keras' default 0.99 leaves the running variance of a model trained for
#: a few hundred steps far from the layers' real input statistics, so inference mode degenerates)
BN_MOMENTUM = 0.9


def conv_bn_relu(x, filters, *, strides=1, dilation=1, kernel=3, name, batchnorm=True, bn_momentum=BN_MOMENTUM):
    """3x3 conv (no bias when followed by BN) + BatchNorm + ReLU; every layer gets a stable name."""
    x = layers.Conv2D(filters, kernel, strides=strides, dilation_rate=dilation, padding="same",
                      use_bias=not batchnorm, name=f"{name}_conv")(x)
    if batchnorm:
        x = FusedBatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def residual_block(x, filters, *, strides=1, dilation=1, kernel=3, name, bn_momentum=BN_MOMENTUM):
    """Two conv + BN (ReLU between), added to the input (1x1 conv + BN shortcut when the shape changes), ReLU."""
    shortcut = x
    if strides != 1 or int(x.shape[-1]) != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_proj")(x)
        shortcut = FusedBatchNormalization(momentum=bn_momentum, name=f"{name}_proj_bn")(shortcut)
    y = conv_bn_relu(x, filters, strides=strides, dilation=dilation, kernel=kernel, name=f"{name}_a",
                     bn_momentum=bn_momentum)
    y = layers.Conv2D(filters, kernel, dilation_rate=dilation, padding="same", use_bias=False, name=f"{name}_b_conv")(y)
    y = FusedBatchNormalization(momentum=bn_momentum, name=f"{name}_b_bn")(y)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_relu")(y)


def aspp(x, filters, *, rates=(1, 6, 12, 18), image_pooling=True, name, bn_momentum=BN_MOMENTUM):
    """Atrous spatial pyramid pooling: a 1x1 conv for rate 1, a 3x3 conv with dilation r for every other rate,
    and (optionally) image pooling (GAP -> 1x1 conv -> upsampled back), each + BN + ReLU, concatenated and fused
    by a 1x1 conv + BN + ReLU. Branch convs are named ``{name}_r{rate}_conv``."""
    h, w = int(x.shape[1]), int(x.shape[2])
    branches = [conv_bn_relu(x, filters, kernel=1 if r == 1 else 3, dilation=r, name=f"{name}_r{r}",
                             bn_momentum=bn_momentum) for r in rates]
    if image_pooling:
        p = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
        p = conv_bn_relu(p, filters, kernel=1, name=f"{name}_pool_proj", bn_momentum=bn_momentum)
        branches.append(layers.UpSampling2D((h, w), name=f"{name}_pool_up")(p))
    y = layers.Concatenate(name=f"{name}_concat")(branches) if len(branches) > 1 else branches[0]
    return conv_bn_relu(y, filters, kernel=1, name=f"{name}_fuse", bn_momentum=bn_momentum)
