"""Peak memory (RSS) of a real `umsrep fit`: BUSI at 256x256 with the `strong` augmentation preset (issue #17's
target: <= 4 GB), measured on the whole `umsrep fit` process (os.wait4: start-up, data loading and caching, the
augmented tf.data pipeline, training, evaluation and the report).

    UMSREP_DATA=../shared/data python bench/memory.py [--recipe recipes/busi.yaml] [--preset strong] [--epochs 1]

One epoch covers every training image once, so the pipeline's cache is full and the peak is reached; more epochs
only repeat it (check with --epochs 2). Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, run_measured, save


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default=str(REPO / "recipes" / "busi.yaml"))
    ap.add_argument("--preset", default="strong", help="data.augment.preset for the run")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--target-gb", type=float, default=4.0)
    a = ap.parse_args()
    if not os.environ.get("UMSREP_DATA"):
        raise SystemExit("set UMSREP_DATA to the shared data folder (the recipe reads ${UMSREP_DATA}/busi)")
    sets = [f"data.augment.preset={a.preset}", f"strategy.epochs={a.epochs}",
            "strategy.early_stopping.min_epochs=1", "output.html=false"]
    with tempfile.TemporaryDirectory(prefix="umsrep_mem_") as tmp:
        cmd = [sys.executable, "-m", "umsrep", "fit", a.recipe, "--out", str(Path(tmp) / "run")]
        for s in sets:
            cmd += ["--set", s]
        log = Path(tmp) / "fit.log"
        print(" ".join(cmd[2:]), flush=True)
        with open(log, "w") as fh:
            sec, rc, rss = run_measured(cmd, stdout=fh, stderr=subprocess.STDOUT)
        if rc != 0:
            raise SystemExit(f"umsrep fit failed ({rc}):\n{log.read_text()[-3000:]}")
    res = {"recipe": os.path.relpath(a.recipe, REPO), "set": sets, "seconds": sec, "peak_rss_mb": rss,
           "peak_rss_gb": rss / 1024, "target_gb": a.target_gb, "met": rss / 1024 <= a.target_gb}
    print(f"peak RSS of `umsrep fit`: {rss / 1024:.2f} GiB (target <= {a.target_gb} GB: "
          f"{'met' if res['met'] else 'NOT met'}), {sec:.0f} s")
    save("memory", res)


if __name__ == "__main__":
    main()
