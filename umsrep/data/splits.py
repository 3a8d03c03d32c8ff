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

__all__ = ["split_indices", "check_classes_present"]


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

    Fractions are of samples, or of groups when ``groups`` is given. With ``folds=k`` the test split is fold ``fold``
    of a k-fold split and val is the fraction ``val`` of the remaining units. ``train_fraction`` < 1 keeps that
    fraction of the train units (stratified, at least one), val and test unchanged: labelled-data curves.
    """
    n = int(n)
    if n < 1:
        raise DataError(f"split: no samples to split (n={n})")
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries, expected n={n}")
    if groups is not None and len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries, expected n={n}")
    if not 0 <= val < 1:
        raise ValueError(f"val must be in [0, 1), got {val}")
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
        if not 0 <= test < 1:
            raise ValueError(f"test must be in [0, 1), got {test}")
        n_test, n_val = _count(test, n_units), _count(val, n_units)
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
        n_val = _count(val, len(rest))
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
