"""``representation.kind: denoising_autoencoder`` — the UMS-Rep convolutional denoising autoencoder
(unsupervised): 3x3 stride-2 conv + BN + ReLU layers (:mod:`.encoder`), trained to reconstruct clean images from
noisy ones through the ``denoise`` decoder (:mod:`umsrep.models.heads.denoise`). Its heads are the standard ones.

With the default widths [32, 64, 128, 256] the encoder plus its symmetric denoising decoder has ~786k
parameters, close to the paper's ~800k.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from umsrep.models import Encoder
from umsrep.registry import ENCODERS
from umsrep.settings import EncoderSettings


class DenoisingAutoencoderSettings(EncoderSettings):
    kind: Literal["denoising_autoencoder"] = "denoising_autoencoder"
    convs_per_level: int = Field(1, ge=1, le=3, description="3x3 conv + BN + ReLU per level: the first with stride 2 "
                                 "(1 = the paper's encoder; 2 = U-Net-like, a larger receptive field)")
    first_stride: Literal[1, 2] = Field(2, description="stride of the first level's first conv: 2 = the paper's "
                                        "encoder (the pyramid starts at half the input size); 1 = a full-resolution "
                                        "first level as in a classic U-Net (about 4x that level's compute; the "
                                        "total stride halves, so add a width to `filters` to keep the depth)")
    DEFAULT_TRAINING: ClassVar[str] = "denoising"
    DEFAULT_FILTERS: ClassVar[list] = [32, 64, 128, 256]


ENCODERS.register("denoising_autoencoder", Encoder(DenoisingAutoencoderSettings,
                                                   "umsrep.models.denoising_autoencoder.encoder:build"))
