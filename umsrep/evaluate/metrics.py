"""Evaluation metrics for classification, segmentation and denoising.

Conventions
-----------
* Every function takes numpy arrays (or anything ``np.asarray`` accepts) and computes in
  float64 numpy, except SSIM / MS-SSIM, which run ``tf.image.ssim`` /
  ``tf.image.ssim_multiscale`` in float32. TensorFlow is imported lazily, only inside those
  two functions, so importing this module is cheap.
* Shapes are validated up front; any mismatch raises ``ValueError`` with a message that names
  the argument and the shapes involved.
* The ``*_metrics`` functions return JSON-friendly values only: python ``float``/``int``,
  lists, dicts and ``None`` (for quantities that are undefined, e.g. ROC AUC when ``y_true``
  holds a single class). No numpy scalars, no NaN.
* Labels are integers. Class labels run ``0..K-1`` and index ``classes``; segmentation label
  maps use ``0`` for background and ``1..len(classes)`` for the named foreground classes.
  Float arrays holding integral values are accepted as labels.
* "Undefined" ratios (0/0) follow the scikit-learn ``zero_division=0`` convention and score
  0.0 -- except Dice/IoU, where an image in which both the reference and the prediction are
  empty for a class scores 1.0 (nothing to find, nothing found).
* Images for PSNR/SSIM are ``(N, H, W)`` or ``(N, H, W, C)`` floats, normally in ``[0, 1]``
  (``data_range=1.0``); the per-image functions return an ``(N,)`` float array.
* PSNR of identical images is ``inf`` per image; when averaging (``denoising_metrics``) each
  value is capped at :data:`PSNR_CAP_DB` = 100 dB so the mean stays finite.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

__all__ = [
    "PSNR_CAP_DB",
    "MS_SSIM_POWER_FACTORS",
    "mcc",
    "confusion_matrix",
    "classification_metrics",
    "segmentation_metrics",
    "psnr",
    "ssim",
    "ms_ssim",
    "denoising_metrics",
    "image_quality",
    "summarize_quality",
]

#: PSNR values are capped at this many dB before averaging (identical images give ``inf``).
PSNR_CAP_DB = 100.0

#: Standard MS-SSIM scale weights (Wang, Simoncelli & Bovik 2003), finest scale first.
MS_SSIM_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

_SSIM_FILTER_SIZE = 11
_SSIM_FILTER_SIGMA = 1.5
_SSIM_BATCH = 64  # images per TensorFlow call, bounds memory on large test sets


# --------------------------------------------------------------------------- validation


def _as_labels(x: Any, name: str, ndim: Optional[int] = None) -> np.ndarray:
    """Return ``x`` as an int64 array of non-negative integer labels, or raise ValueError."""
    arr = np.asarray(x)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if arr.size == 0:
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.integer):
        out = arr.astype(np.int64)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or inf; labels must be integers")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} contains non-integer values; labels must be integers")
        out = arr.astype(np.int64)
    else:
        raise ValueError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    if out.min() < 0:
        raise ValueError(f"{name} contains negative labels (min {int(out.min())})")
    return out


def _check_label_range(arr: np.ndarray, n: int, name: str, what: str) -> None:
    if arr.size and arr.max() >= n:
        raise ValueError(f"{name} contains label {int(arr.max())} but only {n} {what} exist "
                         f"(valid labels 0..{n - 1})")


def _check_class_names(classes: Sequence[Any], minimum: int, name: str = "classes") -> List[str]:
    if isinstance(classes, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of class names, got a single string")
    names = [str(c) for c in classes]
    if len(names) < minimum:
        raise ValueError(f"{name} must name at least {minimum} class(es), got {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{name} contains duplicate names: {names}")
    return names


def _as_images(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim not in (3, 4):
        raise ValueError(f"{name} must be (N, H, W) or (N, H, W, C), got shape {arr.shape}")
    if arr.shape[0] == 0 or any(s == 0 for s in arr.shape[1:]):
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _image_pair(clean: Any, test: Any, data_range: float) -> tuple:
    a = _as_images(clean, "clean")
    b = _as_images(test, "test")
    if a.shape != b.shape:
        raise ValueError(f"clean and test must have the same shape, got {a.shape} and {b.shape}")
    data_range = float(data_range)
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number, got {data_range}")
    return a, b, data_range


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise num/den with 0 where den == 0 (scikit-learn ``zero_division=0``)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


# --------------------------------------------------------------------------- classification


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Confusion matrix ``C`` of shape (n_classes, n_classes), int64.

    ``C[i, j]`` counts samples whose true class is ``i`` and predicted class is ``j``
    (rows = true, columns = predicted). Labels must be integers in ``0..n_classes-1``.
    """
    n_classes = int(n_classes)
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    t = _as_labels(y_true, "y_true", ndim=1)
    p = _as_labels(y_pred, "y_pred", ndim=1)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.shape[0]} "
                         f"and {p.shape[0]}")
    _check_label_range(t, n_classes, "y_true", "classes")
    _check_label_range(p, n_classes, "y_pred", "classes")
    flat = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes).astype(np.int64)


def _mcc_from_cm(cm: np.ndarray) -> float:
    """Gorodkin's multi-class R_K from a confusion matrix (rows true, cols predicted).

    R_K = (c*s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2) (s^2 - sum_k t_k^2)), where
    c = trace, s = total, t_k = row sums (true counts), p_k = column sums (predicted counts).
    Computed with python integers (exact, no overflow); 0.0 when the denominator is 0.
    """
    cm = np.asarray(cm, dtype=np.int64)
    t = [int(v) for v in cm.sum(axis=1)]
    p = [int(v) for v in cm.sum(axis=0)]
    c = int(np.trace(cm))
    s = int(cm.sum())
    cov_tp = c * s - sum(pk * tk for pk, tk in zip(p, t))
    cov_pp = s * s - sum(pk * pk for pk in p)
    cov_tt = s * s - sum(tk * tk for tk in t)
    if cov_pp == 0 or cov_tt == 0:
        return 0.0
    return float(cov_tp / (math.sqrt(cov_pp) * math.sqrt(cov_tt)))


def mcc(y_true: Any, y_pred: Any, n_classes: Optional[int] = None) -> float:
    """Matthews correlation coefficient (multi-class: Gorodkin's R_K), in [-1, 1].

    ``n_classes`` defaults to ``max(label) + 1`` over both arrays (it does not change the
    value; extra empty classes contribute nothing). Returns 0.0 when the coefficient is
    undefined (zero denominator, e.g. a constant prediction or a single true class).
    """
    t = _as_labels(y_true, "y_true", ndim=1)
    p = _as_labels(y_pred, "y_pred", ndim=1)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.shape[0]} "
                         f"and {p.shape[0]}")
    if n_classes is None:
        if t.size == 0:
            return 0.0
        n_classes = int(max(t.max(), p.max())) + 1
    return _mcc_from_cm(confusion_matrix(t, p, n_classes))


def _binary_auc(labels: np.ndarray, scores: np.ndarray) -> Optional[float]:
    """ROC AUC of a binary problem, or None when ``labels`` holds only one value."""
    from sklearn.metrics import roc_auc_score

    if labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels.astype(np.int64), scores))


def classification_metrics(y_true: Any, probs: Any, classes: Sequence[Any]) -> Dict[str, Any]:
    """Classification report from class probabilities.

    Args:
        y_true: int array (N,) of true class indices in ``0..K-1``.
        probs: float array (N, K) of class probabilities (any scores work for the ranking
            metrics); the predicted class is ``argmax`` over axis 1.
        classes: the K >= 2 class names, in index order.

    Returns a dict of JSON-friendly values:
        ``accuracy``; macro ``precision``, ``recall``, ``f1`` (mean over all K classes,
        0/0 -> 0); ``mcc`` (Gorodkin R_K); ``roc_auc`` from the probabilities -- binary:
        AUC of ``probs[:, 1]``; multi-class: macro mean of one-vs-rest AUCs over the classes
        present in ``y_true``; ``None`` when ``y_true`` has fewer than 2 distinct classes;
        ``sensitivity`` and ``specificity`` (macro means over the K classes);
        ``per_class``: name -> {precision, recall (= sensitivity), specificity, f1, support,
        roc_auc (one-vs-rest, None when the class is absent or is the only class)};
        ``confusion_matrix`` (list of lists, rows true, cols predicted); ``n``.
    """
    names = _check_class_names(classes, minimum=2)
    k = len(names)
    t = _as_labels(y_true, "y_true", ndim=1)
    pr = np.asarray(probs)
    if pr.ndim != 2:
        raise ValueError(f"probs must be 2-D (N, K), got shape {pr.shape}")
    if not (np.issubdtype(pr.dtype, np.floating) or np.issubdtype(pr.dtype, np.integer)):
        raise ValueError(f"probs must be numeric, got dtype {pr.dtype}")
    pr = pr.astype(np.float64)
    if pr.shape[1] != k:
        raise ValueError(f"probs has {pr.shape[1]} columns but {k} classes were named "
                         f"({names})")
    if pr.shape[0] != t.shape[0]:
        raise ValueError(f"y_true has {t.shape[0]} samples but probs has {pr.shape[0]} rows")
    if t.size == 0:
        raise ValueError("classification_metrics needs at least one sample, got 0")
    if not np.all(np.isfinite(pr)):
        raise ValueError("probs contains NaN or inf")
    _check_label_range(t, k, "y_true", "classes")

    y_pred = np.argmax(pr, axis=1)
    cm = confusion_matrix(t, y_pred, k)
    n = int(cm.sum())
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)   # TP + FN
    predicted = cm.sum(axis=0).astype(np.float64)  # TP + FP
    fp = predicted - tp
    fn = support - tp
    tn = n - tp - fp - fn

    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    specificity = _safe_div(tn, tn + fp)
    f1 = _safe_div(2 * tp, 2 * tp + fp + fn)

    per_class_auc: List[Optional[float]] = [_binary_auc(t == j, pr[:, j]) for j in range(k)]
    present = np.unique(t)
    if present.size < 2:
        roc_auc: Optional[float] = None
    elif k == 2:
        roc_auc = _binary_auc(t == 1, pr[:, 1])
    else:
        aucs = [per_class_auc[j] for j in present]
        roc_auc = float(np.mean([a for a in aucs if a is not None]))

    per_class = {
        name: {
            "precision": float(precision[j]),
            "recall": float(recall[j]),
            "specificity": float(specificity[j]),
            "f1": float(f1[j]),
            "support": int(support[j]),
            "roc_auc": per_class_auc[j],
        }
        for j, name in enumerate(names)
    }
    return {
        "accuracy": float(tp.sum() / n),
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
        "mcc": _mcc_from_cm(cm),
        "roc_auc": roc_auc,
        "sensitivity": float(recall.mean()),
        "specificity": float(specificity.mean()),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "n": n,
    }


# --------------------------------------------------------------------------- segmentation


def _as_label_maps(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 4 and arr.shape[-1] == 1:  # tolerate a trailing singleton channel
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"{name} must be an (N, H, W) label map, got shape {arr.shape}")
    return _as_labels(arr, name)


def _map_pairs(y_true: Any, y_pred: Any) -> tuple:
    """Validated ``[(t, p), ...]`` chunks of (n, H, W) int64 label maps: one chunk for stacked arrays, one per
    image for lists of maps (images of different sizes, e.g. scored at each image's own resolution)."""
    if isinstance(y_true, (list, tuple)) or isinstance(y_pred, (list, tuple)):
        if len(y_true) != len(y_pred):
            raise ValueError(f"y_true and y_pred must hold the same number of maps, got {len(y_true)} and "
                             f"{len(y_pred)}")
        pairs = []
        for i, (a, b) in enumerate(zip(y_true, y_pred)):
            t = _as_label_maps(np.asarray(a)[None], f"y_true[{i}]")
            p = _as_label_maps(np.asarray(b)[None], f"y_pred[{i}]")
            if t.shape != p.shape:
                raise ValueError(f"y_true[{i}] and y_pred[{i}] must have the same shape, got {t.shape[1:]} and "
                                 f"{p.shape[1:]}")
            pairs.append((t, p))
        return pairs
    t = _as_label_maps(y_true, "y_true")
    p = _as_label_maps(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {t.shape} and "
                         f"{p.shape}")
    return [(t, p)]


def _overlap_counts(pairs, n_classes: int):
    """(N, C) intersections, true and predicted sizes per image and foreground class; correct and total pixels."""
    inter, size_a, size_b, correct, total = [], [], [], 0, 0
    for t, p in pairs:
        i_, a_, b_ = (np.empty((t.shape[0], n_classes), dtype=np.float64) for _ in range(3))
        for j in range(n_classes):
            a = t == j + 1
            b = p == j + 1
            i_[:, j] = np.logical_and(a, b).sum(axis=(1, 2))
            a_[:, j] = a.sum(axis=(1, 2))
            b_[:, j] = b.sum(axis=(1, 2))
        inter.append(i_)
        size_a.append(a_)
        size_b.append(b_)
        correct += int(np.count_nonzero(t == p))
        total += int(t.size)
    return np.concatenate(inter), np.concatenate(size_a), np.concatenate(size_b), correct, total


def _overlap_per_image(inter, size_a, size_b):
    """(N, C) Dice and IoU per image and foreground class (both empty -> 1.0) and the pooled Dice per class."""
    both_empty = (size_a + size_b) == 0
    dice_img = np.where(both_empty, 1.0, _safe_div(2 * inter, size_a + size_b))
    iou_img = np.where(both_empty, 1.0, _safe_div(inter, size_a + size_b - inter))
    pooled = []
    for j in range(inter.shape[1]):
        tot = size_a[:, j].sum() + size_b[:, j].sum()
        pooled.append(1.0 if tot == 0 else float(2 * inter[:, j].sum() / tot))
    return dice_img, iou_img, pooled


def dice_per_image(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Dice of each image, averaged over its foreground classes (the values ``dice`` is the mean of).
    Stacked (N, H, W) maps or lists of maps of any sizes."""
    inter, a, b, _, _ = _overlap_counts(_map_pairs(y_true, y_pred), n_classes)
    return _overlap_per_image(inter, a, b)[0].mean(axis=1)


def dice_pooled_per_group(y_true: Any, y_pred: Any, n_classes: int, groups: Sequence[Any]) -> np.ndarray:
    """(G, C) Dice per group (patient, recording) and foreground class with the pixels of the group's images pooled:
    2 sum|A∩B| / (sum|A| + sum|B|) over the group, 1.0 where the class is absent from the group in both. The
    volume-style Dice of slice data (a patient's slices scored as one volume), so a structure missed on a small
    slice costs its pixels, not a whole image's score. Groups in sorted order of their names."""
    inter, a, b, _, _ = _overlap_counts(_map_pairs(y_true, y_pred), n_classes)
    g = np.asarray(groups).astype(str)
    if len(g) != inter.shape[0]:
        raise ValueError(f"groups has {len(g)} entries for {inter.shape[0]} images")
    _, codes = np.unique(g, return_inverse=True)
    sums = [np.stack([np.bincount(codes, weights=x[:, j]) for j in range(n_classes)], axis=1) for x in (inter, a, b)]
    tot = sums[1] + sums[2]
    return np.where(tot == 0, 1.0, _safe_div(2 * sums[0], tot))


def segmentation_metrics(y_true: Any, y_pred: Any, classes: Sequence[Any]) -> Dict[str, Any]:
    """Overlap metrics for integer label maps.

    Args:
        y_true, y_pred: integer label maps of shape (N, H, W) (a trailing channel axis of
            size 1 is accepted), or two lists of N maps where each image may have its own size;
            0 = background, ``c`` in ``1..len(classes)`` = foreground class ``classes[c - 1]``.
        classes: names of the foreground classes (background is not listed).

    Per image and per foreground class, with A = true mask and B = predicted mask:
    Dice = 2|A∩B| / (|A| + |B|) and IoU = |A∩B| / |A∪B|. Convention: when A and B are both
    empty in an image the class scores 1.0 there (Dice and IoU); one empty and the other not
    scores 0.0.

    Returns ``dice`` and ``iou`` (macro: mean over images and foreground classes),
    ``per_class``: name -> {dice, iou (means over images), dice_global (Dice of all pixels
    of all images pooled, 1.0 if the class is absent from both)}, ``pixel_accuracy``
    (fraction of pixels, background included, with the correct label) and ``n`` (images).
    """
    names = _check_class_names(classes, minimum=1)
    pairs = _map_pairs(y_true, y_pred)
    if not pairs or sum(t.size for t, _ in pairs) == 0:
        shape = pairs[0][0].shape if pairs else (0,)
        raise ValueError(f"segmentation_metrics needs non-empty label maps, got {shape}")
    n_labels = len(names) + 1
    for t, p in pairs:
        _check_label_range(t, n_labels, "y_true", "labels (background + classes)")
        _check_label_range(p, n_labels, "y_pred", "labels (background + classes)")

    inter, size_a, size_b, correct, total = _overlap_counts(pairs, len(names))
    dice_img, iou_img, pooled = _overlap_per_image(inter, size_a, size_b)
    per_class: Dict[str, Dict[str, float]] = {
        name: {"dice": float(dice_img[:, j].mean()), "iou": float(iou_img[:, j].mean()),
               "dice_global": pooled[j]} for j, name in enumerate(names)}
    return {
        "dice": float(dice_img.mean()),
        "iou": float(iou_img.mean()),
        "per_class": per_class,
        "pixel_accuracy": float(correct / total),
        "n": int(dice_img.shape[0]),
    }


# --------------------------------------------------------------------------- image quality


def psnr(clean: Any, test: Any, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio per image, in dB: 10 log10(data_range^2 / MSE).

    MSE is taken over all pixels and channels of each image. Identical images give ``inf``
    (callers that average should cap, see :data:`PSNR_CAP_DB`). Returns float64 (N,).
    """
    a, b, data_range = _image_pair(clean, test, data_range)
    mse = np.mean((a - b) ** 2, axis=tuple(range(1, a.ndim)))
    out = np.full(mse.shape, np.inf, dtype=np.float64)
    nz = mse > 0
    out[nz] = 10.0 * np.log10(data_range ** 2 / mse[nz])
    return out


def _largest_odd_at_most(n: int) -> int:
    return n if n % 2 == 1 else n - 1


def _ssim_filter_size(side: int) -> int:
    """11, or the largest odd number <= ``side`` when the image is smaller than that."""
    return _SSIM_FILTER_SIZE if side >= _SSIM_FILTER_SIZE else _largest_odd_at_most(side)


def _ms_ssim_scales(side: int) -> int:
    """Number of leading MS-SSIM scales whose (downsampled) image still fits an 11x11 filter.

    ``tf.image.ssim_multiscale`` halves each side per scale, padding odd sides, so scale
    ``k`` (0-based) has side ``ceil(side / 2**k)``.
    """
    scales, s = 0, side
    while scales < len(MS_SSIM_POWER_FACTORS) and s >= _SSIM_FILTER_SIZE:
        scales += 1
        s = -(-s // 2)
    return max(scales, 1)


def _ms_ssim_power_factors(scales: int) -> List[float]:
    """The first ``scales`` standard weights, renormalised to the full set's total."""
    lead = MS_SSIM_POWER_FACTORS[:scales]
    total = float(sum(MS_SSIM_POWER_FACTORS))
    return [w * total / float(sum(lead)) for w in lead]


def _to_tf_batches(a: np.ndarray, b: np.ndarray):
    """Yield float32 (n, H, W, C) chunks of both image stacks."""
    if a.ndim == 3:
        a, b = a[..., None], b[..., None]
    for start in range(0, a.shape[0], _SSIM_BATCH):
        yield (a[start:start + _SSIM_BATCH].astype(np.float32),
               b[start:start + _SSIM_BATCH].astype(np.float32))


def ssim(clean: Any, test: Any, data_range: float = 1.0) -> np.ndarray:
    """Structural similarity per image via ``tf.image.ssim`` (Gaussian filter 11, sigma 1.5).

    When the smaller image side is < 11 the filter size is reduced to the largest odd number
    <= that side. Multi-channel images are averaged over channels. Returns float64 (N,).
    """
    a, b, data_range = _image_pair(clean, test, data_range)
    import tensorflow as tf  # lazy: keep importing this module cheap

    filter_size = _ssim_filter_size(min(a.shape[1], a.shape[2]))
    out = [
        tf.image.ssim(x, y, max_val=data_range, filter_size=filter_size,
                      filter_sigma=_SSIM_FILTER_SIGMA).numpy()
        for x, y in _to_tf_batches(a, b)
    ]
    return np.concatenate(out).astype(np.float64)


def ms_ssim(clean: Any, test: Any, data_range: float = 1.0) -> np.ndarray:
    """Multi-scale SSIM per image via ``tf.image.ssim_multiscale``.

    The standard 5 scales with weights :data:`MS_SSIM_POWER_FACTORS` and an 11x11 filter
    need the smaller image side to be about 11 * 2**4 = 176 (exactly: tf pads odd sides when
    halving, so ``ceil(side / 16) >= 11``). For smaller images only the leading scales whose
    downsampled side is still >= 11 are used (e.g. 3 scales for 64x64, 1 for 16x16),
    with their weights renormalised to sum to the same total as the full set. If even one
    scale does not fit (side < 11), a single scale is used with the filter reduced as in
    :func:`ssim` (MS-SSIM then equals SSIM, up to the ~1.0001 total exponent). Values are
    in [0, 1] (tf clips negative per-scale terms to 0). Returns float64 (N,).
    """
    a, b, data_range = _image_pair(clean, test, data_range)
    import tensorflow as tf  # lazy: keep importing this module cheap

    side = min(a.shape[1], a.shape[2])
    scales = _ms_ssim_scales(side)
    filter_size = _ssim_filter_size(side)
    weights = _ms_ssim_power_factors(scales)
    out = [
        tf.image.ssim_multiscale(x, y, max_val=data_range, power_factors=weights,
                                 filter_size=filter_size,
                                 filter_sigma=_SSIM_FILTER_SIGMA).numpy()
        for x, y in _to_tf_batches(a, b)
    ]
    return np.concatenate(out).astype(np.float64)


def image_quality(clean: Any, test: Any, data_range: float = 1.0) -> Dict[str, np.ndarray]:
    """Per-image ``{"psnr", "ssim", "ms_ssim"}`` of ``test`` vs ``clean`` (PSNR uncapped)."""
    return {"psnr": psnr(clean, test, data_range), "ssim": ssim(clean, test, data_range),
            "ms_ssim": ms_ssim(clean, test, data_range)}


def summarize_quality(noisy: Dict[str, Any], denoised: Dict[str, Any],
                      nlm: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """:func:`denoising_metrics` from the per-image values of :func:`image_quality` (PSNR capped, then averaged);
    ``nlm``: the classical denoiser's, reported as ``nlm``."""
    out: Dict[str, Any] = {}
    for key, q in (("noisy", noisy), ("denoised", denoised), ("nlm", nlm)):
        if q is None:
            continue
        out[key] = {
            "psnr": float(np.mean(np.minimum(np.asarray(q["psnr"], np.float64), PSNR_CAP_DB))),
            "ssim": float(np.mean(np.asarray(q["ssim"], np.float64))),
            "ms_ssim": float(np.mean(np.asarray(q["ms_ssim"], np.float64))),
        }
    out["n"] = int(np.asarray(noisy["psnr"]).shape[0])
    return out


def denoising_metrics(clean: Any, noisy: Any, denoised: Any,
                      data_range: float = 1.0) -> Dict[str, Any]:
    """Mean PSNR / SSIM / MS-SSIM of the noisy input and of the denoised output vs ``clean``.

    Returns ``{"noisy": {psnr, ssim, ms_ssim}, "denoised": {psnr, ssim, ms_ssim}, "n": N}``
    with python floats. Per-image PSNR is capped at :data:`PSNR_CAP_DB` (100 dB) before
    averaging, so identical images do not make the mean infinite.
    """
    c = _as_images(clean, "clean")
    per = {}
    for key, other in (("noisy", noisy), ("denoised", denoised)):
        o = _as_images(other, key)
        if o.shape != c.shape:
            raise ValueError(f"{key} must have the same shape as clean, got {o.shape} and "
                             f"{c.shape}")
        per[key] = image_quality(c, o, data_range)
    return summarize_quality(per["noisy"], per["denoised"])

