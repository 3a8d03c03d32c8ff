"""Agreement between two measurement methods on the same images: measurements from predicted masks vs the same
measurements from true masks (mean absolute error, in units and %, and Bland-Altman statistics), and the
Bland-Altman plot for report.html."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

from umsrep.evaluate.stats import bootstrap_ci, group_mean


def agreement(pred: Sequence[float], true: Sequence[float], unit: str = "px", seed: int = 0,
              groups: Optional[Sequence] = None) -> Dict[str, Any]:
    """Compare ``pred`` with ``true`` (one value per image, NaN where not measurable) on the images where both are
    measured: MAE (with a bootstrap 95% CI), MAE in % of the true value (not for angles), RMSE, Pearson r, and
    Bland-Altman bias (mean of pred - true), SD of the differences and 95% limits of agreement (bias ± 1.96 SD).
    ``n_missing_pred`` counts images measured on the true masks but not on the predicted ones (and vice versa).
    With ``groups`` (one per image: patient, recording) the MAE's CI resamples whole groups, and ``by_group``
    gives the MAE averaged within each group first (each group counts once, however many images it has)."""
    p, t = np.asarray(pred, np.float64).reshape(-1), np.asarray(true, np.float64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"agreement needs two equal-length vectors, got {p.shape} and {t.shape}")
    fp, ft = np.isfinite(p), np.isfinite(t)
    both = fp & ft
    out: Dict[str, Any] = {"unit": unit, "n": int(both.sum()), "n_images": int(p.size),
                           "n_missing_pred": int(np.sum(ft & ~fp)), "n_missing_true": int(np.sum(fp & ~ft))}
    if not both.any():
        return out
    p, t = p[both], t[both]
    g = None if groups is None else np.asarray(groups).astype(str).reshape(-1)[both]
    d = p - t
    ad = np.abs(d)
    ci = bootstrap_ci(ad, seed=seed, groups=g)
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    bias = float(d.mean())
    out.update({"mean_true": float(t.mean()), "mean_pred": float(p.mean()), "mae": float(ad.mean()),
                "mae_ci95": [ci["low"], ci["high"]], "rmse": float(np.sqrt(np.mean(d ** 2))),
                "bias": bias, "sd_diff": sd, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd})
    if unit != "deg":
        nz = t != 0
        out["mae_pct"] = float(np.mean(ad[nz] / np.abs(t[nz])) * 100) if nz.any() else None
    out["pearson_r"] = float(np.corrcoef(p, t)[0, 1]) if p.size > 2 and p.std() > 0 and t.std() > 0 else None
    if g is not None:
        by = group_mean(ad, g)
        out["ci95_over"] = "group"
        out["by_group"] = {"n": by["n"], "largest": by["largest"], "mae": by["mean"]}
        if unit != "deg" and np.all(t != 0):
            out["by_group"]["mae_pct"] = group_mean(ad / np.abs(t) * 100, g)["mean"]
    return out


def bland_altman_figure(pred: Sequence[float], true: Sequence[float], title: str, unit: str = "px"):
    """A matplotlib figure: difference (pred - true) against the mean of both, with the bias and the 95% limits
    of agreement (images measured by both only). report.html embeds it with ``html._png``."""
    import matplotlib.pyplot as plt

    p, t = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    ok = np.isfinite(p) & np.isfinite(t)
    p, t = p[ok], t[ok]
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    if p.size:
        mean, diff = (p + t) / 2, p - t
        bias, sd = diff.mean(), (diff.std(ddof=1) if diff.size > 1 else 0.0)
        ax.scatter(mean, diff, s=14, alpha=0.7)
        hi, lo = bias + 1.96 * sd, bias - 1.96 * sd
        for y, style, label in ((bias, "-", f"bias {bias:.2f}"), (hi, "--", f"+1.96 SD {hi:.2f}"),
                                (lo, "--", f"-1.96 SD {lo:.2f}")):
            ax.axhline(y, color="k" if style == "-" else "grey", linestyle=style, linewidth=1, label=label)
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no image measured on both", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"mean of predicted and true ({unit})")
    ax.set_ylabel(f"predicted - true ({unit})")
    ax.set_title(f"{title} (n={int(ok.sum())})", fontsize=9)
    fig.tight_layout()
    return fig
