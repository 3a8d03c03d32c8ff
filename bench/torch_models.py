"""PyTorch twins of the umsrep networks timed by bench/train_throughput.py (benchmark only: `pip install .[bench]`).
Imported only in PyTorch's own process (bench/torch_worker.py, profile_step.py --torch), never next to TensorFlow.

The same layer sequence as umsrep's Keras models, so that images/s compare the frameworks, not the networks:

- encoder (:mod:`umsrep.models.denoising_autoencoder.encoder`, default ``convs_per_level: 1``): the input
  normalisation ``(x - mean) / std``, then per width in [32, 64, 128, 256] a 3x3 stride-2 convolution without
  bias + BatchNorm + ReLU; the four outputs are the feature pyramid;
- U-Net decoder (:func:`umsrep.models.heads.unet.unet_decoder`: the ``denoise`` head with its default
  ``representation.decoder: unet``, and the ``unet`` segmentation head, the default one): from the deepest level,
  per step a 2x bilinear upsampling (half-pixel centres, as Keras' ``UpSampling2D(interpolation="bilinear")``),
  the concatenation ``[upsampled, skip]`` with the next shallower encoder level (at the last, full-resolution
  step: the raw input image, before the normalisation), then two 3x3 convolutions without bias + BatchNorm +
  ReLU, at widths [128, 64, 32, 16]; then a 1x1 convolution with bias + the output activation (:class:`UNetHead`).
  The denoising autoencoder (:func:`denoising_autoencoder`) is the encoder + this decoder with as many sigmoid
  channels as the image (a clean image in [0, 1]; no residual); the segmenter (:func:`unet_segmenter`) the same
  network with one sigmoid lesion channel, so for one-channel images the two are identical and differ only in
  their loss (MSE vs dice_ce);
- symmetric decoder (:func:`umsrep.models.heads.decoder.build_decoder`, the skip-less ``segmentation`` /
  ``symmetric`` head with one class, which the ``seg`` case trains on a frozen encoder: :class:`FrozenEncoderHead`):
  from the deepest level, per step a 2x nearest-neighbour upsampling + 3x3 convolution without bias + BatchNorm +
  ReLU at widths [128, 64, 32, 32], then a 3x3 convolution with bias to one channel + sigmoid (:class:`Decoder`).

BatchNorm as umsrep's blocks (:data:`umsrep.models.blocks.conv.BN_MOMENTUM`): epsilon 1e-3, momentum 0.9 in
Keras' convention, 0.1 in PyTorch's (``1 -`` Keras'); PyTorch's running variance is the unbiased one, Keras' the
biased one (no difference in speed). Adam as Keras': epsilon 1e-7. Keras' ``padding="same"`` for a stride-2
convolution of an even input pads one pixel at the bottom/right only; PyTorch's ``padding=1`` pads one pixel on
every side. Both give the same output shape and the same FLOPs; ``tf_same=True`` pads exactly as Keras does (an
explicit ``F.pad`` before the stride-2 convolutions), which :func:`check_unet_against_reference` and
:func:`check_symmetric_against_reference` use to show that twin and Keras model compute the same function with
the Keras weights copied in. The benchmark uses ``padding=1``, as a PyTorch user would write it.

MMA-Net has no PyTorch twin here (not built).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_FILTERS = (32, 64, 128, 256)
BN_EPS, BN_MOMENTUM = 1e-3, 0.1      # umsrep's FusedBatchNormalization(epsilon=1e-3, momentum=0.9)
ACTIVATIONS = {"sigmoid": torch.sigmoid, "softmax": lambda z: torch.softmax(z, dim=1), "linear": lambda z: z}


class ConvBNReLU(nn.Module):
    """3x3 convolution (no bias) + BatchNorm + ReLU, as umsrep's ``conv_bn_relu``."""

    def __init__(self, cin, cout, stride=1, tf_same=False):
        super().__init__()
        self.tf_pad = tf_same and stride == 2
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=0 if self.tf_pad else 1, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x):
        if self.tf_pad:
            x = F.pad(x, (0, 1, 0, 1))   # Keras "same", stride 2, even size: one pixel bottom/right
        return F.relu(self.bn(self.conv(x)))


class Encoder(nn.Module):
    """Image -> feature pyramid (shallowest first)."""

    def __init__(self, in_channels=1, filters=DEFAULT_FILTERS, mean=0.0, std=1.0, tf_same=False):
        super().__init__()
        self.mean, self.std = float(mean), max(float(std), 1e-6)
        widths = [in_channels, *filters]
        self.blocks = nn.ModuleList(ConvBNReLU(a, b, stride=2, tf_same=tf_same) for a, b in zip(widths, widths[1:]))

    def forward(self, x):
        x = (x - self.mean) / self.std
        pyramid = []
        for block in self.blocks:
            x = block(x)
            pyramid.append(x)
        return pyramid


class Decoder(nn.Module):
    """The symmetric skip-less decoder: deepest pyramid level -> a sigmoid image at the input size (the ``seg``
    case's one-class ``segmentation`` head)."""

    def __init__(self, filters=DEFAULT_FILTERS, out_channels=1):
        super().__init__()
        widths = [filters[-1], *reversed(filters[:-1]), filters[0]]   # 256 -> 128, 64, 32, 32
        self.blocks = nn.ModuleList(ConvBNReLU(a, b) for a, b in zip(widths, widths[1:]))
        self.logits = nn.Conv2d(widths[-1], out_channels, 3 if out_channels <= 3 else 1,
                                padding=1 if out_channels <= 3 else 0)

    def forward(self, pyramid):
        x = pyramid[-1]
        for block in self.blocks:
            x = block(F.interpolate(x, scale_factor=2, mode="nearest"))
        return torch.sigmoid(self.logits(x))


class FrozenEncoderHead(nn.Module):
    """The ``independent`` stage: a frozen encoder (inference-mode BatchNorm, no gradients) + a trained head."""

    def __init__(self, encoder: Encoder, head: Decoder):
        super().__init__()
        self.encoder, self.head = encoder, head
        self.encoder.requires_grad_(False)

    def train(self, mode=True):
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, x):
        with torch.no_grad():
            feats = self.encoder(x)
        return self.head(feats)


class UNetHead(nn.Module):
    """umsrep's U-Net decoder (:func:`umsrep.models.heads.unet.unet_decoder`): pyramid + raw image ->
    ``out_channels`` maps through ``activation`` (``sigmoid``, ``softmax`` over the channels, or ``linear``)."""

    def __init__(self, filters=DEFAULT_FILTERS, out_channels=1, image_channels=1, widths=None, convs=2,
                 activation="sigmoid"):
        super().__init__()
        # umsrep.models.heads.unet.default_filters: each reached level's width, then half the shallowest (>= 16)
        widths = list(widths) if widths is not None else [*reversed(filters[:-1]), max(16, filters[0] // 2)]
        skips = [*reversed(filters[:-1]), image_channels]     # channels concatenated at each step
        cin, steps = filters[-1], []
        for w, skip in zip(widths, skips):
            steps.append(nn.Sequential(*(ConvBNReLU(cin + skip if j == 0 else w, w) for j in range(convs))))
            cin = w
        self.steps = nn.ModuleList(steps)
        self.logits = nn.Conv2d(cin, out_channels, 1)
        self.activation = activation
        self.act = ACTIVATIONS[activation]

    def forward(self, pyramid, image):
        x = pyramid[-1]
        for step, skip in zip(self.steps, [*reversed(pyramid[:-1]), image]):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = step(torch.cat([x, skip], dim=1))     # Keras: Concatenate([upsampled, skip])
        return self.act(self.logits(x))


class EncoderUNet(nn.Module):
    """Encoder + U-Net decoder, both trained (the denoising autoencoder; a segmenter fine-tuning its encoder, as
    the ``joint`` strategy does); the decoder reads the raw image too."""

    def __init__(self, encoder: Encoder, head: UNetHead):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x):
        return self.head(self.encoder(x), x)


def encoder_unet(in_channels=1, filters=DEFAULT_FILTERS, out_channels=1, activation="sigmoid", mean=0.0, std=1.0,
                 tf_same=False) -> EncoderUNet:
    """The denoising autoencoder's encoder + a U-Net decoder with ``out_channels`` ``activation`` outputs."""
    return EncoderUNet(Encoder(in_channels, filters, mean, std, tf_same=tf_same),
                       UNetHead(filters, out_channels, in_channels, activation=activation))


def denoising_autoencoder(in_channels=1, filters=DEFAULT_FILTERS, mean=0.0, std=1.0, tf_same=False) -> EncoderUNet:
    """umsrep's denoising autoencoder (the ``denoise`` head's default ``decoder: unet``,
    :func:`umsrep.models.heads.unet.build_denoise`): a clean image in [0, 1], as many sigmoid channels as the
    image."""
    return encoder_unet(in_channels, filters, in_channels, "sigmoid", mean, std, tf_same)


def unet_segmenter(in_channels=1, filters=DEFAULT_FILTERS, n_classes=1, mean=0.0, std=1.0,
                   tf_same=False) -> EncoderUNet:
    """The denoising autoencoder's encoder + the default segmentation head (``head.kind: unet``): binary -> one
    sigmoid channel; multi-class -> softmax over background + classes (umsrep's ``seg_output``)."""
    out_channels, activation = (1, "sigmoid") if n_classes == 1 else (n_classes + 1, "softmax")
    return encoder_unet(in_channels, filters, out_channels, activation, mean, std, tf_same)


def frozen_encoder_segmenter(in_channels=1, filters=DEFAULT_FILTERS, mean=0.0, std=1.0,
                             tf_same=False) -> FrozenEncoderHead:
    """The ``seg`` case: the frozen encoder + the one-class symmetric ``segmentation`` head."""
    return FrozenEncoderHead(Encoder(in_channels, filters, mean, std, tf_same=tf_same), Decoder(filters, 1))


# -------------------------------------------------------------------------------------------------- losses

def mse_loss(y, p):
    return torch.mean(torch.square(y.float() - p.float()))


def dice_ce_loss(y, p, smooth=1.0, eps=1e-7):
    """umsrep's ``dice_ce`` for one class: 1 - soft Dice (per image, smoothed) + binary cross-entropy.
    ``y``: (B, 1, H, W) 0/1 float mask; ``p``: sigmoid probabilities of the same shape."""
    t, p = y.float(), p.float()
    inter = torch.sum(t * p, dim=(2, 3))
    total = torch.sum(t, dim=(2, 3)) + torch.sum(p, dim=(2, 3))
    dice = 1.0 - torch.mean((2.0 * inter + smooth) / (total + smooth))
    q = torch.clamp(p, eps, 1.0 - eps)
    ce = -torch.mean(t * torch.log(q) + (1.0 - t) * torch.log(1.0 - q))
    return dice + ce


def adam(params, lr=1e-4):
    return torch.optim.Adam([p for p in params if p.requires_grad], lr=lr, eps=1e-7)


# -------------------------------------------------------------------------------------------------- counting

def count(module: nn.Module) -> dict:
    """Parameters as Keras counts them: ``total`` includes BatchNorm's running mean and variance (Keras'
    non-trainable moving statistics), ``trainable`` the parameters with gradients (frozen parts excluded).
    train_throughput.py compares them with the Keras model's (in its own process: no TensorFlow here)."""
    params = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    stats = sum(b.numel() for n, b in module.named_buffers() if n.endswith(("running_mean", "running_var")))
    return {"total": int(params + stats), "trainable": int(trainable)}


# -------------------------------------------------------------------------------------------------- checking

def _copy_conv_bn(block: ConvBNReLU, ref: dict, prefix: str):
    block.conv.weight.copy_(torch.from_numpy(ref[f"{prefix}.kernel"].transpose(3, 2, 0, 1).copy()))
    for t, key in ((block.bn.weight, "gamma"), (block.bn.bias, "beta"), (block.bn.running_mean, "mean"),
                   (block.bn.running_var, "var")):
        t.copy_(torch.from_numpy(ref[f"{prefix}.{key}"]))


def _ref_filters(ref: dict) -> list:
    n_enc = sum(1 for k in ref if k.startswith("encoder.") and k.endswith(".kernel"))
    return [int(ref[f"encoder.{i}.kernel"].shape[-1]) for i in range(1, n_enc + 1)]


def _copy_logits(conv: nn.Conv2d, ref: dict):
    conv.weight.copy_(torch.from_numpy(ref["logits.kernel"].transpose(3, 2, 0, 1).copy()))
    conv.bias.copy_(torch.from_numpy(ref["logits.bias"]))


def _max_difference(m: nn.Module, ref: dict) -> float:
    m.eval()
    out = m(torch.from_numpy(ref["x"].transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
    return float(np.max(np.abs(ref["out"] - out)))


@torch.no_grad()
def check_unet_against_reference(ref: dict) -> float:
    """Max |Keras - PyTorch| of the inference outputs of an encoder + U-Net decoder (:func:`encoder_unet`: the
    ``dae`` and ``unet`` cases), with Keras' exact padding and the Keras weights copied in (train_throughput.py
    raises if it is above 1e-4). ``ref`` is written by train_throughput.py (``unet_reference``) from the Keras
    model, so that this process needs no TensorFlow: ``mean``, ``std`` (the input normalisation),
    ``encoder.{i}.*`` (i from 1) and ``decoder.{k}.{j}.*`` (step k from 1, deepest first; conv j from 1), each
    ``kernel`` (kh, kw, cin, cout) and BatchNorm's ``gamma``, ``beta``, ``mean``, ``var``; ``logits.kernel``
    (1, 1, cin, cout), ``logits.bias``, ``activation`` (the Keras output layer's), the images ``x`` (N, H, W, C)
    and the Keras outputs ``out``."""
    cin = int(ref["x"].shape[-1])
    m = encoder_unet(cin, _ref_filters(ref), int(ref["logits.bias"].shape[0]), str(ref["activation"]),
                     float(ref["mean"]), float(ref["std"]), tf_same=True)
    for i, block in enumerate(m.encoder.blocks, start=1):
        _copy_conv_bn(block, ref, f"encoder.{i}")
    for k, step in enumerate(m.head.steps, start=1):
        for j, block in enumerate(step, start=1):
            _copy_conv_bn(block, ref, f"decoder.{k}.{j}")
    _copy_logits(m.head.logits, ref)
    return _max_difference(m, ref)


@torch.no_grad()
def check_symmetric_against_reference(ref: dict) -> float:
    """As :func:`check_unet_against_reference`, for the ``seg`` case (:func:`frozen_encoder_segmenter`): ``ref``
    (``symmetric_reference``) holds ``decoder.{i}.*`` (i from 1, deepest first) and a 3x3 ``logits.kernel``."""
    m = frozen_encoder_segmenter(int(ref["x"].shape[-1]), _ref_filters(ref), float(ref["mean"]),
                                 float(ref["std"]), tf_same=True)
    for i, block in enumerate(m.encoder.blocks, start=1):
        _copy_conv_bn(block, ref, f"encoder.{i}")
    for i, block in enumerate(m.head.blocks, start=1):
        _copy_conv_bn(block, ref, f"decoder.{i}")
    _copy_logits(m.head.logits, ref)
    return _max_difference(m, ref)
