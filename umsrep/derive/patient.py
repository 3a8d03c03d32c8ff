"""Patient-level tasks: per-group features from the segmentation heads' outputs and small classifiers on them.

A pathology is a property of the patient, read from volumes and function, not of one slice. The recipe's
``patient:`` section (:class:`umsrep.recipe.PatientConfig`) groups images by a labels-CSV column, declares the
features (segmented area of a task's class summed over the group's images at a frame; the wall thickness of a
class (e.g. the myocardium) pooled over them; ``change`` between two
features, e.g. an ejection-fraction proxy (ED - ES) / ED; ``ratio`` of two features, e.g. myocardium over cavity)
and the per-group targets, and a scikit-learn classifier (seeded) is trained on the training groups' features
and evaluated per group on val/test (accuracy, balanced accuracy, MCC, confusion, bootstrap 95% CI over groups).

Nothing here knows a data set: :func:`group_features` takes per-image label maps and the labels table,
:func:`train_evaluate` the features and each group's split. ``umsrep.evaluate.patient`` calls both with a model.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from umsrep.errors import DataError
from umsrep.evaluate.stats import bootstrap_ci


def read_table(path) -> Dict[str, Dict[str, str]]:
    """A labels CSV as ``{file stem: {column: value}}`` (values stripped)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read labels CSV ({type(e).__name__}: {e})") from None
    out = {}
    for row in rows:
        clean = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        name = clean.get("filename") or next(iter(clean.values()), "")
        out[Path(name.replace("\\", "/")).stem] = clean
    return out


@dataclass
class GroupFeatures:
    """Features of G groups: ``X`` (G, F) with columns ``names``, the group ids, each group's image count and
    the value of every labels-table column that is constant within the group (``columns``, None otherwise)."""

    groups: List[str]
    names: List[str]
    X: np.ndarray
    n_images: List[int]
    columns: Dict[str, List[Optional[str]]] = field(default_factory=dict)
    unit: str = "px"

    def as_rows(self) -> List[dict]:
        return [{"group": g, "n_images": n, **{f: _num(v) for f, v in zip(self.names, row)}}
                for g, n, row in zip(self.groups, self.n_images, self.X)]


def _num(v):
    return None if not np.isfinite(v) else float(v)


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def group_features(cfg, task_classes: Mapping[str, Sequence[str]], image_names: Sequence[str],
                   label_maps: Mapping[str, Sequence[np.ndarray]], table: Mapping[str, Mapping[str, str]],
                   sizes: Optional[Sequence] = None, spacing: Optional[Sequence] = None) -> GroupFeatures:
    """Per-group features of ``cfg`` (a :class:`umsrep.recipe.PatientConfig`).

    ``task_classes``: {task: classes} of the recipe's tasks; ``image_names``: n image stems (keys of ``table``,
    from :func:`read_table`); ``label_maps[task]``: n label maps (0 = background, i = classes[i-1]) at any size;
    ``sizes``: n original (height, width) — areas are counted in original pixels; ``spacing``: n mm per pixel
    (number or (row, column)); when every image has one, areas are in mm².
    """
    from types import SimpleNamespace

    specs = cfg.feature_specs({t: SimpleNamespace(type="segmentation", classes=list(c))
                               for t, c in task_classes.items()})
    names = list(image_names)
    columns = sorted({k for row in table.values() for k in row})
    for col, what in ((cfg.group_by, "patient.group_by"), (cfg.frame_column, "patient.frame_column")):
        if col is not None and col not in columns:
            raise DataError(f"{what}: no column {col!r} in the labels table; columns are {', '.join(columns)}")
    missing = [n for n in names if n not in table]
    if missing:
        raise DataError(f"image {missing[0]!r} has no row in the labels table ({len(missing)} images without one)")
    use_mm = spacing is not None and all(s is not None and np.all(np.isfinite(s)) for s in spacing)
    groups: Dict[str, List[int]] = {}
    for i, n in enumerate(names):
        g = table[n][cfg.group_by]
        if not g:
            raise DataError(f"image {n!r}: empty {cfg.group_by!r} (patient.group_by)")
        groups.setdefault(g, []).append(i)
    frame_of = [None] * len(names)
    if cfg.frame_column is not None:
        for i, n in enumerate(names):
            v = table[n][cfg.frame_column]
            frame_of[i] = next((f for f, want in cfg.frames.items() if _same(v, str(want))), None)

    def area_per_pixel(i, shape):
        """The area of one label-map pixel of image ``i`` in original pixels (mm² with a spacing)."""
        per = 1.0
        if sizes is not None and sizes[i] is not None:
            per = float(sizes[i][0]) * float(sizes[i][1]) / (shape[0] * shape[1])
        if use_mm:
            s = np.asarray(spacing[i], float).reshape(-1)
            per *= float(s[0] * (s[1] if s.size > 1 else s[0]))
        return per

    def pixel_area(i, task, cls):
        m = np.asarray(label_maps[task][i])
        k = (m > 0) if not cls else (m == list(task_classes[task]).index(cls) + 1)
        return float(k.sum()) * area_per_pixel(i, m.shape)

    def thickness_samples(i, task, cls):   # lengths scale with the square root of a pixel's area
        m = np.asarray(label_maps[task][i]) == list(task_classes[task]).index(cls) + 1
        return wall_thickness(m) * np.sqrt(area_per_pixel(i, m.shape))

    gids = list(groups)
    X = np.full((len(gids), len(specs)), np.nan)
    for gi, g in enumerate(gids):
        vals: Dict[str, float] = {}
        for name, f in specs.items():
            if f.region is not None:
                task, _, cls = f.region.partition(".")
                rows = [i for i in groups[g] if f.frame is None or frame_of[i] == f.frame]
                if f.area is not None:
                    v = sum(pixel_area(i, task, cls) for i in rows) if rows else np.nan
                else:
                    v = thickness_stat(np.concatenate([thickness_samples(i, task, cls) for i in rows] or [[]]),
                                       f.stat)
            else:
                a, b = (vals[r] for r in (f.change or f.ratio))
                num = (a - b) if f.change is not None else a
                den = a if f.change is not None else b
                v = num / den if np.isfinite(num) and np.isfinite(den) and den != 0 else np.nan
            vals[name] = v
        X[gi] = [vals[n] for n in specs]
    const = {}
    for col in columns:
        const[col] = [_constant([table[names[i]].get(col, "") for i in groups[g]]) for g in gids]
    return GroupFeatures(gids, list(specs), X, [len(groups[g]) for g in gids], const, "mm" if use_mm else "px")


def wall_thickness(mask) -> np.ndarray:
    """Thickness samples of a binary region in pixels: twice the Euclidean distance to the nearest background
    pixel, read on the region's medial ridge (pixels whose distance is a local maximum of their 3x3
    neighbourhood). For a ring such as the myocardium, one sample per ridge pixel around the wall; empty when the
    region is absent."""
    import cv2

    m = np.asarray(mask, bool)
    if m.sum() < 3:
        return np.zeros(0)
    d = cv2.distanceTransform(np.pad(m, 1).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    ridge = m & (d >= cv2.dilate(d, np.ones((3, 3), np.uint8)) - 1e-6)
    # a pixel's distance is to the centre of the nearest background pixel, so 2 d - 1 is exact for a band of an odd
    # number of pixels and one pixel short for an even one: 2 d - 0.5 is within half a pixel of either
    return 2.0 * d[ridge] - 0.5


def thickness_stat(t: np.ndarray, stat: str) -> float:
    """``mean`` / ``cv`` (SD over mean) / ``p10_p90`` / ``max`` of thickness samples; NaN without samples."""
    t = np.asarray(t, float)
    if t.size == 0:
        return np.nan
    if stat == "mean":
        return float(t.mean())
    if stat == "cv":
        return float(t.std() / t.mean()) if t.mean() > 0 else np.nan
    if stat == "p10_p90":
        hi = np.percentile(t, 90)
        return float(np.percentile(t, 10) / hi) if hi > 0 else np.nan
    return float(t.max())


def _constant(values):
    return values[0] if len(set(values)) == 1 else None


def group_splits(groups: Sequence[str], image_groups: Sequence[str], image_split: Sequence[str]) -> Dict[str, str]:
    """Each group's split from its images' splits; a group split across train/val/test is refused."""
    seen: Dict[str, set] = {}
    for g, s in zip(image_groups, image_split):
        seen.setdefault(g, set()).add(s)
    out = {}
    for g in groups:
        s = seen.get(g, set())
        if len(s) != 1:
            raise DataError(f"group {g!r} has images in the splits {sorted(s)}: split the data by the patient "
                            "column (data.group_by = patient.group_by)")
        out[g] = next(iter(s))
    return out


def targets_of(cfg, feats: GroupFeatures) -> Dict[str, tuple]:
    """``{target: (classes, per-group class id or -1)}`` from the targets' columns (constant per group)."""
    out = {}
    for name, t in cfg.targets.items():
        if t.column not in feats.columns:
            raise DataError(f"patient.targets.{name}.column: no column {t.column!r} in the labels table; "
                            f"columns are {', '.join(sorted(feats.columns))}")
        raw = feats.columns[t.column]
        bad = [g for g, v in zip(feats.groups, raw) if v is None]
        if bad:
            raise DataError(f"patient.targets.{name}: group {bad[0]!r} has several values of {t.column!r}")
        mapped = [(t.label_map.get(v) if t.label_map is not None else v) or None for v in raw]
        classes = list(t.classes) if t.classes else sorted({v for v in mapped if v is not None})
        unknown = sorted({v for v in mapped if v is not None and v not in classes})
        if unknown:
            raise DataError(f"patient.targets.{name}: value {unknown[0]!r} is not one of the classes {classes}")
        out[name] = (classes, np.array([classes.index(v) if v is not None else -1 for v in mapped]))
    return out


def make_classifier(kind: str, seed: int):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "random_forest":
        clf = RandomForestClassifier(n_estimators=300, min_samples_leaf=2, random_state=seed, n_jobs=1)
    else:
        clf = LogisticRegression(C=1.0, max_iter=5000, random_state=seed)
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(), clf)


def classification_report(y, pred, classes, seed=0) -> dict:
    """Per-group accuracy (bootstrap 95% CI over groups), balanced accuracy, MCC and the confusion matrix."""
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, matthews_corrcoef

    y, pred = np.asarray(y), np.asarray(pred)
    correct = (y == pred).astype(float)
    ci = bootstrap_ci(correct, seed=seed)
    cm = confusion_matrix(y, pred, labels=list(range(len(classes))))
    return {"n_groups": int(len(y)), "accuracy": float(correct.mean()), "accuracy_ci95": [ci["low"], ci["high"]],
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            "mcc": float(matthews_corrcoef(y, pred)), "confusion": cm.tolist(),
            "recall": {c: (float(cm[k, k] / cm[k].sum()) if cm[k].sum() else None) for k, c in enumerate(classes)}}


def train_evaluate(cfg, feats: GroupFeatures, split_of: Mapping[str, str], seed: int = 0,
                   train_feats: Optional[GroupFeatures] = None, splits=("val", "test")) -> dict:
    """Per target: a classifier trained on the ``train`` groups (features of ``train_feats`` when given, e.g.
    from true masks, else of ``feats``), evaluated per group of each split on ``feats``."""
    train_src = feats if train_feats is None else train_feats
    if train_src.groups != feats.groups or train_src.names != feats.names:
        raise ValueError("train_feats must have the same groups and features as feats")
    split = np.array([split_of.get(g) for g in feats.groups], dtype=object)
    out = {}
    for name, (classes, y) in targets_of(cfg, feats).items():
        tr = (split == "train") & (y >= 0)
        present = sorted(set(y[tr]))
        if len(present) < 2:
            out[name] = {"skipped": f"fewer than 2 classes among the {int(tr.sum())} training groups"}
            continue
        clf = make_classifier(cfg.classifier, seed).fit(train_src.X[tr], y[tr])
        res = {"classes": classes, "classifier": cfg.classifier, "features": feats.names,
               "n_train_groups": int(tr.sum()),
               "train": classification_report(y[tr], clf.predict(train_src.X[tr]), classes, seed)}
        for s in splits:
            sel = (split == s) & (y >= 0)
            if sel.any():
                pred = clf.predict(feats.X[sel])
                res[s] = classification_report(y[sel], pred, classes, seed)
                res[s]["groups"] = [g for g, k in zip(feats.groups, sel) if k]
                res[s]["predicted"] = [classes[int(p)] for p in pred]
        out[name] = res
    return out
