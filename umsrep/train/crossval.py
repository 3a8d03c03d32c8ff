"""Runs made of sub-runs: k-fold cross-validation and repeated training seeds.

``data.split.folds: k`` without ``data.split.fold`` runs every fold; ``seeds: [0, 1, 2]`` (or ``umsrep fit
--seeds 0,1,2``) trains the same recipe once per training seed on one split (``data.split.seed``, default the
recipe's ``seed``), in ``<run>/seed<s>/``, and the parent's ``metrics.json`` gets a ``seeds`` section of the same
form as ``cv`` (per approach, task and test metric: values per seed, mean and sample SD).

Each fold is a complete run in ``<run>/fold<i>/`` (its own recipe with ``data.split.fold: i``, model, metrics
and report), made by the same :func:`umsrep.train.fit.fit`. The parent run directory gets a ``metrics.json``
with a ``cv`` section — per approach (the strategy, every ``strategy.compare`` strategy and the baseline), task
and test metric: the values per fold, their mean and sample SD; per approach the training time and parameters;
and per task, between every two approaches, a paired t-test and a Wilcoxon signed-rank test of the task's main
metric (Dice or accuracy) over the folds — and a ``report.md`` with the same tables.

Resuming (``umsrep fit --resume RUN``) keeps every finished fold and continues the first unfinished one from
its checkpoints. ``umsrep evaluate RUN`` on a parent re-evaluates every sub-run and makes the summary again
(:func:`evaluate_parent`; here, not in :mod:`umsrep.evaluate`, which does not import the training package).
"""

from __future__ import annotations

import time

import umsrep
from umsrep.errors import RecipeError, RunDirError
from umsrep.evaluate.report import render_cv_markdown
from umsrep.evaluate.scores import MAIN, approach_summary
from umsrep.evaluate.stats import mean_sd, paired_tests
from umsrep.recipe import Recipe, dump_recipe, load_recipe, load_run_recipe, recipe_difference
from umsrep.rundir import RunDir

SKIP = ("n", "predict_time_s")


def fold_recipe(recipe: Recipe, fold: int) -> Recipe:
    split = recipe.data.split.model_copy(update={"fold": fold})
    return recipe.model_copy(update={"data": recipe.data.model_copy(update={"split": split})})


def approaches_of(m: dict) -> dict:
    """``{approach: {tasks: {task: test metrics}, wall_time_s, parameters}}`` of one run's metrics.json."""
    if "comparison" in m:
        return m["comparison"]["approaches"]
    return {m["run"]["strategy"]: {**approach_summary(list(m["stages"].values()), m["tasks"]),
                                   "parameters": {"total": m["parameters"]["model_total"]}}}


def seed_recipe(recipe: Recipe, seed: int) -> Recipe:
    """One training seed of a ``seeds`` run: the split stays the parent's (``data.split.seed``)."""
    split = recipe.data.split.model_copy(update={"seed": recipe.split_seed})
    return recipe.model_copy(update={"seed": seed, "seeds": None,
                                     "data": recipe.data.model_copy(update={"split": split})})


def summarize_folds(fold_metrics: list, recipe: Recipe) -> dict:
    """The ``cv`` section from the folds' metrics.json contents (same approaches and tasks in every fold)."""
    return {"folds": len(fold_metrics), **summarize_runs(fold_metrics, recipe)}


def summarize_seeds(seed_metrics: list, recipe: Recipe) -> dict:
    """The ``seeds`` section from the seeds' metrics.json contents (all on the split of ``recipe.split_seed``)."""
    return {"seeds": list(recipe.seeds), "split_seed": recipe.split_seed, **summarize_runs(seed_metrics, recipe)}


SUMMARIES = {"cv": summarize_folds, "seeds": summarize_seeds}  # a parent's section key -> how it is made


def summarize_runs(run_metrics: list, recipe: Recipe) -> dict:
    """Per approach, task and test metric over sub-runs: values, mean and sample SD; paired tests between
    approaches of each task's main metric."""
    per_fold = [approaches_of(m) for m in run_metrics]
    names = list(per_fold[0])
    out = {"approaches": {}, "tests": {}}
    for a in names:
        tasks = {}
        for task in per_fold[0][a]["tasks"]:
            keys = [k for k, v in per_fold[0][a]["tasks"][task].items()
                    if k not in SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)]
            tasks[task] = {k: mean_sd([f[a]["tasks"][task][k] for f in per_fold]) for k in keys
                           if all(f[a]["tasks"][task].get(k) is not None for f in per_fold)}
        out["approaches"][a] = {"tasks": tasks,
                                "wall_time_s": mean_sd([f[a]["wall_time_s"] for f in per_fold]),
                                "parameters": per_fold[0][a]["parameters"]["total"]}
    measurements = summarize_measurements(run_metrics)
    if measurements:
        out["measurements"] = measurements
    patient = summarize_patient(run_metrics)
    if patient:
        out["patient"] = patient
    for task, t in recipe.tasks.items():
        key = MAIN[t.type]
        pairs = {}
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                va = out["approaches"][a]["tasks"].get(task, {}).get(key)
                vb = out["approaches"][b]["tasks"].get(task, {}).get(key)
                if va and vb:
                    pairs[f"{a} vs {b}"] = {"metric": key, **paired_tests(va["values"], vb["values"])}
        out["tests"][task] = pairs
    return out


def subruns(recipe: Recipe) -> list:
    """``(folder, label, recipe)`` of each sub-run a cross-validation (``fold<i>``) or seeds (``seed<s>``) run trains;
    none for one run (also a recipe that names its ``fold``)."""
    split = recipe.data.split
    if split.folds is not None and split.fold is None:
        return [(f"fold{f}", f"fold {f + 1}/{split.folds}", fold_recipe(recipe, f)) for f in range(split.folds)]
    seeds = list(recipe.seeds or ())
    return [(f"seed{s}", f"seed {s} ({i + 1}/{len(seeds)})", seed_recipe(recipe, s)) for i, s in enumerate(seeds)]


def subrun_folders(recipe: Recipe) -> list:
    return [folder for folder, _, _ in subruns(recipe)]


def check_kept_subruns(recipe: Recipe, path) -> None:
    """Before anything is written: every finished sub-run already in ``path`` (kept, not trained again) must have
    been trained with its sub-recipe and have readable metrics; else a one-line error naming the first differing
    field or the unreadable file."""
    from pathlib import Path

    for folder, label, sub_recipe in subruns(recipe):
        sub = RunDir(Path(path) / folder)
        if not sub.is_complete:
            continue
        diff = recipe_difference(load_recipe(sub / RunDir.RECIPE), sub_recipe)
        if diff:
            field, was, now = diff
            raise RecipeError(f"{sub / RunDir.RECIPE}: {field}: is {was!r} but {label} needs {now!r}; a finished "
                              f"sub-run is kept only when it was trained with this recipe (move it away to "
                              f"train it again)")
        sub.read_json(RunDir.METRICS)


def mean_sd_of_numbers(columns: dict) -> dict:
    """``{key: mean_sd(values)}`` for each column whose values over the sub-runs are all numbers (a value missing in
    one sub-run leaves its column out)."""
    return {key: mean_sd(vals) for key, vals in columns.items() if all(isinstance(v, (int, float)) for v in vals)}


# agreement statistics of a measurement (predicted vs true masks, test split) summarized over sub-runs
AGREEMENT_KEYS = ("mae", "mae_pct", "bias", "n")


def summarize_measurements(run_metrics: list) -> dict:
    """Per measurement and image set (``by_data``) the test split's agreement (MAE, MAE %, bias, n; and per group
    when the data has groups) over sub-runs: values, mean and sample SD, in each unit measured in every run."""
    first = run_metrics[0].get("measurements") or {}
    out = {}
    for name, spec in first.items():
        runs = [m.get("measurements", {}).get(name, {}).get("by_data", []) for m in run_metrics]
        sets = []
        for i, entry in enumerate(spec.get("by_data", [])):
            if not all(len(r) > i and r[i].get("tasks") == entry.get("tasks") for r in runs):
                continue
            tests = [r[i].get("test", {}) for r in runs]
            summary = {"tasks": entry.get("tasks"), "truth": entry.get("truth")}
            for unit, stats in entry.get("test", {}).items():
                if unit == "per_image" or not isinstance(stats, dict):
                    continue
                per_run = [t.get(unit, {}) for t in tests]
                columns = {key: [a.get(key) for a in per_run] for key in AGREEMENT_KEYS}
                columns.update({f"{key}_by_group": [(a.get("by_group") or {}).get(key) for a in per_run]
                                for key in ("mae", "mae_pct")})
                per_unit = mean_sd_of_numbers(columns)
                if per_unit:
                    summary[unit] = per_unit
            sets.append(summary)
        if sets:
            out[name] = {"unit": spec.get("unit"), "by_data": sets}
    return out


# test scores of a patient-level classifier (the `patient` section) summarized over sub-runs
PATIENT_KEYS = ("accuracy", "balanced_accuracy", "mcc")


def summarize_patient(run_metrics: list) -> dict:
    """Per feature source (``predicted_masks``; ``true_masks``, the reference) and target of the ``patient`` section:
    the test scores per group (patient) over sub-runs — values, mean and sample SD — and the number of test groups
    (one number when every sub-run has it, e.g. seeds on one split; else one per sub-run, e.g. folds)."""
    first = run_metrics[0].get("patient") or {}
    out = {}
    for source, targets in first.items():
        if not isinstance(targets, dict):
            continue
        summary = {}
        for target in targets:
            tests = [((m.get("patient") or {}).get(source) or {}).get(target, {}).get("test") or {}
                     for m in run_metrics]
            keys = mean_sd_of_numbers({k: [t.get(k) for t in tests] for k in PATIENT_KEYS})
            if keys:
                counts = [t.get("n_groups") for t in tests]
                summary[target] = {"n_groups": counts[0] if len(set(counts)) == 1 else counts, **keys}
        if summary:
            out[source] = summary
    return out


def fit_folds(recipe: Recipe, run: RunDir, log=print, *, fit_one) -> dict:
    """Every fold of ``data.split.folds`` as a sub-run ``fold<i>/``; ``fit_one(recipe, run, log)`` trains one
    (:func:`umsrep.train.fit.fit`, passed in so this module does not import it back)."""
    k = recipe.data.split.folds
    t0 = time.perf_counter()
    fold_metrics = fit_subruns(recipe, run, fit_one, {"kind": "cross_validation", "folds": k}, log)
    cv = summarize_folds(fold_metrics, recipe)
    return _finish(recipe, run, "cv", cv, {"folds": k}, {"kind": "cross_validation", "folds": k}, t0, log)


def fit_seeds(recipe: Recipe, run: RunDir, log=print, fit_one=None) -> dict:
    """The recipe once per training seed of ``recipe.seeds`` (sub-runs ``seed<s>/``), all on one split."""
    seeds = list(recipe.seeds)
    meta = {"kind": "seeds", "seeds": seeds}
    t0 = time.perf_counter()
    runs = fit_subruns(recipe, run, fit_one, meta, log)
    section = summarize_seeds(runs, recipe)
    return _finish(recipe, run, "seeds", section, {"seeds": seeds}, meta, t0, log)


def fit_subruns(recipe: Recipe, run: RunDir, fit_one, meta: dict, log=print) -> list:
    """Train each sub-run of :func:`subruns` as a complete run in ``<run>/<folder>/``; finished sub-runs are kept
    (resume, or a complete run placed there by hand) when their recipe trains like the one asked for
    (:func:`check_kept_subruns`, before anything is written), the first unfinished one continues from its
    checkpoints."""
    check_kept_subruns(recipe, run.path)
    run.write_text(RunDir.RECIPE, dump_recipe(recipe))
    run.write_json(RunDir.RUN, {"name": recipe.name, **meta, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                "umsrep_version": umsrep.__version__, "status": "training"})
    out = []
    for folder, label, sub_recipe in subruns(recipe):
        sub = RunDir(run.path / folder)
        if sub.is_complete:
            log(f"=== {label}: finished before, kept ({sub.path})")
            out.append(sub.read_json(RunDir.METRICS))
            continue
        log(f"=== {label} ({sub.path})")
        sub.path.mkdir(parents=True, exist_ok=True)
        out.append(fit_one(sub_recipe, sub, log=log))
    return out


def _finish(recipe, run, key, section, run_extra, meta, t0, log):
    metrics = {key: section, "run": {"name": recipe.name, "modality": recipe.modality, **run_extra,
                                     "strategy": recipe.strategy.kind,
                                     "wall_time_s": round(time.perf_counter() - t0, 2),
                                     "umsrep_version": umsrep.__version__}}
    run.write_json(RunDir.METRICS, metrics)
    run.write_text(RunDir.REPORT, render_cv_markdown(metrics))
    created = run.read_json(RunDir.RUN).get("created")
    run.write_json(RunDir.RUN, {"name": recipe.name, **meta, "created": created, "umsrep_version": umsrep.__version__,
                                "status": "complete", "wall_time_s": metrics["run"]["wall_time_s"]})
    for task, pairs in section["tests"].items():
        for pair, r in pairs.items():
            log(f"{key} {task} {r['metric']} {pair}: mean difference {r['mean_difference']:+.4f}, paired t-test "
                f"p={r['t_test']['p_value']:.3g}, Wilcoxon p={r['wilcoxon']['p_value']:.3g}")
    return metrics


# ------------------------------------------------------------------- `umsrep evaluate` on a parent
def parent_kind(run_dir):
    """``"seeds"`` / ``"cv"`` when ``run_dir`` is the finished parent of sub-runs (no model of its own), else None."""
    run = RunDir.open(run_dir)
    if run.model_path.is_file() or not (run / RunDir.METRICS).is_file():
        return None
    metrics = run.read_json(RunDir.METRICS)
    return next((k for k in SUMMARIES if k in metrics), None)


def evaluate_parent(run_dir, kind, log=print, model_name=None, tta="none", overrides=None) -> dict:
    """A seeds or cross-validation parent: every sub-run re-evaluated (its own ``evaluation.json``), then the
    parent's mean ± SD summary made again from the re-scored test results (each sub-run's training record —
    stages, times, parameters — from its metrics.json) -> the parent's ``evaluation.json``. So sub-runs trained
    before a metric existed are summarised with it, by the current code."""
    from umsrep.evaluate.runs import evaluate_run

    if model_name:
        raise RunDirError(f"--model: {run_dir} is a {kind} parent; evaluate one sub-run's models in its own folder")
    run = RunDir.open(run_dir)
    recipe = load_run_recipe(run / RunDir.RECIPE, overrides)
    subs = subruns(recipe)
    folders = [folder for folder, _, _ in subs]
    # every sub-run checked (and its metrics.json read once) before any is evaluated: nothing is written for an
    # incomplete parent
    trained = []
    for folder in folders:
        sub = RunDir(run.path / folder)
        if not sub.is_complete:
            raise RunDirError(f"{sub.path}: sub-run missing or unfinished; finish it with `umsrep fit --resume "
                              f"{run.path}`")
        trained.append(sub.read_json(RunDir.METRICS))
        if "comparison" in trained[-1]:
            raise RunDirError(f"{sub.path}: compares strategies; re-evaluate its models one by one (`umsrep evaluate "
                              f"{sub.path} --model NAME`)")
    t0 = time.perf_counter()
    rescored = []
    for (folder, label, _), m in zip(subs, trained):
        log(f"=== {label}")
        new = evaluate_run(run.path / folder, log=log, tta=tta, overrides=overrides)
        rescored.append({**m, **{k: v for k, v in new.items() if k != "evaluated"}})
    metrics = {kind: SUMMARIES[kind](rescored, recipe), "run": run.read_json(RunDir.METRICS).get("run", {}),
               "evaluated": {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "tta": tta,
                             "wall_time_s": round(time.perf_counter() - t0, 2),
                             "sub_runs": folders, **({"set": list(overrides)} if overrides else {})}}
    run.write_json("evaluation.json", metrics)
    log(f"wrote {run / 'evaluation.json'}")
    return metrics
