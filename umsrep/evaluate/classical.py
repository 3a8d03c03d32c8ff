"""A classical denoiser beside the learned one: OpenCV's non-local means (Buades et al. 2005) with its filter
strength set from each image's own noise estimate, so the report shows what a standard tool reaches on the same
noisy test images without training.

The noise estimate is Immerkær's (1996): the mean absolute response to the 3x3 Laplacian-difference mask
[[1, -2, 1], [-2, 4, -2], [1, -2, 1]], times sqrt(pi / 2) / 6 — a Gaussian-noise sigma estimate that ignores most
image structure. ``h`` = ``H_FACTOR`` x sigma (in 8-bit grey levels); template 7x7, search window 21x21 (OpenCV's
defaults).
"""

from __future__ import annotations

import numpy as np

H_FACTOR = 1.0
_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def estimate_sigma(img: np.ndarray) -> float:
    """Gaussian noise sigma of a 2-D image (same units as ``img``), Immerkær's fast estimate."""
    import cv2

    img = np.asarray(img, np.float32)
    h, w = img.shape[:2]
    if h < 3 or w < 3:
        return 0.0
    r = cv2.filter2D(img, -1, _MASK, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(r).sum() / (6.0 * (w - 2) * (h - 2)))


def nlm_denoise(images: np.ndarray) -> np.ndarray:
    """Non-local means of every image of ``images`` (N, H, W, C) in [0, 1], each channel with ``h`` from its own
    noise estimate; float32 in [0, 1]."""
    import cv2

    x = np.asarray(images, np.float32)
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        for c in range(x.shape[-1]):
            u8 = np.round(np.clip(x[i, ..., c], 0, 1) * 255).astype(np.uint8)
            h = max(1.0, H_FACTOR * estimate_sigma(u8.astype(np.float32)))
            out[i, ..., c] = cv2.fastNlMeansDenoising(u8, None, h=h, templateWindowSize=7, searchWindowSize=21) / 255.0
    return out
