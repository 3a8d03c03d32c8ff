"""Terminal output: a compact table of held-out results (rich), printed after fit and evaluate."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

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


def print_cv_summary(metrics: dict, title=None) -> None:
    """Mean ± SD table of a cross-validation run (``cv``) or of a run over training seeds (``seeds``)."""
    from rich.console import Console
    from rich.table import Table

    key = "cv" if "cv" in metrics else "seeds"
    table = Table(title=title or ("cross-validation (test folds): mean ± SD" if key == "cv"
                                  else "training seeds (test split): mean ± SD"))
    for col in ("approach", "task", "metrics", "time (s)"):
        table.add_column(col)
    for a, v in metrics[key]["approaches"].items():
        for task, m in v["tasks"].items():
            keys = [k for k in HEADLINE["segmentation"] + HEADLINE["classification"] if k in m]
            table.add_row(a, task, ", ".join(f"{k} {m[k]['mean']:.3f}±{m[k]['sd']:.3f}" for k in keys),
                          f"{v['wall_time_s']['mean']:.0f}")
    Console().print(table)


def progress(items, description, log=print):
    """Iterate ``items`` with a progress bar on stderr for long batches (plain iteration when short or when
    stderr is not a terminal)."""
    items = list(items)
    if len(items) < 8 or not sys.stderr.isatty():
        return items
    from rich.console import Console
    from rich.progress import track

    return track(items, description=description, console=Console(stderr=True), transient=True)


# TensorFlow's C++ start-up and info lines (absl format), its CPU-feature notice and the CUDA-probing errors of a
# machine without a GPU: written by C++ to file descriptor 2 before any log setting applies.
TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions:"
    r"|[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]"
    r"|E\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] .*(cuInit|[Uu]nable to register|cuda|CUDA|TF-TRT))")


@contextlib.contextmanager
def filtered_stderr(noise=TF_NOISE):
    """For the process entry point only: route file descriptor 2 through a filter that drops ``noise`` lines (C++
    log lines of the frameworks); Python's own ``sys.stderr`` writes straight to the original stream."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        r, w = os.pipe()
    except (OSError, AttributeError, ValueError):  # no real stderr (embedded, some IDEs): leave it alone
        yield
        return
    os.dup2(w, 2)
    os.close(w)
    old = sys.stderr
    sys.stderr = open(saved, "w", buffering=1, encoding=getattr(old, "encoding", None) or "utf-8",
                      errors="backslashreplace", closefd=False)

    def pump():
        with open(r, "rb") as pipe:
            for line in pipe:
                if not noise.match(line.decode("utf-8", "replace")):
                    os.write(saved, line)

    thread = threading.Thread(target=pump, name="umsrep-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's write end held at fd 2: the filter reads to its end
        thread.join(timeout=5)
        sys.stderr = old
        os.close(saved)
