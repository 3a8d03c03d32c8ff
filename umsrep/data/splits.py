"""Deterministic train / val / test splits: stratified by label, never leaking a group across splits.

With ``groups`` the split is made over groups (e.g. patients); each group's stratum is its most frequent label.
Samples whose group is ``None`` are each their own group. When stratification is impossible (a class too small for
the requested sizes) the split falls back to an unstratified one; grouping is never given up.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from umsrep.errors import DataError

__all__ = ["split_indices", "check_classes_present", "read_split_file", "write_split_file"]


def _codes(values) -> np.ndarray:
    """Integer codes for arbitrary (hashable) values; ``None`` is a value of its own. Deterministic order."""
    distinct = sorted(set(values), key=lambda v: (v is None, type(v).__name__, str(v)))
    index = {v: i for i, v in enumerate(distinct)}
    return np.array([index[v] for v in values], dtype=np.int64)


def _units(n: int, groups) -> tuple[np.ndarray, int]:
    """Map each sample to a split unit: its group, or itself when there are no groups / its group is None."""
    if groups is None:
        return np.arange(n, dtype=np.int64), n
    named = sorted({str(g) for g in groups if g is not None})
    index = {g: i for i, g in enumerate(named)}
    unit = np.empty(n, dtype=np.int64)
    nxt = len(named)
    for i, g in enumerate(groups):
        if g is None:
            unit[i] = nxt
            nxt += 1
        else:
            unit[i] = index[str(g)]
    return unit, nxt


def _count(frac: float, total: int) -> int:
    """Number of units for a fraction: rounded half up, at least 1 when the fraction is positive."""
    if frac <= 0:
        return 0
    return max(1, int(math.floor(frac * total + 0.5)))


def _amount(v, total: int) -> int:
    """Units for ``v``: a whole count as given, a fraction of ``total`` as in :func:`_count`."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v)
    return _count(float(v), total)


def _take(units: np.ndarray, strata: np.ndarray | None, n_take: int, seed: int):
    """Split ``units`` into (rest, taken) with ``n_take`` taken; stratified when possible."""
    if n_take <= 0:
        return units, units[:0]
    if strata is not None and len(np.unique(strata)) > 1:
        try:
            rest, taken = train_test_split(units, test_size=n_take, stratify=strata, random_state=seed)
            return rest, taken
        except ValueError:
            pass  # a class too small for stratification: unstratified below
    rest, taken = train_test_split(units, test_size=n_take, random_state=seed)
    return rest, taken


def _kfold_tests(k: int, codes: np.ndarray | None, unit: np.ndarray, grouped: bool, seed: int) -> list[np.ndarray]:
    """Test-sample indices of each of the ``k`` folds (stratified / grouped when asked and possible)."""
    n = len(unit)
    x = np.zeros((n, 1))
    attempts = []
    if grouped:
        if codes is not None:
            attempts.append(lambda: StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(x, codes, unit))
        attempts.append(lambda: GroupKFold(k, shuffle=True, random_state=seed).split(x, groups=unit))
    else:
        if codes is not None:
            attempts.append(lambda: StratifiedKFold(k, shuffle=True, random_state=seed).split(x, codes))
        attempts.append(lambda: KFold(k, shuffle=True, random_state=seed).split(x))
    for attempt in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "least populated class has only m members"
                tests = [np.sort(test) for _, test in attempt()]
        except ValueError:
            continue
        if len(tests) == k and all(len(t) for t in tests):
            return tests
    return []


def split_indices(
    n,
    *,
    labels=None,
    groups=None,
    test=0.2,
    val=0.1,
    seed=0,
    folds=None,
    fold=0,
    train_fraction=1.0,
) -> dict[str, np.ndarray]:
    """Split ``range(n)`` into sorted index arrays ``{"train", "val", "test"}``.

    ``test`` and ``val`` are fractions (float) or counts (int) of samples, or of groups when ``groups`` is given.
    With ``folds=k`` the test split is fold ``fold`` of a k-fold split and val is the fraction (or count) ``val``
    of the remaining units. ``train_fraction`` < 1 keeps that
    fraction of the train units (stratified, at least one), val and test unchanged: labelled-data curves.
    """
    n = int(n)
    if n < 1:
        raise DataError(f"split: no samples to split (n={n})")
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries, expected n={n}")
    if groups is not None and len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries, expected n={n}")
    for name, v in (("test", test), ("val", val)):
        if isinstance(v, float) and not 0 <= v < 1 or not isinstance(v, float) and v < 0:
            raise ValueError(f"{name} must be a fraction in [0, 1) or a count >= 0, got {v}")
    seed = int(seed)

    unit, n_units = _units(n, groups)
    codes = _codes(list(labels)) if labels is not None else None
    unit_strata = None
    if codes is not None:
        counts = np.zeros((n_units, int(codes.max()) + 1), dtype=np.int64)
        np.add.at(counts, (unit, codes), 1)
        unit_strata = counts.argmax(axis=1)  # most frequent label per unit (ties: first in _codes order)
    all_units = np.arange(n_units)
    where = f"n={n}" + (f", groups={n_units}" if groups is not None else "")

    if folds is None:
        n_test, n_val = _amount(test, n_units), _amount(val, n_units)
        if n_test == 0:
            raise DataError(f"split: test is empty ({where}, test={test})")
        if n_units - n_test - n_val < 1:
            raise DataError(f"split: train is empty ({where}, test={test}, val={val})")
        rest, test_u = _take(all_units, unit_strata, n_test, seed)
    else:
        k, fold = int(folds), int(fold)
        if k < 2:
            raise ValueError(f"folds must be at least 2, got {folds}")
        if not 0 <= fold < k:
            raise ValueError(f"fold must be in [0, {k - 1}], got {fold}")
        tests = _kfold_tests(k, codes, unit, groups is not None, seed) if n_units >= k else []
        if not tests:
            raise DataError(f"split: test is empty ({where}, test=fold {fold} of {k})")
        test_u = np.unique(unit[tests[fold]])
        rest = np.setdiff1d(all_units, test_u)
        n_val = _amount(val, len(rest))
        if len(rest) - n_val < 1:
            raise DataError(f"split: train is empty ({where}, test=fold {fold} of {k}, val={val})")

    rest = np.asarray(rest)
    train_u, val_u = _take(rest, None if unit_strata is None else unit_strata[rest], n_val, seed)
    if not 0 < train_fraction <= 1:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
    if train_fraction < 1:
        train_u = np.asarray(train_u)
        n_drop = len(train_u) - _count(train_fraction, len(train_u))
        train_u, _ = _take(train_u, None if unit_strata is None else unit_strata[train_u], n_drop, seed + 1)

    def samples(units: np.ndarray) -> np.ndarray:
        return np.flatnonzero(np.isin(unit, units)).astype(np.int64)

    return {"train": samples(train_u), "val": samples(val_u), "test": samples(test_u)}


def check_classes_present(split_labels, classes, where: str) -> None:
    """Raise :class:`DataError` if a class of ``classes`` has no sample in ``split_labels``.

    ``where`` completes the message, e.g. ``"the training split of task busi_cls"``.
    """
    present = {str(v) for v in split_labels if v is not None}
    missing = [str(c) for c in classes if str(c) not in present]
    if len(missing) == 1:
        raise DataError(f"class '{missing[0]}' has no sample in {where}")
    if missing:
        names = ", ".join(f"'{c}'" for c in missing)
        raise DataError(f"classes {names} have no sample in {where}")


SPLIT_NAMES = ("train", "val", "test")


def read_split_file(path, files, names, groups=None) -> dict[str, np.ndarray]:
    """``{"train", "val", "test"}`` index arrays from a CSV with columns ``filename,split``.

    A row names an image by file name (or stem, as the labels CSV does); every image of the data set must have a
    row (rows of images not in the data set, e.g. skipped files, are ignored). With ``groups`` a group (patient)
    found in two splits is refused."""
    import csv
    from pathlib import Path

    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            table = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise DataError(f"{path}: split file not found (data.split.file)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read split file ({type(e).__name__}: {e})") from None
    if not table or not {"filename", "split"} <= set(table[0]):
        raise DataError(f"{path}: a split file needs the columns filename,split")
    by_name = {Path(f).name: i for i, f in enumerate(files)}
    by_stem = {n: i for i, n in enumerate(names)}
    which = np.full(len(files), -1)
    for row_no, row in enumerate(table, start=2):
        base = Path(str(row["filename"]).strip().replace("\\", "/")).name
        i = by_name.get(base)
        if i is None:
            i = by_stem.get(base, by_stem.get(Path(base).stem))
        split = str(row["split"]).strip()
        if split not in SPLIT_NAMES:
            raise DataError(f"{path}: row {row_no}: split {split!r} is not one of {', '.join(SPLIT_NAMES)}")
        if i is not None:
            which[i] = SPLIT_NAMES.index(split)
    missing = np.flatnonzero(which < 0)
    if len(missing):
        raise DataError(f"{path}: {len(missing)} image(s) of the data set have no row, e.g. {files[missing[0]]}")
    out = {s: np.flatnonzero(which == k).astype(np.int64) for k, s in enumerate(SPLIT_NAMES)}
    if len(out["test"]) == 0 or len(out["train"]) == 0:
        raise DataError(f"{path}: the {'test' if len(out['test']) == 0 else 'train'} split is empty")
    if groups is not None:
        seen: dict = {}
        for i, g in enumerate(groups):
            if g is not None and seen.setdefault(g, which[i]) != which[i]:
                raise DataError(f"{path}: group {g!r} is in both the {SPLIT_NAMES[seen[g]]} and the "
                                f"{SPLIT_NAMES[which[i]]} split")
    return out


def write_split_file(path, files, split: dict) -> None:
    """The CSV :func:`read_split_file` reads (file names, one row per image, in data set order)."""
    import csv
    import io
    from pathlib import Path

    from umsrep.io import write_text

    of = {int(i): s for s in SPLIT_NAMES for i in split[s]}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["filename", "split"])
    writer.writerows([Path(f).name, of[i]] for i, f in enumerate(files) if i in of)
    write_text(path, buf.getvalue())
