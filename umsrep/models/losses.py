"""Task losses, looked up by name in :data:`LOSSES` (recipe ``tasks.<t>.loss.name``).

All losses cast to float32 before reducing (safe under mixed precision) and return one scalar per batch.
Segmentation targets are integer label maps (B, H, W) with 0 = background; predictions are sigmoid
(B, H, W, 1) for one class or softmax (B, H, W, K+1). Classification targets are integer class ids (B,).

- ``dice_ce``: weighted CE + soft Dice (paper eq. 1: BCE + Dice for binary, CCE + Dice for multi-class);
- ``jaccard_ce``: weighted CE + soft Jaccard (used as ``3 * Jaccard + CE`` by the DCM seed paper);
- ``tversky`` / ``tversky_ce``: Tversky index TP / (TP + alpha FP + beta FN) (Salehi et al. 2017); with alpha < beta a
  predicted pixel outside the labels costs less than a missed labelled one — for sparse labels (not every fascicle
  drawn), where "background" pixels may be unlabelled foreground;
- ``dice``, ``jaccard``, ``ce``: the parts alone; ``mse`` for the denoising output;
- ``auto``: ``dice_ce`` for segmentation, ``ce`` for classification.
"""

from __future__ import annotations

from keras import ops

from umsrep.registry import Registry

LOSSES = Registry("loss")
EPS = 1e-7


def _seg_onehot(y_true, y_pred):
    """(B,H,W) labels -> float32 one-hot with the prediction's channel layout; foreground channels mask."""
    y_pred = ops.cast(y_pred, "float32")
    k = y_pred.shape[-1]
    y_true = ops.cast(y_true, "int32")
    if k == 1:
        return ops.cast(ops.expand_dims(y_true, -1) > 0, "float32"), y_pred, slice(0, 1)
    return ops.one_hot(y_true, k, dtype="float32"), y_pred, slice(1, k)


def _soft_overlap(y_true, y_pred, smooth, kind):
    t, p, fg = _seg_onehot(y_true, y_pred)
    t, p = t[..., fg], p[..., fg]
    inter = ops.sum(t * p, axis=(1, 2))
    total = ops.sum(t, axis=(1, 2)) + ops.sum(p, axis=(1, 2))
    if kind == "dice":
        score = (2.0 * inter + smooth) / (total + smooth)
    else:
        score = (inter + smooth) / (total - inter + smooth)
    return 1.0 - ops.mean(score)


def _soft_tversky(y_true, y_pred, smooth, alpha, beta):
    t, p, fg = _seg_onehot(y_true, y_pred)
    t, p = t[..., fg], p[..., fg]
    tp = ops.sum(t * p, axis=(1, 2))
    fp = ops.sum((1.0 - t) * p, axis=(1, 2))
    fn = ops.sum(t * (1.0 - p), axis=(1, 2))
    return 1.0 - ops.mean((tp + smooth) / (tp + alpha * fp + beta * fn + smooth))


def _seg_ce(y_true, y_pred):
    t, p, _ = _seg_onehot(y_true, y_pred)
    p = ops.clip(p, EPS, 1.0 - EPS)
    if p.shape[-1] == 1:
        return -ops.mean(t * ops.log(p) + (1.0 - t) * ops.log(1.0 - p))
    return -ops.mean(ops.sum(t * ops.log(p), axis=-1))


def _cls_ce(y_true, y_pred):
    p = ops.clip(ops.cast(y_pred, "float32"), EPS, 1.0)
    t = ops.one_hot(ops.cast(y_true, "int32"), p.shape[-1], dtype="float32")
    return -ops.mean(ops.sum(t * ops.log(p), axis=-1))


@LOSSES.register("ce")
def ce(task_type, **_):
    return _seg_ce if task_type == "segmentation" else _cls_ce


def _seg_only(name, task_type):
    if task_type != "segmentation":
        from umsrep.errors import RecipeError

        raise RecipeError(f"loss {name!r} is for segmentation tasks only")


@LOSSES.register("dice")
def dice(task_type, smooth=1.0, **_):
    _seg_only("dice", task_type)
    return lambda y, p: _soft_overlap(y, p, smooth, "dice")


@LOSSES.register("jaccard")
def jaccard(task_type, smooth=1.0, **_):
    _seg_only("jaccard", task_type)
    return lambda y, p: _soft_overlap(y, p, smooth, "jaccard")


@LOSSES.register("dice_ce")
def dice_ce(task_type, overlap_weight=1.0, ce_weight=1.0, smooth=1.0, **_):
    _seg_only("dice_ce", task_type)
    return lambda y, p: overlap_weight * _soft_overlap(y, p, smooth, "dice") + ce_weight * _seg_ce(y, p)


@LOSSES.register("jaccard_ce")
def jaccard_ce(task_type, overlap_weight=1.0, ce_weight=1.0, smooth=1.0, **_):
    _seg_only("jaccard_ce", task_type)
    return lambda y, p: overlap_weight * _soft_overlap(y, p, smooth, "jaccard") + ce_weight * _seg_ce(y, p)


@LOSSES.register("tversky")
def tversky(task_type, smooth=1.0, alpha=0.3, beta=0.7, **_):
    _seg_only("tversky", task_type)
    return lambda y, p: _soft_tversky(y, p, smooth, alpha, beta)


@LOSSES.register("tversky_ce")
def tversky_ce(task_type, overlap_weight=1.0, ce_weight=1.0, smooth=1.0, alpha=0.3, beta=0.7, **_):
    _seg_only("tversky_ce", task_type)
    return lambda y, p: overlap_weight * _soft_tversky(y, p, smooth, alpha, beta) + ce_weight * _seg_ce(y, p)


@LOSSES.register("mse")
def mse(task_type="denoise", **_):
    return lambda y, p: ops.mean(ops.square(ops.cast(y, "float32") - ops.cast(p, "float32")))


@LOSSES.register("auto")
def auto(task_type, **kw):
    return dice_ce(task_type, **kw) if task_type == "segmentation" else ce(task_type, **kw)


def build_loss(task_type, cfg):
    """Loss function for a task from its :class:`umsrep.recipe.LossConfig`."""
    return LOSSES.get(cfg.name)(task_type, overlap_weight=cfg.overlap_weight, ce_weight=cfg.ce_weight,
                                smooth=cfg.smooth, alpha=cfg.alpha, beta=cfg.beta)
