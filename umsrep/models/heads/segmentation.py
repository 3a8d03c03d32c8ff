"""``head.kind: segmentation``: the upsampling decoder, optionally with U-Net skip connections."""

from __future__ import annotations

from umsrep.models.heads.decoder import build_decoder, seg_output


def build(s, spec, input_size, *, name, n_classes):
    """Binary: 1 sigmoid channel. Multi-class: softmax over background + classes."""
    out_channels, activation = seg_output(n_classes)
    return build_decoder(spec, input_size, out_channels=out_channels, activation=activation, filters=s.filters,
                         skips=s.skips, name=name)
