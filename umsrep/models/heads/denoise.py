"""``denoise``: the representation stage's decoder, reconstructing a clean image in [0, 1]: the U-Net decoder
(:mod:`.unet`, default) or the paper's symmetric skip-less one (``representation.decoder: symmetric``)."""

from __future__ import annotations

from umsrep.models.heads.decoder import build_decoder


def build(s, spec, input_size, *, name="denoise", n_classes=1):
    if s.decoder == "unet":
        from umsrep.models.heads.unet import build_denoise

        return build_denoise(s, spec, input_size, name=name)
    return build_decoder(spec, input_size, out_channels=s.channels, activation="sigmoid", filters=s.filters,
                         name=name)
