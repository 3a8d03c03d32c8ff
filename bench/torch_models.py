"""PyTorch twins of the umsrep networks timed by bench/train_throughput.py (benchmark only: `pip install .[bench]`).
Imported only in PyTorch's own process (bench/torch_worker.py, profile_step.py --torch), never next to TensorFlow.

The same layer sequence as umsrep's Keras models, so that images/s compare the frameworks, not the networks:

- encoder (:mod:`umsrep.models.denoising_autoencoder.encoder`): the input normalisation ``(x - mean) / std``, then per
  width in [32, 64, 128, 256] a 3x3 stride-2 convolution without bias + BatchNorm + ReLU; the four outputs are
  the feature pyramid;
- decoder (:func:`umsrep.models.heads.decoder.build_decoder`, the ``denoise`` head and the one-class ``segmentation``
  head): from the deepest level, per step a 2x nearest-neighbour upsampling + 3x3 convolution without bias +
  BatchNorm + ReLU at widths [128, 64, 32, 32], then a 3x3 convolution with bias to one channel + sigmoid.

BatchNorm as Keras' default: epsilon 1e-3, momentum 0.99 (PyTorch's ``momentum`` is 1 - Keras'). Adam as
Keras': epsilon 1e-7. Keras' ``padding="same"`` for a stride-2 convolution of an even input pads one pixel at
the bottom/right only; PyTorch's ``padding=1`` pads one pixel on every side. Both give the same output shape and
the same FLOPs; ``tf_same=True`` pads exactly as Keras does (an explicit ``F.pad`` before the stride-2
convolutions), which :func:`check_against_reference` uses to show the two networks compute the same function. The
benchmark uses ``padding=1``, as a PyTorch user would write it.

MMA-Net has no PyTorch twin here (not built).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_FILTERS = (32, 64, 128, 256)
BN_EPS, BN_MOMENTUM = 1e-3, 0.01     # Keras BatchNormalization(epsilon=1e-3, momentum=0.99)


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
    """Deepest pyramid level -> a one-channel sigmoid image at the input size (the denoise / lesion head)."""

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


class EncoderDecoder(nn.Module):
    def __init__(self, encoder: Encoder, decoder: Decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x):
        return self.decoder(self.encoder(x))


def denoising_autoencoder(in_channels=1, filters=DEFAULT_FILTERS, tf_same=False) -> EncoderDecoder:
    return EncoderDecoder(Encoder(in_channels, filters, tf_same=tf_same), Decoder(filters, in_channels))


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


@torch.no_grad()
def check_against_reference(ref: dict) -> float:
    """Max |Keras - PyTorch| of the DAE's inference outputs, with Keras' exact padding and the Keras weights
    copied in (train_throughput.py raises if it is above 1e-4). ``ref`` is written by train_throughput.py from
    umsrep's Keras DAE, so that this process needs no TensorFlow: ``mean``, ``std`` (the input normalisation),
    ``encoder.{i}.*`` and ``decoder.{i}.*`` (i from 1; ``kernel`` (kh, kw, cin, cout), BatchNorm's ``gamma``,
    ``beta``, ``mean``, ``var``), ``logits.kernel``, ``logits.bias``, the images ``x`` (N, H, W, C) and the Keras
    outputs ``out``."""
    n_enc = sum(1 for k in ref if k.startswith("encoder.") and k.endswith(".kernel"))
    filters = [int(ref[f"encoder.{i}.kernel"].shape[-1]) for i in range(1, n_enc + 1)]
    cin = int(ref["x"].shape[-1])
    m = EncoderDecoder(Encoder(cin, filters, float(ref["mean"]), float(ref["std"]), tf_same=True),
                       Decoder(filters, cin))
    for i, block in enumerate(m.encoder.blocks, start=1):
        _copy_conv_bn(block, ref, f"encoder.{i}")
    for i, block in enumerate(m.decoder.blocks, start=1):
        _copy_conv_bn(block, ref, f"decoder.{i}")
    m.decoder.logits.weight.copy_(torch.from_numpy(ref["logits.kernel"].transpose(3, 2, 0, 1).copy()))
    m.decoder.logits.bias.copy_(torch.from_numpy(ref["logits.bias"]))
    m.eval()
    out = m(torch.from_numpy(ref["x"].transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
    return float(np.max(np.abs(ref["out"] - out)))
