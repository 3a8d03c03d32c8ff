"""Evaluate a trained multi-head model on the held-out splits: one function for ``fit`` and ``evaluate``.

Heads are found by name (``head_<task>``, ``encoder``), never by index, so a reloaded ``model.keras`` works
the same as the model in memory. Predictions are float32; metrics come from :mod:`umsrep.evaluate.metrics`.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from umsrep.data import pipeline
from umsrep.data.noise import apply_noise, noise_levels
from umsrep.derive.rules import HeadValues, decide, heads_of
from umsrep.evaluate.metrics import classification_metrics, denoising_metrics, dice_per_image, segmentation_metrics
from umsrep.evaluate.stats import bootstrap_ci
from umsrep.models.pyramid import attach_one

EVAL_SPLITS = ("val", "test")


def task_predictions(probs, task_type, threshold=0.5):
    """Head output -> predicted labels (class ids, or label maps with 0 = background)."""
    probs = np.asarray(probs, np.float32)
    if task_type == "classification":
        return probs.argmax(-1)
    if probs.shape[-1] == 1:
        return (probs[..., 0] >= threshold).astype(np.int32)
    return probs.argmax(-1).astype(np.int32)


def predict_labels(probs, task, images=None):
    """A task's predicted labels from its head output, with the task's ``postprocess`` (segmentation: dense CRF
    on the probabilities — needs ``images`` in [0, 1] — then threshold / argmax, then mask cleaning)."""
    pp = getattr(task, "postprocess", None)
    if task.type != "segmentation" or pp is None:
        return task_predictions(probs, task.type, task.threshold)
    probs = np.asarray(probs, np.float32)
    if pp.crf is not None:
        if images is None:
            raise ValueError("the CRF needs the images")
        from umsrep.postprocess.crf import refine_batch

        probs = refine_batch(probs, np.asarray(images, np.float32), **pp.crf.model_dump())
    pred = task_predictions(probs, task.type, task.threshold)
    if pp.min_size or pp.opening_radius:
        from umsrep.postprocess.ultrasound import clean_label_map

        pred = np.stack([clean_label_map(m, min_size=pp.min_size, radius=pp.opening_radius) for m in pred])
    return pred


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
            pred = predict_labels(probs, t, x)
            if t.type == "classification":
                m = classification_metrics(y, probs, t.classes)
            else:
                m = segmentation_metrics(y, pred, t.classes)
                if t.postprocess is not None:  # the same probabilities without it: the post-processing's effect
                    raw = segmentation_metrics(y, task_predictions(probs, t.type, t.threshold), t.classes)
                    m["without_postprocess"] = {k: raw[k] for k in ("dice", "iou", "pixel_accuracy")}
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
    if recipe.derive_rules():
        out["derive"] = evaluate_derived(model, recipe, tasks, rep_source, splits, batch_size, log)
    if recipe.derive_measurements() or recipe.patient is not None:  # umsrep/evaluate/measurements.py
        from umsrep.evaluate.measurements import evaluate_measurements, evaluate_patients

        if recipe.derive_measurements():
            out["measurements"] = evaluate_measurements(model, recipe, tasks, splits, batch_size, log)
        if recipe.patient is not None:
            out["patient"] = evaluate_patients(model, recipe, tasks, batch_size, log)
    if not isinstance(model, dict):
        loc = gradcam_localization(model, recipe, tasks, batch_size=batch_size)
        if loc:
            out["explain"] = loc
            for task, v in loc.items():
                txt = ", ".join(f"{c} {r['cam_mass_in_mask']:.3f} vs area {r['mask_area_fraction']:.3f}"
                                for c, r in v["classes"].items())
                log(f"test Grad-CAM mass inside the {v['mask_task']} mask ({task}, true class): {txt}")
    return out


def head_values(probs, task, images=None, labels=None) -> HeadValues:
    """A head's outputs over n images in the form derived rules read (:class:`umsrep.derive.rules.HeadValues`);
    ``labels``: a segmentation head's :func:`predict_labels`, when the caller already has them."""
    if task.type == "classification":
        return HeadValues(list(task.classes), probs=np.asarray(probs, np.float64))
    return label_fractions(predict_labels(probs, task, images) if labels is None else labels, task.classes)


def label_fractions(label_maps, classes) -> HeadValues:
    maps = np.asarray(label_maps)
    return HeadValues(list(classes), fractions=np.stack([(maps == c).mean(axis=(1, 2))
                                                         for c in range(len(classes) + 1)], axis=1))


def evaluate_derived(model, recipe, tasks, rep_source, splits=EVAL_SPLITS, batch_size=16, log=print) -> dict:
    """Every ``derive`` decision on the representation data set's splits: how often it fires, and — on images
    where every head it reads has ground truth — its agreement with the same rule applied to the true labels
    and masks (accuracy, sensitivity, specificity, confusion counts)."""
    rules = recipe.derive_rules()
    used = sorted(set().union(*(heads_of(r) for r in rules.values())) & set(recipe.tasks))
    other = [n for n in used if tasks[n].source is not rep_source]
    if other:
        log(f"derived decisions not evaluated: task(s) {other} use another data set than the representation")
        return {"skipped": f"tasks {other} use another data set"}
    out = {name: {"rule": recipe.derive[name].rule} for name in rules}
    for split in splits:
        idx = rep_source.split[split]
        if len(idx) == 0:
            continue
        x = rep_source.data.images[idx]
        values, truth, known = {}, {}, np.ones(len(idx), bool)
        for name in used:
            t, td = recipe.tasks[name], tasks[name]
            sub = _task_model(model, name)
            probs = pipeline.predict(tf.function(lambda b: sub(b, training=False), reduce_retracing=True), x,
                                     batch_size)
            values[name] = head_values(probs, t, x)
            known &= np.isin(idx, td.index[split])
            y = td.targets[idx]
            if t.type == "classification":
                truth[name] = HeadValues(list(t.classes), probs=np.eye(len(t.classes))[np.clip(y, 0, None)])
            else:
                truth[name] = label_fractions(y, t.classes)
        pred = decide(rules, values)
        true = decide(rules, truth)
        for name in rules:
            p, g = pred[name], true[name]
            m = {"n": int(len(idx)), "positive_rate": float(p.mean()), "n_with_truth": int(known.sum())}
            if known.any():
                pk, gk = p[known], g[known]
                tp, fp = int(np.sum(pk & gk)), int(np.sum(pk & ~gk))
                tn, fn = int(np.sum(~pk & ~gk)), int(np.sum(~pk & gk))
                m.update({"accuracy": float((pk == gk).mean()), "true_positive_rate": float(gk.mean()),
                          "sensitivity": tp / (tp + fn) if tp + fn else None,
                          "specificity": tn / (tn + fp) if tn + fp else None,
                          "tp": tp, "fp": fp, "tn": tn, "fn": fn})
            out[name][split] = m
    for name, v in out.items():
        if "test" in v and v["test"].get("accuracy") is not None:
            log(f"test decision {name}: fires on {v['test']['positive_rate']:.3f} of images, accuracy "
                f"{v['test']['accuracy']:.4f} vs the rule on the true labels (n={v['test']['n_with_truth']})")
    return out


def gradcam_localization(model, recipe, tasks, split="test", batch_size=16) -> dict:
    """For each classification task whose images have masks of a segmentation task (same data set): per true
    class, the mean fraction of Grad-CAM mass (for the true class, default layer) inside the mask vs the mean
    fraction of the image the mask covers — > area means the heat map concentrates on the annotated region."""
    from umsrep.explain.gradcam import GradCam, mass_inside

    out = {}
    for cname, ctd in tasks.items():
        if recipe.tasks[cname].type != "classification":
            continue
        seg = next((s for s, std in tasks.items() if recipe.tasks[s].type == "segmentation"
                    and std.source is ctd.source), None)
        if seg is None:
            continue
        idx = np.intersect1d(ctd.index[split], tasks[seg].index[split])
        if len(idx) == 0:
            continue
        cam = GradCam(model, cname)
        x, labels = ctd.source.data.images[idx], ctd.targets[idx]
        masks = tasks[seg].targets[idx] > 0
        maps = np.concatenate([cam(x[i:i + batch_size], labels[i:i + batch_size]).maps
                               for i in range(0, len(x), batch_size)])
        classes = {}
        for k, c in enumerate(recipe.tasks[cname].classes):
            rows = [i for i in np.flatnonzero(labels == k) if masks[i].any()]
            mass = [m for m in (mass_inside(maps[i], masks[i]) for i in rows) if m is not None]
            if mass:
                area = float(np.mean([masks[i].mean() for i in rows]))
                classes[c] = {"n": len(mass), "cam_mass_in_mask": float(np.mean(mass)),
                              "mask_area_fraction": area, "ratio": float(np.mean(mass) / area) if area else None}
        if classes:
            out[cname] = {"mask_task": seg, "layer": cam.layer, "split": split, "method": "gradcam",
                          "classes": classes}
    return out


def evaluate_denoising(model, recipe, rep_source, splits=EVAL_SPLITS, batch_size=16, log=print) -> dict:
    """PSNR / SSIM / MS-SSIM of noisy and denoised images per noise level (fixed seeds per level)."""
    sub = _task_model(model, "denoise")
    fn = tf.function(lambda x: sub(x, training=False), reduce_retracing=True)
    levels = noise_levels(recipe.representation.noise)
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
