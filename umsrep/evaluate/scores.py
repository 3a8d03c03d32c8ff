"""Metrics from the prediction files (:mod:`umsrep.evaluate.predictions`): no model, no TensorFlow.

:func:`score_predictions` turns ``{split: arrays}`` into the ``tasks`` / ``derive`` / ``explain`` sections of
``metrics.json``: per task and split the metrics of :mod:`umsrep.evaluate.metrics` with a bootstrap 95% CI of
accuracy (classification) or Dice (segmentation) — over groups (patients) when the data set has a ``group_by``
column, else over images; the denoising quality per noise level; every ``derive`` decision against the same rule
on the true labels; the Grad-CAM localisation. :func:`compare_approaches` compares approaches (strategies, the
baseline) on the same test images.
"""

from __future__ import annotations

import numpy as np

from umsrep.derive.rules import HeadValues, decide, heads_of
from umsrep.evaluate.metrics import (
    classification_metrics,
    dice_per_image,
    dice_pooled_per_group,
    segmentation_metrics,
    summarize_quality,
)
from umsrep.evaluate.predictions import rows
from umsrep.evaluate.report import CLASS_KEY_CLASHES, ci_unit
from umsrep.evaluate.stats import bootstrap_ci, group_mean, mcnemar, paired_tests

MAIN = {"segmentation": "dice", "classification": "accuracy"}


# ------------------------------------------------------------------------------------------ labels
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


def label_fractions(label_maps, classes) -> HeadValues:
    """Fraction of each label (background first) per map; stacked maps or a list of maps of any sizes."""
    maps = label_maps if isinstance(label_maps, list) else np.asarray(label_maps)
    frac = np.zeros((len(maps), len(classes) + 1))
    for i, m in enumerate(maps):
        frac[i] = [(np.asarray(m) == c).mean() for c in range(len(classes) + 1)]
    return HeadValues(list(classes), fractions=frac)


def head_values(probs, task, images=None, labels=None) -> HeadValues:
    """A head's outputs over n images in the form derived rules read (:class:`umsrep.derive.rules.HeadValues`);
    ``labels``: a segmentation head's :func:`predict_labels`, when the caller already has them."""
    if task.type == "classification":
        return HeadValues(list(task.classes), probs=np.asarray(probs, np.float64))
    return label_fractions(predict_labels(probs, task, images) if labels is None else labels, task.classes)


def per_image_outcome(y, pred, task_type, n_classes):
    """Per test image: 1/0 correctness (classification) or Dice (segmentation) — what CIs and paired tests use."""
    if task_type == "classification":
        return (np.asarray(pred) == np.asarray(y)).astype(np.float64)
    return dice_per_image(y, pred, n_classes)


# ------------------------------------------------------------------------------------------ scoring
def score_task(p: dict, name: str, task, seed: int = 0, group_by=None):
    """(metrics, per-image outcome) of one task on one split's predictions, or None without labelled images."""
    has = np.asarray(p[f"{name}.has_truth"], bool)
    if not has.any():
        return None
    y = rows(p[f"{name}.truth"], has)
    if task.type == "classification":
        probs = p[f"{name}.probs"][has]
        m = classification_metrics(y, probs, task.classes)
        pred = probs.argmax(-1)
    else:
        pred = rows(p[f"{name}.labels"], has)
        m = segmentation_metrics(y, pred, task.classes)
        if f"{name}.labels_raw" in p:  # the same probabilities without post-processing: its effect
            raw = segmentation_metrics(y, rows(p[f"{name}.labels_raw"], has), task.classes)
            m["without_postprocess"] = {k: raw[k] for k in ("dice", "iou", "pixel_accuracy")}
    per = per_image_outcome(y, pred, task.type, len(task.classes))
    groups = p[f"{name}.groups"][has] if f"{name}.groups" in p else None
    ci = bootstrap_ci(per, seed=seed, groups=groups)
    m[f"{MAIN[task.type]}_ci95"] = [ci["low"], ci["high"]]
    m["ci95_bootstrap"] = {"over": group_by if groups is not None else "image",
                           "n": ci.get("groups", ci["n"]) if groups is not None else ci["n"]}
    if groups is not None:
        m["by_group"] = group_mean(per, groups)
        if task.type == "segmentation":
            m["by_group"].update(pooled_by_group(y, pred, task.classes, groups, seed))
    if f"{name}.origins" in p:
        m["by_source"] = by_source(per, p[f"{name}.origins"][has], MAIN[task.type], seed, groups)
    if "predict_time_s" in p:
        m["predict_time_s"] = round(float(p["predict_time_s"]), 3)
    return m, per


def pooled_by_group(y, pred, classes, groups, seed: int = 0) -> dict:
    """A grouped segmentation's Dice with each group's pixels pooled (``dice_pooled``: the mean over groups of the
    mean over classes; its bootstrap CI over groups; ``dice_pooled_per_class``): slices of a patient scored as
    one volume, the way volume-based benchmarks (ACDC) report Dice."""
    d = dice_pooled_per_group(y, pred, len(classes), groups)
    ci = bootstrap_ci(d.mean(axis=1), seed=seed)
    return {"dice_pooled": float(d.mean()), "dice_pooled_ci95": [ci["low"], ci["high"]],
            "dice_pooled_per_class": {str(c): float(d[:, j].mean()) for j, c in enumerate(classes)}}


def by_source(per, origins, key: str, seed: int = 0, groups=None) -> dict:
    """Pooled data (``data.pool``): the main metric (mean of the per-image outcome: Dice, or accuracy) of each data
    set's images, with its bootstrap CI (over groups when the images are grouped)."""
    out = {}
    for o in dict.fromkeys(origins.tolist()):
        sel = origins == o
        ci = bootstrap_ci(per[sel], seed=seed, groups=None if groups is None else groups[sel])
        out[o] = {"n": int(sel.sum()), key: float(np.mean(per[sel])), f"{key}_ci95": [ci["low"], ci["high"]]}
    return out


def score_predictions(preds: dict, recipe, log=print, outcomes=None) -> dict:
    """The ``tasks`` (and ``derive``, ``explain``) sections of metrics.json from ``{split: prediction arrays}``.

    ``outcomes``, when given, is filled with ``{task: {split: per-image outcome}}`` for paired comparisons."""
    out = {"tasks": {}}
    for name, t in recipe.tasks.items():
        if not any(np.any(p.get(f"{name}.has_truth", False)) for p in preds.values()):
            continue  # no labelled image of this task (another data set without its masks or labels)
        group_by = recipe.task_data(name).grouped_by
        res = {}
        for split, p in preds.items():
            if f"{name}.has_truth" not in p:
                continue
            r = score_task(p, name, t, recipe.seed, group_by)
            if r is None:
                continue
            res[split], per = r
            if outcomes is not None:
                outcomes.setdefault(name, {})[split] = per
        out["tasks"][name] = {"type": t.type, "classes": list(t.classes), **res}
        if "test" in res:
            key = MAIN[t.type]
            b = res["test"]["ci95_bootstrap"]
            log(f"test {name}: {key} {res['test'][key]:.4f} (n={res['test']['n']}; CI over "
                f"{ci_unit(None if b['over'] == 'image' else b['over'], b['n'])})")
            for o, v in res["test"].get("by_source", {}).items():
                log(f"test {name} on {o}: {key} {v[key]:.4f} (n={v['n']})")
    den = {s: p for s, p in preds.items() if "denoise.levels" in p}
    if den:
        out["tasks"]["denoise"] = score_denoising(den, log)
    if recipe.derive_rules():
        out["derive"] = score_derived(preds, recipe, log)
    loc = score_localization(preds.get("test", {}), recipe)
    if loc:
        out["explain"] = loc
        for task, v in loc.items():
            txt = ", ".join(f"{c} {r['cam_mass_in_mask']:.3f} vs area {r['mask_area_fraction']:.3f}"
                            for c, r in v["classes"].items())
            log(f"test Grad-CAM mass inside the {v['mask_task']} mask ({task}, true class): {txt}")
    return out


def score_denoising(preds: dict, log=print) -> dict:
    """PSNR / SSIM / MS-SSIM of noisy and denoised images per noise level, from the per-image values."""
    res = {"type": "denoising"}
    for split, p in preds.items():
        if p["denoise.psnr"].shape[-1] == 0:
            continue
        per = {}
        for k, lv in enumerate(p["denoise.levels"]):
            n_kinds = p["denoise.psnr"].shape[1]  # noisy, denoised[, non-local means]
            q = [{m: p[f"denoise.{m}"][k, j] for m in ("psnr", "ssim", "ms_ssim")} for j in range(n_kinds)]
            per[str(lv)] = summarize_quality(*q)
        res[split] = per
        if split == "test":
            txt = ", ".join(f"{k} {v['noisy']['psnr']:.1f}->{v['denoised']['psnr']:.1f} dB" for k, v in per.items())
            log(f"test denoise PSNR: {txt}")
    return res


def score_derived(preds: dict, recipe, log=print) -> dict:
    """Every ``derive`` decision per split: how often it fires, and — on images where every head it reads has
    ground truth — its agreement with the same rule applied to the true labels and masks (accuracy,
    sensitivity, specificity, confusion counts)."""
    rules = recipe.derive_rules()
    used = sorted(set().union(*(heads_of(r) for r in rules.values())) & set(recipe.tasks))
    any_p = next(iter(preds.values()), {})
    other = [n for n in used if f"{n}.source" in any_p and any_p[f"{n}.source"] != any_p.get("rep_source")]
    if other:
        log(f"derived decisions not evaluated: task(s) {other} use another data set than the representation")
        return {"skipped": f"tasks {other} use another data set"}
    out = {name: {"rule": recipe.derive[name].rule} for name in rules}
    for split, p in preds.items():
        if not used or f"{used[0]}.names" not in p or len(p[f"{used[0]}.names"]) == 0:
            continue
        n = len(p[f"{used[0]}.names"])
        values, truth, known = {}, {}, np.ones(n, bool)
        for name in used:
            t = recipe.tasks[name]
            known &= np.asarray(p[f"{name}.has_truth"], bool)
            y = p[f"{name}.truth"]
            if t.type == "classification":
                values[name] = HeadValues(list(t.classes), probs=np.asarray(p[f"{name}.probs"], np.float64))
                truth[name] = HeadValues(list(t.classes), probs=np.eye(len(t.classes))[np.clip(y, 0, None)])
            else:
                values[name] = label_fractions(p[f"{name}.labels"], t.classes)
                truth[name] = label_fractions(y, t.classes)
        pred = decide(rules, values)
        true = decide(rules, truth)
        for name in rules:
            pr, g = pred[name], true[name]
            m = {"n": int(n), "positive_rate": float(pr.mean()), "n_with_truth": int(known.sum())}
            if known.any():
                pk, gk = pr[known], g[known]
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


def score_localization(p: dict, recipe, split="test") -> dict:
    """For each classification task with Grad-CAM masses: per true class, the mean fraction of Grad-CAM mass
    (true class) inside the mask of the segmentation task on the same images vs the mean fraction of the image
    the mask covers — > area means the heat map concentrates on the annotated region."""
    out = {}
    for cname, t in recipe.tasks.items():
        if f"{cname}.cam_mass" not in p:
            continue
        seg = p[f"{cname}.cam_mask_task"]
        mass_all = p[f"{cname}.cam_mass"]
        labels = p[f"{cname}.truth"]
        both = np.asarray(p[f"{cname}.has_truth"], bool) & np.asarray(p[f"{seg}.has_truth"], bool)
        masks = p[f"{seg}.truth"]
        classes = {}
        for k, c in enumerate(t.classes):
            sel = [i for i in np.flatnonzero(both & (labels == k)) if np.any(masks[i] > 0)]
            mass = [float(mass_all[i]) for i in sel if not np.isnan(mass_all[i])]
            if mass:
                area = float(np.mean([(masks[i] > 0).mean() for i in sel]))
                classes[c] = {"n": len(mass), "cam_mass_in_mask": float(np.mean(mass)),
                              "mask_area_fraction": area, "ratio": float(np.mean(mass) / area) if area else None}
        if classes:
            out[cname] = {"mask_task": seg, "layer": p[f"{cname}.cam_layer"], "split": split, "method": "gradcam",
                          "classes": classes}
    return out


# ------------------------------------------------------------------------------------------ comparisons
def approach_summary(stage_list, task_metrics):
    """Training time, epochs and test metrics (scalars and CIs) of one approach."""
    time_s = sum(s["wall_time_s"] for s in stage_list)
    return {"wall_time_s": round(time_s, 3), "epochs": sum(s["epochs_run"] for s in stage_list),
            "tasks": {n: _test_scalars(t) for n, t in task_metrics.items() if n != "denoise"}}


def _test_scalars(task: dict) -> dict:
    """A task's test metrics without per-class tables, but with the main metric of each class when a segmentation
    task has several (``dice_<class>``: ACDC's RV, myocardium, LV); with a grouping column, the main metric averaged
    per group (``<metric>_by_group``: each patient / recording once) beside the per-image one, and for a
    segmentation the Dice with each group's pixels pooled (``dice_pooled_by_group``, per class
    ``dice_<class>_pooled_by_group``); with pooled data, each data set's (``<metric>_on_<data set>``)."""
    test = task.get("test", {})
    out = {k: v for k, v in test.items() if not isinstance(v, (dict, list)) or k.endswith("_ci95")}
    main = MAIN.get(task.get("type"))
    per_class = test.get("per_class")
    if task.get("type") == "segmentation" and isinstance(per_class, dict) and len(per_class) > 1:
        for c, v in per_class.items():
            key = f"{main}_{c}"
            if key not in test and not key.endswith(CLASS_KEY_CLASHES) and isinstance(v, dict) \
                    and isinstance(v.get(main), (int, float)):
                out[key] = v[main]
    by_group = test.get("by_group") if isinstance(test.get("by_group"), dict) else {}
    if main and by_group.get("mean") is not None:
        out[f"{main}_by_group"] = by_group["mean"]
    if by_group.get("dice_pooled") is not None:   # each group's pixels pooled (per volume); and per class
        out["dice_pooled_by_group"] = by_group["dice_pooled"]
        if len(by_group.get("dice_pooled_per_class") or {}) > 1:
            out.update({f"dice_{c}_pooled_by_group": v for c, v in by_group["dice_pooled_per_class"].items()})
    for o, v in (test.get("by_source") or {}).items() if main else ():
        out.setdefault(f"{main}_on_{o}", v[main])   # pooled data: each data set's own (seeds: mean ± SD)
    return out


def compare_approaches(approaches: dict, outcomes: dict, recipe) -> dict:
    """Paper-style comparison: per approach the test metrics, time and parameters; pairwise McNemar
    (classification) or Wilcoxon on per-image Dice (segmentation); time and parameter reduction vs baseline."""
    names = list(approaches)
    tests = {}
    for task, t in recipe.tasks.items():
        per = {}
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                ya, yb = outcomes[a][task]["test"], outcomes[b][task]["test"]
                if t.type == "classification":
                    per[f"{a} vs {b}"] = {"mcnemar": mcnemar(ya > 0.5, yb > 0.5)}
                else:
                    r = paired_tests(ya, yb)
                    per[f"{a} vs {b}"] = {"wilcoxon_dice": r["wilcoxon"], "mean_dice_difference": r["mean_difference"]}
        tests[task] = per
    out = {"approaches": approaches, "tests": tests}
    if "baseline" in approaches:
        base = approaches["baseline"]
        out["reduction_vs_baseline"] = {
            a: {"time_pct": round(100 * (1 - v["wall_time_s"] / base["wall_time_s"]), 1),
                "parameters_pct": round(100 * (1 - v["parameters"]["total"] / base["parameters"]["total"]), 1)}
            for a, v in approaches.items() if a != "baseline"}
    return out
