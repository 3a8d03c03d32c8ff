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


# Started by run_measured: a small process that starts the command and reports that command's peak RSS alone. A
# child forked straight from a large benchmark process inherits the parent's high-water mark (Linux carries the
# forked memory's peak across exec), so the command is started from this fresh, small process instead.
_RSS_HELPER = """import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(cmd, **popen_kw) -> tuple:
    """Run ``cmd`` (a list) to the end in a process of its own: (seconds, exit code, peak RSS of that command's
    process in MiB; Linux ``ru_maxrss`` from ``wait4`` is in KiB)."""
    import os
    import tempfile

    fd, path = tempfile.mkstemp(prefix="umsrep_rss_")
    os.close(fd)
    try:
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, "-c", _RSS_HELPER, path, *map(str, cmd)], **popen_kw).returncode
        seconds = time.perf_counter() - t0
        text = Path(path).read_text().strip()
    finally:
        os.unlink(path)
    return seconds, rc, (int(text) / 1024 if text else float("nan"))


def self_peak_rss_mb() -> float:
    """Peak RSS of this process so far, MiB (Linux ``ru_maxrss`` is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
