"""``umsrep tune RECIPE``: a KerasTuner search over recipe fields, every trial a ``fit`` by the same engine.

The recipe's ``search`` section declares the space by recipe field path (``choice`` / ``int`` / ``float`` with
log sampling / ``boolean``), the tuner (random, bayesian, hyperband), the objective (``val.<task>.<metric>``,
checked against the metrics the run will produce before anything trains), the trial budget, the epochs of the
tuned stage, and the stage:

- ``representation``: every trial trains a representation (``representation.epochs = search.epochs``), then
  the heads with their own settings;
- ``heads``: the representation is trained once (``<out>/representation``, heads 1 epoch) and reused by every
  trial (``representation.init_from``); trials fine-tune the heads (each task's epochs and
  ``strategy.epochs`` = ``search.epochs``).

Hyperband gives each trial its own epoch budget (``tuner/epochs``, up to ``search.epochs``); trials start from
scratch (no warm start from the previous round). Each trial is a normal run directory ``<out>/trials/<id>/``
(no report.html, no baseline / comparison / cross-validation). The search state lives in ``<out>/tuner/``
(KerasTuner's own); an interrupted search continues with ``umsrep tune --resume OUT`` — KerasTuner re-queues the
unfinished trial and its run continues from its checkpoints.

Outputs: ``<out>/best_recipe.yaml`` (the recipe with the best values, a normal recipe without ``search``),
``<out>/trials.json`` and ``<out>/report.md`` (every trial: values, objective, wall time, status).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from umsrep.errors import RecipeError, RunDirError
from umsrep.evaluate.report import CLS_KEYS, SEG_KEYS, _table
from umsrep.io import write_json, write_text
from umsrep.recipe import Recipe, apply_overrides, dump_recipe, load_recipe, parse_recipe, resolve_paths

TUNE_RECIPE = "tune.yaml"  # the search recipe; it marks a search folder (also for `umsrep evidence`)
TRIALS = "trials.json"  # the summary written when the search ends
LOWER_IS_BETTER = ("loss",)
DENOISE_KEYS = ("psnr", "ssim", "ms_ssim")


# ------------------------------------------------------------------------------------------- checking
def objective_names(recipe: Recipe) -> list:
    """Every ``val.<task>.<metric>`` a trial of this recipe will produce."""
    names = []
    for name, t in recipe.tasks.items():
        keys = CLS_KEYS if t.type == "classification" else SEG_KEYS
        names += [f"val.{name}.{k}" for k in keys]
    if (recipe.representation.training == "denoising" and not recipe.representation.source
            and recipe.search is not None and recipe.search.stage == "representation"):
        names += [f"val.denoise.{k}" for k in DENOISE_KEYS]
    return names


def check_search(recipe: Recipe, source: str) -> None:
    """Everything about the search that can be checked before training; one-line errors naming the field."""
    s = recipe.search
    if s is None:
        raise RecipeError(f"{source}: search: missing; umsrep tune needs a search section (see docs/recipes.md)")
    parts = s.objective.split(".")
    if parts[0] != "val":
        raise RecipeError(f"{source}: search.objective: {s.objective!r} must be on the validation split "
                          f"(val.<task>.<metric>); the test split is never used for tuning")
    valid = objective_names(recipe)
    if s.objective not in valid:
        raise RecipeError(f"{source}: search.objective: {s.objective!r} is not a metric this run produces; "
                          f"valid: {', '.join(valid)}")
    base = recipe.model_dump(mode="json")
    for path, p in s.space.items():
        if s.stage == "heads" and path.startswith("representation."):
            raise RecipeError(f"{source}: search.space.{path}: stage 'heads' reuses one trained representation; "
                              f"use search.stage: representation to tune it")
        if path.startswith(("search.", "output.", "name")):
            raise RecipeError(f"{source}: search.space.{path}: not a field a trial may change")
        if not _path_exists(base, path):
            raise RecipeError(f"{source}: search.space.{path}: unknown recipe field")
        for value in _extremes(p):
            try:
                parse_recipe(apply_overrides(base, [f"{path}={json.dumps(value)}"]), f"search.space.{path}")
            except RecipeError as e:
                raise RecipeError(f"{source}: search.space.{path}: value {value!r} gives an invalid recipe "
                                  f"({str(e).split(': ', 1)[-1]})") from None


def _path_exists(raw, path):
    node = raw
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _extremes(p):
    if p.choice is not None:
        return list(p.choice)
    if p.boolean:
        return [False, True]
    return list(p.int or p.float)


def direction(recipe: Recipe) -> str:
    s = recipe.search
    if s.direction != "auto":
        return s.direction
    return "min" if s.objective.split(".")[-1] in LOWER_IS_BETTER else "max"


# ------------------------------------------------------------------------------------------- the space
def hyperparameters(recipe: Recipe):
    import keras_tuner as kt

    hp = kt.HyperParameters()
    for path, p in recipe.search.space.items():
        if p.choice is not None:
            hp.Choice(path, list(p.choice))
        elif p.boolean:
            hp.Boolean(path)
        elif p.int is not None:
            hp.Int(path, p.int[0], p.int[1], step=int(p.step) if p.step else None,
                   sampling="log" if p.log else "linear")
        else:
            hp.Float(path, p.float[0], p.float[1], step=p.step, sampling="log" if p.log else "linear")
    return hp


def make_oracle(recipe: Recipe, max_trials=None):
    import keras_tuner as kt

    s = recipe.search
    objective = kt.Objective(s.objective, direction(recipe))
    common = dict(objective=objective, seed=recipe.seed, hyperparameters=hyperparameters(recipe),
                  tune_new_entries=False)
    if s.tuner == "hyperband":
        return kt.oracles.HyperbandOracle(max_epochs=s.epochs, factor=3, **common)
    cls = kt.oracles.RandomSearchOracle if s.tuner == "random" else kt.oracles.BayesianOptimizationOracle
    return cls(max_trials=max_trials or s.max_trials, **common)


def _single_run(recipe: Recipe) -> dict:
    """The recipe as a dict for one plain run inside a search: no search, baseline, comparison, k folds or
    report.html."""
    raw = recipe.model_dump(mode="json")
    raw["search"], raw["baseline"], raw["output"]["html"] = None, False, False
    raw["strategy"]["compare"] = []
    raw["data"]["split"]["folds"], raw["data"]["split"]["fold"] = None, None
    return raw


def trial_recipe(recipe: Recipe, values: dict, epochs: int, rep_run=None) -> Recipe:
    """The recipe a trial trains: the search values applied, the tuned stage's epochs set, no extras."""
    raw = _single_run(recipe)
    sets = [f"{k}={json.dumps(v)}" for k, v in values.items()]
    if recipe.search.stage == "representation":
        sets.append(f"representation.epochs={epochs}")
    else:
        sets += [f"tasks.{t}.epochs={epochs}" for t in recipe.tasks] + [f"strategy.epochs={epochs}"]
        if rep_run is not None:
            sets.append(f"representation.init_from={json.dumps(str(rep_run))}")
    return parse_recipe(apply_overrides(raw, sets), "trial")


def objective_value(metrics: dict, objective: str) -> float:
    _, task, key = objective.split(".")
    if task == "denoise":
        levels = metrics["tasks"]["denoise"]["val"]
        return float(sum(v["denoised"][key] for v in levels.values()) / len(levels))
    value = metrics["tasks"][task]["val"][key]
    if value is None:
        raise RunDirError(f"objective {objective} is undefined for this trial (n/a)")
    return float(value)


# ----------------------------------------------------------------------------------------------- tuner
def _tuner_class():
    import keras_tuner as kt

    class RecipeTuner(kt.engine.base_tuner.BaseTuner):
        """A KerasTuner tuner whose trials are umsrep runs (no Keras model is built by the tuner)."""

        def __init__(self, recipe, out, rep_run, log, **kw):
            self.recipe, self.out, self.rep_run, self.log = recipe, Path(out), rep_run, log
            super().__init__(**kw)

        def run_trial(self, trial, *args, **kwargs):
            from umsrep.rundir import RunDir
            from umsrep.train.fit import fit

            values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
            epochs = int(trial.hyperparameters.values.get("tuner/epochs", self.recipe.search.epochs))
            run = RunDir(self.out / "trials" / trial.trial_id)
            t0 = time.perf_counter()
            if run.is_complete:
                metrics = run.read_json(RunDir.METRICS)
            else:
                run.path.mkdir(parents=True, exist_ok=True)
                self.log(f"--- trial {trial.trial_id}: {values} ({epochs} epochs)")
                metrics = fit(trial_recipe(self.recipe, values, epochs, self.rep_run), run, log=self.log)
            value = objective_value(metrics, self.recipe.search.objective)
            write_json(run.path / "trial.json", {"trial_id": trial.trial_id, "values": values, "epochs": epochs,
                                                 "objective": value, "wall_time_s": metrics["run"]["wall_time_s"],
                                                 "this_call_s": round(time.perf_counter() - t0, 2)})
            self.log(f"trial {trial.trial_id}: {self.recipe.search.objective} = {value:.4f}")
            return {self.recipe.search.objective: value}

    return RecipeTuner


def tune(recipe_path=None, overrides=None, out=None, trials=None, resume=None, log=print) -> dict:
    from umsrep.rundir import RunDir
    from umsrep.train.fit import fit

    if resume:
        if recipe_path or overrides:
            raise RecipeError("--resume continues a search with its saved recipe (tune.yaml); RECIPE and --set "
                              "cannot be given with it")
        out = Path(resume)
        if not (out / TUNE_RECIPE).is_file():
            raise RunDirError(f"{out}: not a umsrep tune folder (missing {TUNE_RECIPE})")
        source = str(out / TUNE_RECIPE)
        recipe = load_recipe(source, overrides)
    else:
        if recipe_path is None:
            raise RecipeError("tune needs a RECIPE file (or --resume OUT)")
        source = str(recipe_path)
        recipe = resolve_paths(load_recipe(recipe_path, overrides), Path(recipe_path).resolve().parent)
        check_search(recipe, source)
        out = Path(out) if out else Path(recipe.output.dir) / f"{recipe.name}-tune-{time.strftime('%Y%m%d-%H%M%S')}"
        if out.exists() and any(out.iterdir()):
            raise RunDirError(f"{out}: output folder exists and is not empty (continue it with --resume {out})")
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / TUNE_RECIPE, dump_recipe(recipe))
    check_search(recipe, source)
    log(f"search folder: {out}")
    rep_run = None
    if recipe.search.stage == "heads" and not recipe.representation.source:
        rep_run = RunDir(out / "representation")
        if not rep_run.is_complete:
            log("--- training the shared representation once (heads 1 epoch), reused by every trial")
            rep_run.path.mkdir(parents=True, exist_ok=True)
            raw = _single_run(recipe)
            sets = [f"tasks.{t}.epochs=1" for t in recipe.tasks] + ["strategy.kind=independent"]
            fit(parse_recipe(apply_overrides(raw, sets), "representation"), rep_run, log=log)
        rep_run = rep_run.path
    oracle = make_oracle(recipe, trials)
    tuner = _tuner_class()(recipe, out, rep_run, log, oracle=oracle, directory=str(out), project_name="tuner",
                           overwrite=False)
    t0 = time.perf_counter()
    tuner.search()
    table = trial_table(out, tuner, recipe)
    best = [r for r in table if r["status"] == "COMPLETED" and r["objective"] is not None]
    if not best:
        raise RunDirError(f"{out}: no trial completed; see {out / 'trials'}")
    best = sorted(best, key=lambda r: r["objective"], reverse=direction(recipe) == "max")[0]
    raw = recipe.model_dump(mode="json")
    raw["search"] = None
    best_recipe = parse_recipe(apply_overrides(raw, [f"{k}={json.dumps(v)}" for k, v in best["values"].items()]),
                               "best")
    write_text(out / "best_recipe.yaml", f"# best of {len(table)} trials of `umsrep tune` on {recipe.name}: "
                                         f"{recipe.search.objective} = {best['objective']:.4f} (trial "
                                         f"{best['trial_id']})\n" + dump_recipe(best_recipe))
    summary = {"objective": recipe.search.objective, "direction": direction(recipe), "tuner": recipe.search.tuner,
               "stage": recipe.search.stage, "best": best, "trials": table,
               "search_wall_time_s": round(time.perf_counter() - t0, 2)}
    write_json(out / TRIALS, summary)
    write_text(out / "report.md", render_tune_markdown(summary, recipe))
    log(f"best trial {best['trial_id']}: {recipe.search.objective} = {best['objective']:.4f} with {best['values']}")
    log(f"best recipe: {out / 'best_recipe.yaml'}")
    return summary


def trial_table(out, tuner, recipe) -> list:
    rows = []
    for tid, trial in sorted(tuner.oracle.trials.items(), key=lambda kv: (len(kv[0]), kv[0])):
        info_path = Path(out) / "trials" / tid / "trial.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        metric = trial.metrics.get_best_value(recipe.search.objective) \
            if trial.metrics.exists(recipe.search.objective) else None
        rows.append({"trial_id": tid, "status": str(trial.status),
                     "values": {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")},
                     "epochs": info.get("epochs"), "objective": metric, "wall_time_s": info.get("wall_time_s")})
    return rows


def render_tune_markdown(summary: dict, recipe: Recipe) -> str:
    keys = list(recipe.search.space)
    times = [r["wall_time_s"] for r in summary["trials"] if r["wall_time_s"]]
    out = [f"# umsrep tune `{recipe.name}`", "",
           f"{summary['tuner']} search, stage **{summary['stage']}**, objective **{summary['objective']}** "
           f"({summary['direction']}), {len(summary['trials'])} trials, {summary['search_wall_time_s']} s in all"
           + (f", {sum(times) / len(times):.1f} s per trial on average" if times else "") + ".", "",
           f"Best: trial {summary['best']['trial_id']}, {summary['objective']} = {summary['best']['objective']:.4f}; "
           f"`best_recipe.yaml` holds it as a normal recipe.", "",
           _table(["trial", "status"] + keys + ["epochs", summary["objective"], "wall time (s)"],
                  [[r["trial_id"], r["status"]] + [r["values"].get(k) for k in keys]
                   + [r["epochs"], r["objective"], r["wall_time_s"]] for r in summary["trials"]]), ""]
    return "\n".join(out) + "\n"
