"""Data augmentation: named transforms (:data:`TRANSFORMS`), recipe presets (:class:`AugmentConfig`) and the
per-sample tf.data map function (:func:`augmentation`). Spatial transforms move image and masks together;
intensity transforms change the image only. Applied to the training split only, after the split.

Importing this package imports no TensorFlow (the recipe schema uses it); the ops import it when they run.
"""

from umsrep.transforms.base import TRANSFORMS, IntensityTransform, SpatialTransform, Transform
from umsrep.transforms.compose import Augmentation, augmentation
from umsrep.transforms.config import PRESETS, AugmentConfig, log_augmentation

__all__ = ["TRANSFORMS", "Transform", "SpatialTransform", "IntensityTransform", "PRESETS", "AugmentConfig",
           "Augmentation", "augmentation",
           "log_augmentation"]
