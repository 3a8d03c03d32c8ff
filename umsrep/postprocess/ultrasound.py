"""Ultrasound post-processing of segmentation masks (DeepLab-ultrasound style), built on OpenCV.

* :func:`morphological_opening`, :func:`remove_small_objects`, :func:`clean_mask` -- clean-up of binary masks.
* :func:`clean_label_map` -- the same clean-up per foreground class of an integer label map (0 = background).

Masks are (H, W) arrays; any non-zero value counts as foreground. Outputs keep the input dtype and values:
pixels are only ever removed (set to 0), never added.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["remove_small_objects", "morphological_opening", "clean_mask", "clean_label_map"]

DEFAULT_MIN_SIZE = 64
DEFAULT_RADIUS = 1


def _check_mask(mask) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W); got shape {mask.shape}")
    return mask


def remove_small_objects(mask, min_size: int) -> np.ndarray:
    """Remove 8-connected foreground components with fewer than ``min_size`` pixels."""
    mask = _check_mask(mask)
    if min_size <= 1:
        return mask.copy()
    _, labels, stats, _ = cv2.connectedComponentsWithStats((mask != 0).astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_size
    keep[0] = False  # label 0 is the background
    return np.where(keep[labels], mask, 0).astype(mask.dtype, copy=False)


def morphological_opening(mask, radius: int) -> np.ndarray:
    """Opening with an elliptical structuring element of diameter ``2 * radius + 1``; ``radius=0`` is the identity."""
    mask = _check_mask(mask)
    if radius < 0:
        raise ValueError(f"radius must be >= 0; got {radius}")
    if radius == 0:
        return mask.copy()
    size = 2 * int(radius) + 1
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    opened = cv2.morphologyEx((mask != 0).astype(np.uint8), cv2.MORPH_OPEN, element)
    return np.where(opened != 0, mask, 0).astype(mask.dtype, copy=False)


def clean_mask(mask, min_size: int = DEFAULT_MIN_SIZE, radius: int = DEFAULT_RADIUS) -> np.ndarray:
    """Morphological opening, then removal of components smaller than ``min_size`` pixels."""
    return remove_small_objects(morphological_opening(mask, radius), min_size)


def clean_label_map(label_map, min_size: int = DEFAULT_MIN_SIZE, radius: int = DEFAULT_RADIUS) -> np.ndarray:
    """Apply :func:`clean_mask` to each class > 0 of an integer label map; removed pixels become 0 (background)."""
    label_map = _check_mask(label_map)
    out = label_map.copy()
    for k in np.unique(label_map):
        if k == 0:
            continue
        cls = label_map == k
        out[cls & (clean_mask(cls, min_size, radius) == 0)] = 0
    return out
