"""Shared helpers of the benchmarks: timing with repeats (median), the machine, JSON output, `umsrep fit` runs."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parent.parent


def machine() -> dict:
    """This machine (umsrep.evidence.machine: CPU model, cores, memory, Python) and the date."""
    from umsrep.evidence import machine as describe

    return {**describe(), "date": time.strftime("%Y-%m-%d %H:%M")}


def median_time(fn, repeats=5, warmup=1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def run_fit(recipe: dict, folder: Path, env: dict, extra_sets) -> Path:
    """``umsrep fit`` of ``recipe`` into folder/run (its own process); reuses or resumes an identical run."""
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(recipe, sort_keys=False)
    text += "".join(f"# --set {s}\n" for s in extra_sets)
    rfile, run = folder / "recipe.yaml", folder / "run"
    same = rfile.is_file() and rfile.read_text() == text
    if (run / "metrics.json").is_file() and same:
        print(f"  {folder.name}: complete run with this recipe found, reused")
        return run
    if run.exists() and any(run.iterdir()) and not same:
        raise SystemExit(f"{run} holds a run of another recipe: remove it or choose another --out")
    rfile.write_text(text)
    cmd = [sys.executable, "-m", "umsrep", "fit", str(rfile)]
    cmd += ["--resume", str(run)] if run.exists() and any(run.iterdir()) else ["--out", str(run)]
    for s in extra_sets:
        cmd += ["--set", s]
    log = folder / "fit.log"
    print(f"  {folder.name}: {' '.join(cmd[1:])}  (log: {log})", flush=True)
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise SystemExit(f"umsrep fit failed ({rc}) for {folder.name}:\n{tail}")
    print(f"  {folder.name}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    return run
