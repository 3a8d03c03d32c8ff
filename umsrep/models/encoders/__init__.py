"""UMS-Rep encoders. Each builder returns a functional ``keras.Model`` named ``encoder`` that maps an image in
[0, 1] to a list of feature maps, one per resolution, shallowest first (a feature pyramid any head can use).

Builders are looked up by ``representation.kind`` in :data:`ENCODERS`.
"""

from umsrep.registry import Registry

ENCODERS = Registry("encoder")

from umsrep.models.encoders import denoising_ae, dilated_cnn, seeds  # noqa: E402,F401  (register builders)
