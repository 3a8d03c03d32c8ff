"""k-fold cross-validation: ``data.split.folds: k`` without ``data.split.fold`` runs every fold.

Each fold is a complete run in ``<run>/fold<i>/`` (its own recipe with ``data.split.fold: i``, model, metrics
and report), made by the same :func:`umsrep.train.fit.fit`. The parent run directory gets a ``metrics.json``
with a ``cv`` section — per approach (the strategy, every ``strategy.compare`` strategy and the baseline), task
and test metric: the values per fold, their mean and sample SD; per approach the training time and parameters;
and per task, between every two approaches, a paired t-test and a Wilcoxon signed-rank test of the task's main
metric (Dice or accuracy) over the folds — and a ``report.md`` with the same tables.

Resuming (``umsrep fit --resume RUN``) keeps every finished fold and continues the first unfinished one from
its checkpoints.
"""

from __future__ import annotations

import time

import umsrep
from umsrep.evaluate.report import render_cv_markdown
from umsrep.evaluate.stats import mean_sd, paired_tests
from umsrep.recipe import Recipe, dump_recipe
from umsrep.rundir import RunDir
from umsrep.train.compare import approach_summary

SKIP = ("n", "predict_time_s")
MAIN = {"segmentation": "dice", "classification": "accuracy"}


def fold_recipe(recipe: Recipe, fold: int) -> Recipe:
    split = recipe.data.split.model_copy(update={"fold": fold})
    return recipe.model_copy(update={"data": recipe.data.model_copy(update={"split": split})})


def approaches_of(m: dict) -> dict:
    """``{approach: {tasks: {task: test metrics}, wall_time_s, parameters}}`` of one run's metrics.json."""
    if "comparison" in m:
        return m["comparison"]["approaches"]
    return {m["run"]["strategy"]: {**approach_summary(list(m["stages"].values()), m["tasks"]),
                                   "parameters": {"total": m["parameters"]["model_total"]}}}


def summarize_folds(fold_metrics: list, recipe: Recipe) -> dict:
    """The ``cv`` section from the folds' metrics.json contents (same approaches and tasks in every fold)."""
    per_fold = [approaches_of(m) for m in fold_metrics]
    names = list(per_fold[0])
    out = {"folds": len(fold_metrics), "approaches": {}, "tests": {}}
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


def fit_folds(recipe: Recipe, run: RunDir, log=print, *, fit_one) -> dict:
    """Every fold of ``recipe`` into ``run``; ``fit_one(recipe, run, log)`` trains one (:func:`umsrep.train.fit.fit`,
    passed in so this module does not import it back)."""
    k = recipe.data.split.folds
    t0 = time.perf_counter()
    created = time.strftime("%Y-%m-%dT%H:%M:%S")
    run.write_text(RunDir.RECIPE, dump_recipe(recipe))
    meta = {"name": recipe.name, "kind": "cross_validation", "folds": k, "created": created,
            "umsrep_version": umsrep.__version__}
    run.write_json(RunDir.RUN, {**meta, "status": "training"})
    fold_metrics = []
    for f in range(k):
        sub = RunDir(run.path / f"fold{f}")
        if sub.is_complete:
            log(f"=== fold {f + 1}/{k}: finished before, kept ({sub.path})")
            fold_metrics.append(sub.read_json(RunDir.METRICS))
            continue
        log(f"=== fold {f + 1}/{k} ({sub.path})")
        sub.path.mkdir(parents=True, exist_ok=True)
        fold_metrics.append(fit_one(fold_recipe(recipe, f), sub, log=log))
    cv = summarize_folds(fold_metrics, recipe)
    metrics = {"cv": cv, "run": {"name": recipe.name, "modality": recipe.modality, "folds": k,
                                 "strategy": recipe.strategy.kind, "wall_time_s": round(time.perf_counter() - t0, 2),
                                 "umsrep_version": umsrep.__version__}}
    run.write_json(RunDir.METRICS, metrics)
    run.write_text(RunDir.REPORT, render_cv_markdown(metrics))
    run.write_json(RunDir.RUN, {**meta, "status": "complete", "wall_time_s": metrics["run"]["wall_time_s"]})
    for task, pairs in cv["tests"].items():
        for pair, r in pairs.items():
            log(f"cv {task} {r['metric']} {pair}: mean difference {r['mean_difference']:+.4f}, paired t-test "
                f"p={r['t_test']['p_value']:.3g}, Wilcoxon p={r['wilcoxon']['p_value']:.3g}")
    return metrics
