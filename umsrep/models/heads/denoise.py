"""``denoise``: the denoising autoencoder's symmetric decoder, reconstructing a clean image in [0, 1]."""

from __future__ import annotations

from umsrep.models.heads.decoder import build_decoder


def build(s, spec, input_size, *, name="denoise", n_classes=1):
    return build_decoder(spec, input_size, out_channels=s.channels, activation="sigmoid", filters=s.filters,
                         name=name)
