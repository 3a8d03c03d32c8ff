"""Statistics for comparing models: McNemar's test, bootstrap confidence intervals, paired tests over folds.

Thin, checked wrappers over scipy so every comparison in umsrep is computed one way:

- :func:`mcnemar`: two classifiers on the same test images, from their per-image correctness; exact binomial
  test when fewer than 25 discordant pairs, otherwise chi-square with continuity correction;
- :func:`bootstrap_ci`: percentile bootstrap CI of the mean of per-image values (accuracy = mean of 0/1
  correctness, Dice = mean of per-image Dice), seeded; by groups (patients) when the data set has them;
- :func:`paired_tests`: paired t-test and Wilcoxon signed-rank test of one metric over folds.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np
from scipy import stats


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool], exact: bool | None = None) -> Dict[str, Any]:
    """McNemar's test; ``b`` = A right and B wrong, ``c`` = A wrong and B right."""
    a = np.asarray(correct_a, bool)
    bb = np.asarray(correct_b, bool)
    if a.shape != bb.shape or a.ndim != 1:
        raise ValueError(f"mcnemar needs two equal-length 1-D correctness vectors, got {a.shape} and {bb.shape}")
    b = int(np.sum(a & ~bb))
    c = int(np.sum(~a & bb))
    n = b + c
    if exact is None:
        exact = n < 25
    if n == 0:
        return {"b": b, "c": c, "statistic": 0.0, "p_value": 1.0, "method": "no discordant pairs"}
    if exact:
        p = stats.binomtest(min(b, c), n, 0.5, alternative="two-sided").pvalue
        return {"b": b, "c": c, "statistic": float(min(b, c)), "p_value": float(min(p, 1.0)),
                "method": "exact binomial"}
    chi2 = (abs(b - c) - 1) ** 2 / n
    return {"b": b, "c": c, "statistic": float(chi2), "p_value": float(stats.chi2.sf(chi2, 1)),
            "method": "chi-square, continuity-corrected"}


def bootstrap_ci(values: Sequence[float], n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                 groups: Sequence | None = None) -> Dict[str, Any]:
    """Mean and percentile bootstrap CI of the mean of ``values`` (one value per test image).

    With ``groups`` (one id per value: patient, recording; ``None`` or ``""`` = a group of its own) whole groups
    are resampled with replacement (cluster bootstrap) and each resample's mean is taken over all its images, so
    images of one patient do not count as independent samples; the result then also holds ``groups``."""
    x = np.asarray(values, np.float64).reshape(-1)
    if x.size == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    if groups is None:
        if x.size == 1 or np.all(x == x[0]):
            return {"mean": float(x.mean()), "low": float(x.mean()), "high": float(x.mean()), "n": int(x.size)}
        res = stats.bootstrap((x,), np.mean, n_resamples=n_boot, confidence_level=level, method="percentile",
                              random_state=np.random.default_rng(seed), vectorized=True)
        return {"mean": float(x.mean()), "low": float(res.confidence_interval.low),
                "high": float(res.confidence_interval.high), "n": int(x.size), "level": level}
    g = list(groups)
    if len(g) != x.size:
        raise ValueError(f"groups has {len(g)} entries for {x.size} values")
    named = {v: i for i, v in enumerate(sorted({str(v) for v in g if v not in (None, "")}))}
    codes = np.array([named[str(v)] if v not in (None, "") else len(named) + i for i, v in enumerate(g)])
    _, codes = np.unique(codes, return_inverse=True)
    n_groups = int(codes.max()) + 1
    out = {"mean": float(x.mean()), "n": int(x.size), "groups": n_groups, "level": level}
    if n_groups == 1 or np.all(x == x[0]):
        return {**out, "low": float(x.mean()), "high": float(x.mean())}
    sums, counts = np.bincount(codes, weights=x), np.bincount(codes).astype(np.float64)
    pick = np.random.default_rng(seed).integers(0, n_groups, size=(n_boot, n_groups))
    means = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    low, high = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return {**out, "low": float(low), "high": float(high)}


def group_mean(per, groups) -> dict:
    """The per-image outcome (Dice, or 1/0 for a correct class) averaged within each group, then over groups:
    ``{"n": groups, "mean": .., "largest": images in the largest group, "largest_group": its name,
    "largest_mean": its mean, "others_mean": the per-image mean of the images outside it}`` (``others_mean`` None
    when there is one group). With one large group (a long recording) the per-image mean is mostly that group's;
    ``mean`` counts every group once, and the largest group's own mean beside the rest's shows how much it weighs."""
    per, groups = np.asarray(per, float), np.asarray(groups).astype(str)
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=per) / counts
    big = int(np.argmax(counts))
    others = per[inverse != big]
    return {"n": int(len(names)), "mean": float(means.mean()), "largest": int(counts[big]),
            "largest_group": str(names[big]), "largest_mean": float(means[big]),
            "others_mean": float(others.mean()) if others.size else None}


def paired_tests(a: Sequence[float], b: Sequence[float]) -> Dict[str, Any]:
    """Paired t-test and Wilcoxon signed-rank test of ``a`` vs ``b`` (one value per fold each)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"paired_tests needs two equal-length sequences of >= 2 values, got {x.shape}, {y.shape}")
    d = x - y
    out: Dict[str, Any] = {"n": int(x.size), "mean_difference": float(d.mean())}
    if np.allclose(d, d[0]):
        out["t_test"] = {"statistic": None, "p_value": 1.0 if d[0] == 0 else 0.0}
    else:
        t = stats.ttest_rel(x, y)
        out["t_test"] = {"statistic": float(t.statistic), "p_value": float(t.pvalue)}
    if np.all(d == 0):
        out["wilcoxon"] = {"statistic": None, "p_value": 1.0}
    else:
        w = stats.wilcoxon(x, y)
        out["wilcoxon"] = {"statistic": float(w.statistic), "p_value": float(w.pvalue)}
    return out


def mean_sd(values: Sequence[float]) -> Dict[str, Any]:
    """``{"mean", "sd", "values"}`` of a 1-D sequence: the one mean ± SD of umsrep (cross-validation folds). ``sd`` is
    the *sample* standard deviation (``ddof=1``, the spread of an estimate over folds); 0.0 for a single value."""
    x = np.asarray(values, np.float64)
    return {"mean": float(x.mean()), "sd": float(x.std(ddof=1)) if x.size > 1 else 0.0,
            "values": [float(v) for v in x]}
