"""Evaluation of the measurements and of the patient-level tasks with a trained model (called by
``evaluate_model``; the pure parts are :mod:`umsrep.derive.measure`, :mod:`umsrep.derive.patient` and
:mod:`umsrep.evaluate.agreement`).

- :func:`evaluate_measurements`: on each split of each data set an input task comes from, every ``derive``
  measurement from the predicted masks against the same measurement from the true masks (both at the model's size,
  mapped to the original image grid): MAE in px (and mm) and %, angle MAE in degrees, Bland-Altman statistics.
  An input without true masks on a data set (e.g. aponeuroses on the fascicle images) is taken from the
  prediction on both sides, so the comparison measures the other input's head; ``truth`` says which.
- :func:`evaluate_patients`: the ``patient`` section: per-group features from the predicted masks, a classifier
  trained on the training groups, per-group metrics on val/test; the same from the true masks as reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

EVAL_SPLITS = ("val", "test")


def _predictor(model, name, batch_size):
    import tensorflow as tf

    from umsrep.data import pipeline
    from umsrep.models.pyramid import task_model

    sub = task_model(model, name)
    fn = tf.function(lambda b: sub(b, training=False), reduce_retracing=True)
    return lambda x: pipeline.predict(fn, x, batch_size)


def _table(source):
    from umsrep.derive.patient import read_table

    table = None
    for cfg in source.config.parts():   # pooled sets: each its own labels CSV (image names differ between sets)
        path = Path(cfg.root) / cfg.labels if cfg.labels and cfg.root is not None else None
        if path is not None and path.is_file():
            table = {**(table or {}), **read_table(path)}
    return table


class _Labels:
    """Predicted label maps per (task, source, rows), computed once."""

    def __init__(self, model, recipe, batch_size):
        self.model, self.recipe, self.batch_size, self.cache = model, recipe, batch_size, {}

    def __call__(self, task, source, rows):
        from umsrep.evaluate.scores import predict_labels

        key = (task, source.key, tuple(int(r) for r in rows))
        if key not in self.cache:
            x = source.data.images[rows]
            probs = _predictor(self.model, task, self.batch_size)(x)
            self.cache[key] = predict_labels(probs, self.recipe.tasks[task], x)
        return self.cache[key]


class FileLabels:
    """Predicted label maps read from the prediction files evaluation wrote (``{split: arrays}``, each task's
    ``labels`` in the order of its data set's split); rows in no file (the training split) come from ``fallback``
    (:class:`_Labels`, the model)."""

    def __init__(self, preds: dict, tasks, fallback):
        self.fallback, self.maps = fallback, {}
        for split, p in preds.items():
            for name, td in tasks.items():
                if f"{name}.labels" in p and td.type == "segmentation":
                    idx = td.source.split[split]
                    self.maps.update({(name, td.source.key, int(i)): m for i, m in zip(idx, p[f"{name}.labels"])})

    def __call__(self, task, source, rows):
        got = [self.maps.get((task, source.key, int(r))) for r in rows]
        if all(g is not None for g in got):
            return np.stack(got) if got else np.zeros((0,), np.uint8)
        return self.fallback(task, source, rows)


def evaluate_measurements(model, recipe, tasks, splits=EVAL_SPLITS, batch_size=16, log=print, labels=None) -> dict:
    """``metrics.json`` ``measurements``: ``{name: {kind, unit, inputs, by_data: [{tasks, truth, <split>: {px,
    mm?, per_image}}]}}``, one ``by_data`` entry per data set the inputs come from."""
    from umsrep.derive.measure import MEASUREMENTS, image_spacings, measure_images
    from umsrep.evaluate.agreement import agreement

    specs = recipe.derive_measurements()
    labels = labels or _Labels(model, recipe, batch_size)
    out: Dict[str, dict] = {}
    for name, spec in specs.items():
        kind = MEASUREMENTS.get(spec.measure)
        unit = "deg" if kind.unit == "angle" else "px"
        inputs = list(spec.inputs.values())
        sources = []
        for t in inputs:
            if all(tasks[t].source is not s for s in sources):
                sources.append(tasks[t].source)
        entry = {"kind": spec.measure, "unit": unit, "inputs": dict(spec.inputs), "by_data": []}
        for src in sources:
            block = {"tasks": [t for t in inputs if tasks[t].source is src], "truth": {}}
            table = _table(src) if recipe.pixel_spacing is not None and recipe.pixel_spacing.column else None
            for split in splits:
                idx = src.split[split]
                has = {t: (np.isin(idx, tasks[t].index[split]) if tasks[t].source is src else np.zeros(len(idx), bool))
                       for t in inputs}
                rows = idx[np.any(np.stack(list(has.values())), axis=0)] if len(idx) else idx
                if len(rows) == 0:
                    continue
                keep = np.isin(idx, rows)
                pred_maps, true_maps = {}, {}
                for t in inputs:
                    pred_maps[t] = labels(t, src, rows)
                    h = has[t][keep]
                    # a task labelled on another data set has no true masks here (and its targets are that
                    # set's rows): its predicted masks stand in on both sides
                    true_maps[t] = (np.where(h[:, None, None], tasks[t].targets[rows], pred_maps[t]) if h.any()
                                    else pred_maps[t])
                    block["truth"][t] = ("true masks" if h.all() else "predicted (no true masks here)"
                                         if not h.any() else f"true masks on {int(h.sum())} of {len(h)} images")
                sizes = None if src.data.sizes is None else src.data.sizes[rows]
                spacing = image_spacings([src.data.files[i] for i in rows], [src.data.names[i] for i in rows],
                                         recipe.pixel_spacing, table)
                if src.config.resize != "stretch" and sizes is not None:  # letterbox: measure on the original grid
                    from umsrep.data.readers import to_original

                    pred_maps, true_maps = ({t: [to_original(m, sizes[j], src.config.resize) for j, m in enumerate(v)]
                                             for t, v in maps.items()} for maps in (pred_maps, true_maps))
                mp = measure_images({name: spec}, pred_maps, sizes, spacing)
                mt = measure_images({name: spec}, true_maps, sizes, spacing)
                groups = [src.data.groups[i] for i in rows] if src.config.grouped_by else None
                res = {"px" if unit == "px" else "deg": agreement(mp.values[name], mt.values[name], unit, recipe.seed,
                                                                  groups)}
                if unit == "px" and spacing is not None:
                    res["mm"] = agreement(mp.mm[name], mt.mm[name], "mm", recipe.seed, groups)
                res["per_image"] = {"name": [src.data.names[i] for i in rows],
                                    "pred": [_num(v) for v in mp.values[name]],
                                    "true": [_num(v) for v in mt.values[name]],
                                    "pred_note": mp.reasons[name], "true_note": mt.reasons[name]}
                block[split] = res
                a = res["px" if unit == "px" else "deg"]
                if split == "test" and a.get("mae") is not None:
                    pct = f" ({a['mae_pct']:.1f} %)" if a.get("mae_pct") is not None else ""
                    log(f"test measurement {name} on {'/'.join(block['tasks'])} images: MAE {a['mae']:.2f} {unit}"
                        f"{pct}, bias {a['bias']:.2f}, limits of agreement [{a['loa_low']:.2f}, "
                        f"{a['loa_high']:.2f}] (n={a['n']}, missing {a['n_missing_pred']} predicted / "
                        f"{a['n_missing_true']} true)")
            entry["by_data"].append(block)
        out[name] = entry
    return out


def _num(v):
    return None if not np.isfinite(v) else float(v)


def evaluate_patients(model, recipe, tasks, batch_size=16, log=print, labels=None) -> dict:
    """``metrics.json`` ``patient``: per target, the classifier on predicted-mask features (trained on the
    training groups: predicted or true features, ``patient.train_features``) and, as reference, on true-mask
    features; plus each group's features."""
    from umsrep.derive.measure import image_spacings
    from umsrep.derive.patient import group_features, group_splits, train_evaluate
    from umsrep.errors import DataError

    cfg = recipe.patient
    specs = cfg.feature_specs(recipe.tasks)
    used = sorted({f.region.partition(".")[0] for f in specs.values() if f.region is not None})
    srcs = {tasks[t].source.key: tasks[t].source for t in used}
    if len(srcs) != 1:
        raise DataError(f"patient: the area tasks {used} come from {len(srcs)} data sets; they must share one")
    src = next(iter(srcs.values()))
    table = _table(src)
    if table is None:
        raise DataError(f"patient: data set {src.config.root} has no labels CSV (data.labels) to group by")
    labels = labels or _Labels(model, recipe, batch_size)
    rows = np.arange(len(src.data))
    names = list(src.data.names)
    classes = {t: list(recipe.tasks[t].classes) for t in used}
    sizes = src.data.sizes
    spacing = image_spacings(src.data.files, names, recipe.pixel_spacing, table)
    pred = {t: labels(t, src, rows) for t in used}
    feats = group_features(cfg, classes, names, pred, table, sizes, spacing)
    split_name = np.empty(len(names), dtype=object)
    for s, idx in src.split.items():
        split_name[idx] = s
    split_of = group_splits(feats.groups, [table[n][cfg.group_by] for n in names], list(split_name))
    true_feats = None
    if src.data.has_mask.all():
        true_feats = group_features(cfg, classes, names, {t: tasks[t].targets for t in used}, table, sizes, spacing)
    train = true_feats if cfg.train_features == "true" else None
    if train is None and cfg.train_features == "true":
        raise DataError("patient.train_features: true needs true masks on every image of the data set")
    out = {"features": feats.names, "unit": feats.unit, "n_groups": len(feats.groups),
           "train_features": cfg.train_features,
           "predicted_masks": train_evaluate(cfg, feats, split_of, recipe.seed, train_feats=train)}
    if true_feats is not None:
        out["true_masks"] = train_evaluate(cfg, true_feats, split_of, recipe.seed)
    out["groups"] = [{**r, "split": split_of[r["group"]]} for r in feats.as_rows()]
    for target, res in out["predicted_masks"].items():
        if "test" in res:
            ref = out.get("true_masks", {}).get(target, {}).get("test", {})
            extra = f" (true masks: {ref['accuracy']:.3f})" if ref else ""
            log(f"test patient {target}: accuracy {res['test']['accuracy']:.3f}, MCC {res['test']['mcc']:.3f} "
                f"(n={res['test']['n_groups']} groups){extra}")
    return out
