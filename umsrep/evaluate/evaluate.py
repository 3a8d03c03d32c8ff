"""Evaluate a trained multi-head model on the held-out splits: one function for ``fit`` and ``evaluate``.

Heads are found by name (``head_<task>``, ``encoder``), never by index, so a reloaded ``model.keras`` works
the same as the model in memory. Predictions are float32; metrics come from :mod:`umsrep.evaluate.metrics`.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from umsrep.data import pipeline
from umsrep.data.noise import NoiseLevel, apply_noise
from umsrep.evaluate.metrics import classification_metrics, denoising_metrics, dice_per_image, segmentation_metrics
from umsrep.evaluate.stats import bootstrap_ci
from umsrep.models.heads import attach_one

EVAL_SPLITS = ("val", "test")


def task_predictions(probs, task_type, threshold=0.5):
    """Head output -> predicted labels (class ids, or label maps with 0 = background)."""
    probs = np.asarray(probs, np.float32)
    if task_type == "classification":
        return probs.argmax(-1)
    if probs.shape[-1] == 1:
        return (probs[..., 0] >= threshold).astype(np.int32)
    return probs.argmax(-1).astype(np.int32)


def _task_model(model, name):
    if isinstance(model, dict):  # {task: image -> output}, e.g. the baseline's separate models
        return model[name]
    return attach_one(model.get_layer("encoder"), model.get_layer(f"head_{name}"))


def per_image_outcome(y, pred, task_type, n_classes):
    """Per test image: 1/0 correctness (classification) or Dice (segmentation) — what CIs and paired tests use."""
    if task_type == "classification":
        return (np.asarray(pred) == np.asarray(y)).astype(np.float64)
    return dice_per_image(y, pred, n_classes)


def evaluate_model(model, recipe, tasks, rep_source, splits=EVAL_SPLITS, batch_size=16, log=print,
                   outcomes=None) -> dict:
    """Metrics per task and split, with a bootstrap 95% CI of accuracy (classification) or Dice (segmentation).

    ``model`` is the multi-head model or a dict ``{task: model}``; ``outcomes``, when given, is filled with
    ``{task: {split: per-image outcome}}`` for paired comparisons between models.
    """
    out = {"tasks": {}}
    for name, td in tasks.items():
        t = recipe.tasks[name]
        sub = _task_model(model, name)
        fn = tf.function(lambda x: sub(x, training=False), reduce_retracing=True)
        res = {}
        for split in splits:
            x, y = td.arrays(split)
            if len(x) == 0:
                continue
            t0 = time.perf_counter()
            probs = pipeline.predict(fn, x, batch_size)
            pred = task_predictions(probs, t.type, t.threshold)
            if t.type == "classification":
                m = classification_metrics(y, probs, t.classes)
            else:
                m = segmentation_metrics(y, pred, t.classes)
            per = per_image_outcome(y, pred, t.type, len(t.classes))
            ci = bootstrap_ci(per, seed=recipe.seed)
            m["accuracy_ci95" if t.type == "classification" else "dice_ci95"] = [ci["low"], ci["high"]]
            if outcomes is not None:
                outcomes.setdefault(name, {})[split] = per
            m["predict_time_s"] = round(time.perf_counter() - t0, 3)
            res[split] = m
        out["tasks"][name] = {"type": t.type, "classes": list(t.classes), **res}
        if "test" in res:
            key = "accuracy" if t.type == "classification" else "dice"
            log(f"test {name}: {key} {res['test'][key]:.4f} (n={res['test']['n']})")
    if not isinstance(model, dict) and any(layer.name == "head_denoise" for layer in model.layers):
        out["tasks"]["denoise"] = evaluate_denoising(model, recipe, rep_source, splits, batch_size, log)
    return out


def evaluate_denoising(model, recipe, rep_source, splits=EVAL_SPLITS, batch_size=16, log=print) -> dict:
    """PSNR / SSIM / MS-SSIM of noisy and denoised images per noise level (fixed seeds per level)."""
    sub = _task_model(model, "denoise")
    fn = tf.function(lambda x: sub(x, training=False), reduce_retracing=True)
    levels = [NoiseLevel(s.kind, float(v)) for s in recipe.representation.noise for v in s.levels]
    res = {"type": "denoising"}
    for split in splits:
        clean = rep_source.data.images[rep_source.split[split]]
        if len(clean) == 0:
            continue
        per = {}
        for k, lv in enumerate(levels):
            noisy = apply_noise(tf.convert_to_tensor(clean), lv, tf.constant([recipe.seed + 1000, k], tf.int64))
            noisy = np.asarray(noisy, np.float32)
            denoised = pipeline.predict(fn, noisy, batch_size)
            per[lv.name] = denoising_metrics(clean, noisy, denoised)
        res[split] = per
        if split == "test":
            txt = ", ".join(f"{k} {v['noisy']['psnr']:.1f}->{v['denoised']['psnr']:.1f} dB" for k, v in per.items())
            log(f"test denoise PSNR: {txt}")
    return res
