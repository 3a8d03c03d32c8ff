"""Model-comparison statistics against values computed by hand or from their textbook formulas."""

import numpy as np
import pytest

from umsrep.evaluate.stats import bootstrap_ci, mcnemar, paired_tests


def _pairs(b, c, both=5, neither=3):
    a = [True] * b + [False] * c + [True] * both + [False] * neither
    bb = [False] * b + [True] * c + [True] * both + [False] * neither
    return a, bb


def test_mcnemar_exact_small_counts():
    r = mcnemar(*_pairs(10, 2))
    assert (r["b"], r["c"], r["method"]) == (10, 2, "exact binomial")
    # two-sided exact: 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    assert r["p_value"] == pytest.approx(2 * 79 / 4096, rel=1e-9)


def test_mcnemar_chi_square_with_continuity_correction():
    r = mcnemar(*_pairs(30, 12))
    assert r["method"].startswith("chi-square")
    assert r["statistic"] == pytest.approx((18 - 1) ** 2 / 42)
    assert r["p_value"] == pytest.approx(0.008695, abs=2e-5)   # chi2(1) survival of 6.881


def test_mcnemar_identical_classifiers_and_bad_input():
    a = [True, False, True]
    assert mcnemar(a, a)["p_value"] == 1.0
    with pytest.raises(ValueError, match="equal-length"):
        mcnemar([True], [True, False])


def test_bootstrap_ci_of_a_proportion_matches_the_normal_approximation():
    rng = np.random.default_rng(1)
    x = (rng.random(400) < 0.7).astype(float)
    r = bootstrap_ci(x, n_boot=4000, seed=3)
    p = x.mean()
    half = 1.96 * np.sqrt(p * (1 - p) / x.size)
    assert r["mean"] == pytest.approx(p)
    assert r["low"] == pytest.approx(p - half, abs=0.012) and r["high"] == pytest.approx(p + half, abs=0.012)
    assert r == bootstrap_ci(x, n_boot=4000, seed=3)            # seeded: reproducible


def test_bootstrap_ci_degenerate_and_empty():
    r = bootstrap_ci([0.8, 0.8, 0.8])
    assert r["n"] == 3 and r["low"] == r["mean"] == r["high"] == pytest.approx(0.8)
    assert bootstrap_ci([])["n"] == 0


def test_paired_tests_over_folds():
    a = [0.81, 0.79, 0.84, 0.80, 0.83]
    b = [0.78, 0.77, 0.80, 0.79, 0.80]
    r = paired_tests(a, b)
    d = np.subtract(a, b)
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    assert r["t_test"]["statistic"] == pytest.approx(t)
    assert r["wilcoxon"]["statistic"] == pytest.approx(0.0)     # every difference positive: W- = 0
    assert r["wilcoxon"]["p_value"] == pytest.approx(2 / 2 ** 5)  # exact: two-sided 2 * (1/32)
    with pytest.raises(ValueError, match=">= 2 values"):
        paired_tests([1.0], [2.0])


def test_mean_sd_is_the_sample_sd():
    from umsrep.evaluate.stats import mean_sd

    r = mean_sd([1.0, 2.0, 3.0, 4.0])
    assert r["mean"] == 2.5 and r["sd"] == pytest.approx(np.sqrt(5 / 3))   # ddof=1, not sqrt(5/4)
    assert mean_sd([3.0]) == {"mean": 3.0, "sd": 0.0, "values": [3.0]}


def test_group_bootstrap_matches_the_spread_of_group_means():
    """20 patients x 8 images, images of one patient nearly identical: the interval follows the 20 patient means
    (normal approximation 1.96 SE of their mean), far wider than treating the 160 images as independent."""
    rng = np.random.default_rng(4)
    patient_mean = rng.normal(0.8, 0.1, size=20)
    x = np.repeat(patient_mean, 8) + rng.normal(0, 0.001, size=160)
    groups = np.repeat([f"p{i}" for i in range(20)], 8)
    r = bootstrap_ci(x, n_boot=4000, seed=1, groups=groups)
    se = patient_mean.std(ddof=1) / np.sqrt(20)
    assert r["groups"] == 20 and r["n"] == 160 and r["mean"] == pytest.approx(x.mean())
    assert r["low"] == pytest.approx(x.mean() - 1.96 * se, abs=0.25 * se)
    assert r["high"] == pytest.approx(x.mean() + 1.96 * se, abs=0.25 * se)
    flat = bootstrap_ci(x, n_boot=4000, seed=1)
    assert (r["high"] - r["low"]) > 2 * (flat["high"] - flat["low"])
    assert r == bootstrap_ci(x, n_boot=4000, seed=1, groups=groups)
    # no groups named: every image its own group, the image-level interval within Monte-Carlo noise
    own = bootstrap_ci(x, n_boot=4000, seed=1, groups=[None] * 160)
    assert own["groups"] == 160 and own["low"] == pytest.approx(flat["low"], abs=0.004)


def test_group_mean_counts_each_group_once_and_sets_the_largest_apart():
    """Three groups: a large poor one (4 images) and two small good ones; the largest group's mean beside the
    per-image mean of the rest, and one group alone has no rest."""
    from umsrep.evaluate.stats import group_mean

    per = [0.5, 0.6, 0.4, 0.5, 0.9, 1.0, 0.8]
    r = group_mean(per, ["rec", "rec", "rec", "rec", "a", "a", "b"])
    assert r["n"] == 3 and r["largest"] == 4 and r["largest_group"] == "rec"
    assert r["mean"] == pytest.approx((0.5 + 0.95 + 0.8) / 3)
    assert r["largest_mean"] == pytest.approx(0.5) and r["others_mean"] == pytest.approx(0.9)
    one = group_mean([0.2, 0.4], ["x", "x"])
    assert one["mean"] == pytest.approx(0.3) and one["others_mean"] is None
