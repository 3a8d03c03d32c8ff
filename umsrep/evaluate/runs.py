"""``umsrep evaluate RUN_DIR``: reload a finished run and recompute its held-out metrics.

The data are reloaded and re-split from the saved recipe; the split is checked against ``splits.json`` so a
changed data folder is refused rather than silently evaluated on other images. Results go to
``evaluation.json`` (``metrics.json`` from training is left untouched).
"""

from __future__ import annotations

import time

from umsrep.errors import RunDirError
from umsrep.io import load_keras


def load_finished_run(run_dir, log=print, model_name=None):
    """(run, recipe, model, rep_source, tasks) of a trained run, its held-out split re-made and checked."""
    from umsrep.data.prepare import SPLITS, prepare
    from umsrep.recipe import load_recipe
    from umsrep.rundir import RunDir

    run = RunDir.open(run_dir)
    run.require_model()
    recipe = load_recipe(run / RunDir.RECIPE)
    saved = run.read_json(RunDir.SPLITS)
    rep_source, tasks, sources = prepare(recipe, run.path, log)
    for key, src in sources.items():
        # by key (a hash of the data config); by root for runs written before the config gained fields
        same_root = [v for v in saved["sources"].values() if v.get("root") == (src.config.root or "synthetic")]
        ref = saved["sources"].get(key) or (same_root[0] if len(same_root) == 1 else None)
        if ref is None or any(src.names(s) != ref[s] for s in SPLITS):
            raise RunDirError(f"{src.config.root}: data or split differ from {run / RunDir.SPLITS}; "
                              f"cannot reproduce the run's held-out split")
    path = run.model_path
    if model_name:
        path = run.path / "models" / f"{model_name}.keras"
        if not path.is_file():
            have = sorted(p.stem for p in (run.path / "models").glob("*.keras"))
            raise RunDirError(f"--model: {path} not found; this run has {have or 'no other models'}")
    return run, recipe, load_keras(path), rep_source, tasks


def evaluate_run(run_dir, log=print, model_name=None) -> dict:
    """Re-evaluate ``model.keras`` (or ``models/<model_name>.keras``) -> ``evaluation[_<model_name>].json``."""
    from umsrep.evaluate.evaluate import evaluate_model

    if model_name and model_name.startswith("baseline_"):
        raise RunDirError("--model: a baseline model has one task; it is evaluated in metrics.json `comparison`")
    run, recipe, model, rep_source, tasks = load_finished_run(run_dir, log, model_name)
    t0 = time.perf_counter()
    metrics = evaluate_model(model, recipe, tasks, rep_source, log=log)
    metrics["evaluated"] = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                            "wall_time_s": round(time.perf_counter() - t0, 2)}
    name = f"evaluation_{model_name}.json" if model_name else "evaluation.json"
    run.write_json(name, metrics)
    log(f"wrote {run / name}")
    return metrics


def report_run(run_dir, log=print):
    """Re-draw ``report.md`` and ``report.html`` of a finished run from its metrics.json, model and data."""
    from umsrep.evaluate.html import write_html_report
    from umsrep.evaluate.report import render_markdown
    from umsrep.rundir import RunDir

    run, recipe, model, rep_source, tasks = load_finished_run(run_dir, log)
    metrics = run.read_json(RunDir.METRICS)
    run.write_text(RunDir.REPORT, render_markdown(metrics))
    write_html_report(run, metrics, model, recipe, tasks, rep_source, log=log)
