"""Evaluate a trained multi-head model: predict each split once, write the predictions, score the files.

:func:`evaluate_model` is the only evaluation step that runs a model. Per split it runs the model once over the
split's images (all heads of a data set in one pass), the denoising output once per noise level, Grad-CAM once
per classification head, and writes everything later steps read to ``<folder>/<split>.npz``
(:mod:`umsrep.evaluate.predictions`); the metrics then come from those files (:mod:`umsrep.evaluate.scores`).
Heads are found by name (``head_<task>``, ``encoder``), never by index, so a reloaded ``model.keras`` works the
same as the model in memory. Predictions are float32.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from umsrep.data import pipeline
from umsrep.data.noise import apply_noise, noise_levels
from umsrep.evaluate.metrics import image_quality
from umsrep.evaluate.predictions import read_folder, to_uint8, write_split
from umsrep.evaluate.scores import (  # noqa: F401  (re-exported: the label helpers' old home)
    head_values,
    label_fractions,
    per_image_outcome,
    predict_labels,
    score_predictions,
    task_predictions,
)
from umsrep.models.pyramid import attach, task_model

EVAL_SPLITS = ("val", "test")
EXAMPLES = 6      # segmentation figure: images with the largest true masks and some from the middle
DENOISE_EXAMPLES = 3


def _run(model_fn, x, batch_size, tta="none"):
    model_fn = pipeline.with_tta(model_fn, tta)
    fn = tf.function(lambda b: model_fn(b, training=False), reduce_retracing=True)
    return pipeline.predict(fn, x, batch_size)


def head_outputs(model, names, x, batch_size=16, tta="none") -> dict:
    """``{task: float32 output}`` of the heads ``names`` over ``x``; one pass through a shared encoder (``tta``:
    test-time augmentation, :func:`umsrep.data.pipeline.with_tta`)."""
    if isinstance(model, dict):
        return {n: np.asarray(_run(model[n], x, batch_size, tta), np.float32) for n in names}
    sub = attach(model.get_layer("encoder"), {n: model.get_layer(f"head_{n}") for n in names}, name="eval")
    out = _run(sub, x, batch_size, tta)
    return {n: np.asarray(out[n], np.float32) for n in names}


def evaluate_model(model, recipe, tasks, rep_source, folder, splits=EVAL_SPLITS, batch_size=16, log=print,
                   outcomes=None, tta="none") -> dict:
    """Predict ``splits`` into ``folder`` (``<split>.npz``) and score them: the metrics.json sections.

    ``model`` is the multi-head model or a dict ``{task: model}``; ``outcomes``, when given, is filled with
    ``{task: {split: per-image outcome}}`` for paired comparisons between models.
    """
    folder = Path(folder)
    for split in splits:
        write_split(folder / f"{split}.npz", predict_split(model, recipe, tasks, rep_source, split, batch_size, tta))
    preds = read_folder(folder, splits)
    out = score_predictions(preds, recipe, log=log, outcomes=outcomes)
    if recipe.derive_measurements() or recipe.patient is not None:  # umsrep/evaluate/measurements.py
        # the masks of the evaluated splits come from the prediction files; the patient-level classifier also
        # needs the training split's, which the model predicts here
        from umsrep.evaluate.measurements import FileLabels, _Labels, evaluate_measurements, evaluate_patients

        labels = FileLabels(preds, tasks, _Labels(model, recipe, batch_size))
        if recipe.derive_measurements():
            out["measurements"] = evaluate_measurements(model, recipe, tasks, splits, batch_size, log, labels)
        if recipe.patient is not None:
            out["patient"] = evaluate_patients(model, recipe, tasks, batch_size, log, labels)
    return out


def predict_split(model, recipe, tasks, rep_source, split, batch_size=16, tta="none") -> dict:
    """Everything the scores and the report need from the model on one split (see predictions.py); ``tta`` applies
    to the task heads' outputs."""
    t0 = time.perf_counter()
    arrays = {"rep_source": np.array(rep_source.key)}
    sources = {}
    for name, td in tasks.items():
        sources.setdefault(td.source.key, (td.source, []))[1].append(name)
    for src, names in sources.values():
        idx = src.split[split]
        x = src.data.images[idx]
        outs = head_outputs(model, names, x, batch_size, tta) if len(idx) else {}
        for name in names:
            arrays.update(task_arrays(name, recipe.tasks[name], tasks[name], split, x, outs.get(name)))
    if not isinstance(model, dict):
        if split == "test":
            arrays.update(gradcam_arrays(model, recipe, tasks, arrays, batch_size))
        if any(layer.name == "head_denoise" for layer in model.layers):
            arrays.update(denoise_arrays(model, recipe, rep_source, split, batch_size,
                                         DENOISE_EXAMPLES if split == "test" else 0))
    arrays["predict_time_s"] = np.array(time.perf_counter() - t0)
    return arrays


def task_arrays(name, task, td, split, x, probs, examples=EXAMPLES) -> dict:
    """One task's rows: ids, truth, predictions (and segmentation figure examples on the test split)."""
    src = td.source
    idx = src.split[split]
    has = np.isin(idx, td.index[split])
    a = {f"{name}.names": np.array([src.data.names[i] for i in idx], dtype=str),
         f"{name}.files": np.array([src.data.files[i] for i in idx], dtype=str),
         f"{name}.source": np.array(src.key), f"{name}.has_truth": has}
    if src.config.grouped_by:
        a[f"{name}.groups"] = np.array(["" if src.data.groups[i] is None else str(src.data.groups[i])
                                        for i in idx], dtype=str)
    if src.data.origins:
        a[f"{name}.origins"] = np.array([src.data.origins[i] for i in idx], dtype=str)
    if task.type == "classification":
        a[f"{name}.truth"] = np.where(has, td.targets[idx], -1).astype(np.int16)
        a[f"{name}.probs"] = np.zeros((0, len(task.classes)), np.float32) if probs is None else probs
        return a
    truth = td.targets[idx]
    if truth.size and truth.max() > 255:
        raise ValueError(f"task {name!r}: label ids above 255 do not fit the uint8 prediction files")
    a[f"{name}.truth"] = truth.astype(np.uint8)
    if probs is None:
        a[f"{name}.labels"] = np.zeros(truth.shape, np.uint8)
        return a
    labels = predict_labels(probs, task, x).astype(np.uint8)
    a[f"{name}.labels"] = labels
    if task.postprocess is not None:
        a[f"{name}.labels_raw"] = task_predictions(probs, task.type, task.threshold).astype(np.uint8)
    if split == "test":
        lab = np.flatnonzero(has)
        order = lab[np.argsort([-(truth[i] > 0).sum() for i in lab], kind="stable")]
        mid = len(order) // 2
        pick = np.concatenate([order[: examples // 2], order[mid: mid + examples - examples // 2]])[:examples]
        a.update({f"{name}.ex_images": to_uint8(x[pick]), f"{name}.ex_truth": truth[pick].astype(np.uint8),
                  f"{name}.ex_labels": labels[pick]})
    return a


def gradcam_arrays(model, recipe, tasks, arrays, batch_size=16, examples=EXAMPLES) -> dict:
    """Grad-CAM of each classification head for the true class, computed once on the test split: the mass
    inside the mask of a segmentation task on the same images (the localisation metric), and the maps of a few
    images per class for the report's figures."""
    from umsrep.explain.gradcam import GradCam, mass_inside

    out = {}
    per_class = max(1, min(4, examples // 2))
    for cname, ctd in tasks.items():
        t = recipe.tasks[cname]
        if t.type != "classification" or len(ctd.source.split["test"]) == 0:
            continue
        try:
            cam = GradCam(model, cname)
        except Exception as e:  # a model without umsrep's encoder/head layout: say so, draw the rest
            out[f"{cname}.cam_error"] = np.array(str(e))
            continue
        idx = ctd.source.split["test"]
        has, truth, probs = arrays[f"{cname}.has_truth"], arrays[f"{cname}.truth"], arrays[f"{cname}.probs"]
        seg = next((s for s, std in tasks.items() if recipe.tasks[s].type == "segmentation"
                    and std.source is ctd.source), None)
        ex = np.concatenate([np.flatnonzero(has & (truth == k))[:per_class] for k in range(len(t.classes))])
        loc = np.flatnonzero(has & arrays[f"{seg}.has_truth"]) if seg else np.zeros(0, np.int64)
        todo = np.union1d(loc, ex).astype(np.int64)
        x = ctd.source.data.images[idx[todo]]
        maps = [cam(x[i:i + batch_size], truth[todo[i:i + batch_size]]).maps for i in range(0, len(todo), batch_size)]
        maps = np.concatenate(maps) if maps else np.zeros((0, *x.shape[1:3]))
        where = {r: j for j, r in enumerate(todo)}
        out[f"{cname}.cam_layer"] = np.array(cam.layer)
        if seg:
            masks = arrays[f"{seg}.truth"]
            mass = np.full(len(idx), np.nan)
            for r in loc:
                v = mass_inside(maps[where[r]], masks[r] > 0)
                mass[r] = np.nan if v is None else v
            out[f"{cname}.cam_mass"] = mass
            out[f"{cname}.cam_mask_task"] = np.array(seg)
        if len(ex):
            out.update({f"{cname}.ex_images": to_uint8(ctd.source.data.images[idx[ex]]),
                        f"{cname}.ex_cam": np.stack([maps[where[r]] for r in ex]).astype(np.float16),
                        f"{cname}.ex_class": truth[ex].astype(np.int16), f"{cname}.ex_probs": probs[ex]})
    return out


def denoise_arrays(model, recipe, rep_source, split, batch_size=16, examples=0) -> dict:
    """Per noise level (fixed seeds per level) and clean image: PSNR / SSIM / MS-SSIM of the noisy input, of the
    denoised output and of OpenCV's non-local means on the same noisy image (:mod:`umsrep.evaluate.classical`);
    the first ``examples`` images of the first two levels for the report."""
    from umsrep.evaluate.classical import nlm_denoise

    clean = rep_source.data.images[rep_source.split[split]]
    levels = noise_levels(recipe.representation.noise)
    q = {m: np.zeros((len(levels), 3, len(clean))) for m in ("psnr", "ssim", "ms_ssim")}
    a = {"denoise.levels": np.array([lv.name for lv in levels], dtype=str)}
    if len(clean) == 0:
        return {**a, **{f"denoise.{m}": v for m, v in q.items()}}
    sub = task_model(model, "denoise")
    ex_noisy, ex_den = [], []
    for k, lv in enumerate(levels):
        noisy = apply_noise(tf.convert_to_tensor(clean), lv, tf.constant([recipe.seed + 1000, k], tf.int64))
        noisy = np.asarray(noisy, np.float32)
        denoised = np.asarray(_run(sub, noisy, batch_size), np.float32)
        for j, img in enumerate((noisy, denoised, nlm_denoise(noisy))):
            for m, v in image_quality(clean, img).items():
                q[m][k, j] = v
        if examples and k < 2:
            ex_noisy.append(noisy[:examples])
            ex_den.append(denoised[:examples])
    a.update({f"denoise.{m}": v for m, v in q.items()})
    if examples:
        a.update({"denoise.ex_clean": clean[:examples].astype(np.float16),
                  "denoise.ex_noisy": np.stack(ex_noisy).astype(np.float16),
                  "denoise.ex_denoised": np.stack(ex_den).astype(np.float16)})
    return a
