"""``umsrep evaluate RUN_DIR``: reload a finished run and recompute its held-out metrics.

The data are reloaded and re-split from the saved recipe; the split is checked against ``splits.json`` so a
changed data folder is refused rather than silently evaluated on other images. Results go to
``evaluation.json`` (``metrics.json`` from training is left untouched).
"""

from __future__ import annotations

import time

from umsrep.errors import RunDirError


def evaluate_run(run_dir, log=print) -> dict:
    import keras

    import umsrep.models.layers  # noqa: F401
    from umsrep.data.prepare import SPLITS, prepare
    from umsrep.evaluate.evaluate import evaluate_model
    from umsrep.recipe import load_recipe
    from umsrep.rundir import RunDir

    run = RunDir.open(run_dir)
    run.require_model()
    recipe = load_recipe(run / RunDir.RECIPE)
    saved = run.read_json(RunDir.SPLITS)
    rep_source, tasks, sources = prepare(recipe, run.path, log)
    for key, src in sources.items():
        ref = saved["sources"].get(key)
        if ref is None or any(src.names(s) != ref[s] for s in SPLITS):
            raise RunDirError(f"{src.config.root}: data or split differ from {run / RunDir.SPLITS}; "
                              f"cannot reproduce the run's held-out split")
    model = keras.models.load_model(run.model_path)
    t0 = time.perf_counter()
    metrics = evaluate_model(model, recipe, tasks, rep_source, log=log)
    metrics["evaluated"] = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                            "wall_time_s": round(time.perf_counter() - t0, 2)}
    run.write_json("evaluation.json", metrics)
    log(f"wrote {run / 'evaluation.json'}")
    return metrics
