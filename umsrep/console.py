"""Terminal output: a compact table of held-out results (rich), printed after fit and evaluate."""

from __future__ import annotations

HEADLINE = {"segmentation": ("dice", "iou", "pixel_accuracy"),
            "classification": ("accuracy", "f1", "mcc", "roc_auc")}


def print_summary(metrics: dict, title="held-out results") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("task", "split", "n", "metrics"):
        table.add_column(col)
    for name, t in metrics.get("tasks", {}).items():
        for split in ("val", "test"):
            if split not in t:
                continue
            if t["type"] == "denoising":
                vals = ", ".join(f"{lv} PSNR {v['noisy']['psnr']:.1f}→{v['denoised']['psnr']:.1f}"
                                 for lv, v in t[split].items())
                table.add_row(name, split, str(next(iter(t[split].values()))["n"]), vals)
                continue
            m = t[split]
            vals = ", ".join(f"{k} {m[k]:.3f}" if m.get(k) is not None else f"{k} n/a" for k in HEADLINE[t["type"]])
            table.add_row(name, split, str(m["n"]), vals)
    Console().print(table)


def print_cv_summary(metrics: dict, title="cross-validation (test folds): mean ± SD") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("approach", "task", "metrics", "time (s)"):
        table.add_column(col)
    for a, v in metrics["cv"]["approaches"].items():
        for task, m in v["tasks"].items():
            keys = [k for k in HEADLINE["segmentation"] + HEADLINE["classification"] if k in m]
            table.add_row(a, task, ", ".join(f"{k} {m[k]['mean']:.3f}±{m[k]['sd']:.3f}" for k in keys),
                          f"{v['wall_time_s']['mean']:.0f}")
    Console().print(table)


def progress(items, description, log=print):
    """Iterate ``items`` with a progress bar on stderr for long batches (plain iteration when short or when
    stderr is not a terminal)."""
    import sys

    items = list(items)
    if len(items) < 8 or not sys.stderr.isatty():
        return items
    from rich.console import Console
    from rich.progress import track

    return track(items, description=description, console=Console(stderr=True), transient=True)
