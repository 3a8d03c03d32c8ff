"""``umsrep evaluate RUN_DIR`` (re-evaluate a finished run), ``umsrep evaluate RUN_DIR --data DIR`` (score it on
another labelled data set) and ``umsrep report RUN_DIR`` (re-draw its reports from its files).

Re-evaluation reloads and re-splits the data from the saved recipe; the split is checked against ``splits.json`` so
a changed data folder is refused rather than silently evaluated on other images. Results go to ``evaluation.json``
(``metrics.json`` from training is left untouched) and the predictions to ``predictions/<approach>/``.

On another data set every image is scored (there is no split) at its own resolution: the predicted label maps
(after the task's post-processing) are resized to each image's size with nearest-neighbour interpolation
(:data:`RESIZE_RULE`) and compared with the ground truth at its original size.

``umsrep report`` loads neither the model nor TensorFlow: report.md comes from metrics.json, the figures of
report.html from the prediction files.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from umsrep.errors import DataError, RecipeError, RunDirError

RESIZE_RULE = ("predicted label maps (after the task's post-processing; letterbox padding cropped) are resized to each "
               "image's own size by "
               "nearest-neighbour interpolation and compared with the ground truth masks at their original size")
EXTERNAL_FIELDS = ("images", "masks", "labels", "filename_column", "label_column", "group_by")


def load_finished_run(run_dir, log=print, model_name=None, overrides=None):
    """(run, recipe, model, rep_source, tasks) of a trained run, its held-out split re-made and checked;
    ``overrides``: ``--set`` of the post-hoc sections (:func:`umsrep.recipe.load_run_recipe`)."""
    from umsrep.data.prepare import SPLITS, prepare
    from umsrep.recipe import load_run_recipe
    from umsrep.rundir import RunDir

    run = RunDir.open(run_dir)
    run.require_model()
    recipe = load_run_recipe(run / RunDir.RECIPE, overrides)
    saved = run.read_json(RunDir.SPLITS)
    rep_source, tasks, sources = prepare(recipe, run.path, log)
    for key, src in sources.items():
        # by key (a hash of the data config); by root for runs written before the config gained fields
        same_root = [v for v in saved["sources"].values() if v.get("root") == (src.config.root or "synthetic")]
        ref = saved["sources"].get(key) or (same_root[0] if len(same_root) == 1 else None)
        if ref is None or any(src.names(s) != ref[s] for s in SPLITS):
            raise RunDirError(f"{src.config.root}: data or split differ from {run / RunDir.SPLITS}; "
                              f"cannot reproduce the run's held-out split")
    return run, recipe, load_model(run, model_name), rep_source, tasks


def load_model(run, model_name=None):
    from umsrep.io import load_keras

    path = run.model_path
    if model_name:
        path = run.path / "models" / f"{model_name}.keras"
        if not path.is_file():
            have = sorted(p.stem for p in (run.path / "models").glob("*.keras"))
            raise RunDirError(f"--model: {path} not found; this run has {have or 'no other models'}")
    return load_keras(path)


def evaluate_run(run_dir, log=print, model_name=None, tta="none", overrides=None) -> dict:
    """Re-evaluate ``model.keras`` (or ``models/<model_name>.keras``) -> ``evaluation[_<model_name>].json``;
    ``overrides``: ``--set`` of derive / patient fields, recorded in ``evaluated.set``."""
    from umsrep.evaluate.evaluate import evaluate_model
    from umsrep.evaluate.predictions import approach_dir

    if model_name and model_name.startswith("baseline_"):
        raise RunDirError("--model: a baseline model has one task; it is evaluated in metrics.json `comparison`")
    run, recipe, model, rep_source, tasks = load_finished_run(run_dir, log, model_name, overrides)
    t0 = time.perf_counter()
    folder = approach_dir(run.path, model_name or recipe.strategy.kind)
    metrics = evaluate_model(model, recipe, tasks, rep_source, folder, log=log, tta=tta)
    metrics["evaluated"] = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "tta": tta,
                            "wall_time_s": round(time.perf_counter() - t0, 2), "predictions": str(folder),
                            **({"set": list(overrides)} if overrides else {})}
    name = f"evaluation_{model_name}.json" if model_name else "evaluation.json"
    run.write_json(name, metrics)
    log(f"wrote {run / name}")
    return metrics


def report_run(run_dir, log=print):
    """Re-draw ``report.md`` and ``report.html`` of a finished run from its metrics.json and prediction files."""
    from umsrep.evaluate.html import write_html_report
    from umsrep.evaluate.predictions import approach_dir
    from umsrep.evaluate.report import render_cv_markdown, render_markdown
    from umsrep.rundir import RunDir

    run = RunDir.open(run_dir)
    metrics = run.read_json(RunDir.METRICS)
    if "cv" in metrics or "seeds" in metrics:  # a parent of sub-runs: tables only
        run.write_text(RunDir.REPORT, render_cv_markdown(metrics))
        log(f"report: {run / RunDir.REPORT}")
        return
    run.write_text(RunDir.REPORT, render_markdown(metrics))
    write_html_report(run, metrics, approach_dir(run.path, metrics.get("run", {}).get("strategy", "")), log=log)


# ------------------------------------------------------------------------------- another labelled data set
def external_data_config(recipe, data, options=None):
    """The recipe's data section pointed at ``data``: a folder (sub-folder / column names from ``options``, else
    the recipe's; a masks folder or labels CSV that is absent is not used unless named) or a YAML file with a
    ``data:`` section. Images are read at the run's own size and channels."""
    import yaml

    from umsrep.recipe import DataConfig, SplitConfig

    options = {k: v for k, v in (options or {}).items() if v is not None}
    path = Path(data)
    base = recipe.data.model_dump()
    fields = {k: base[k] for k in ("images", "masks", "labels", "filename_column", "label_column", "on_bad_file")}
    fields["group_by"] = None
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        try:
            spec = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise RecipeError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("data"), dict):
            raise RecipeError(f"{path}: expected a `data:` section (root, images, masks, labels, ...)")
        spec = dict(spec["data"])
        allowed = {"root", "on_bad_file", *EXTERNAL_FIELDS}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise RecipeError(f"{path}: data.{unknown[0]}: not a field here (allowed: {', '.join(sorted(allowed))})")
        if "root" not in spec:
            raise RecipeError(f"{path}: data.root: required (the folder of images)")
        root = Path(str(spec.pop("root"))).expanduser()
        root = root if root.is_absolute() else path.parent / root
        named = set(spec) | set(options)
        fields.update(spec)
    elif path.is_dir():
        root, named = path, set(options)
    else:
        raise DataError(f"{path}: --data: no such folder (or YAML file with a data: section)")
    fields.update(options)
    for key, kind in (("masks", "dir"), ("labels", "file")):
        p = fields.get(key)
        if p is not None and key not in named:
            q = Path(p) if Path(p).is_absolute() else root / p
            if not (q.is_dir() if kind == "dir" else q.is_file()):
                fields[key] = None
    if fields.get("masks") is None and fields.get("labels") is None:
        raise DataError(f"{root}: --data: no masks folder and no labels CSV found; nothing to score against")
    pre = recipe.data.model_dump()
    return DataConfig(**{**{k: pre[k] for k in ("image_size", "channels", "normalization", "lowpass_sigma")},
                         **fields, "root": str(root), "split": SplitConfig(test=0.0, val=0.0)})


def evaluate_external(run_dir, data, out, overwrite=False, options=None, model_name=None, log=print,
                      tta="none", overrides=None) -> dict:
    """Score a trained run on another labelled data set: every image, at its own resolution (:data:`RESIZE_RULE`);
    writes ``evaluation.json``, ``report.md``, ``report.html`` and ``predictions/test.npz`` into ``out``."""
    from umsrep.data.dataset import load_dataset
    from umsrep.data.prepare import Source, TaskData, _key, task_data
    from umsrep.evaluate.evaluate import predict_split
    from umsrep.evaluate.html import write_html_report
    from umsrep.evaluate.predictions import DIR, read_split, write_split
    from umsrep.evaluate.report import render_markdown
    from umsrep.evaluate.scores import score_predictions
    from umsrep.io import write_text
    from umsrep.predict import check_out_folder
    from umsrep.recipe import dump_recipe, load_run_recipe
    from umsrep.rundir import RunDir

    run = RunDir.open(run_dir)
    run.require_model()
    recipe = load_run_recipe(run / RunDir.RECIPE, overrides)
    out = check_out_folder(out, overwrite)
    cfg = external_data_config(recipe, data, options)
    loaded = load_dataset(cfg.root, cfg.images, cfg.masks, cfg.labels, image_size=tuple(cfg.image_size),
                          channels=cfg.channels, filename_column=cfg.filename_column, label_column=cfg.label_column,
                          group_by=cfg.group_by, on_bad_file=cfg.on_bad_file, resize=cfg.resize)
    n = len(loaded)
    source = Source(_key(cfg), cfg, loaded, {"train": np.zeros(0, np.int64), "val": np.zeros(0, np.int64),
                                             "test": np.arange(n, dtype=np.int64)})
    ext = recipe.model_copy(update={"data": cfg, "tasks": {k: t.model_copy(update={"data": None})
                                                           for k, t in recipe.tasks.items()}})
    tasks = {}
    for name, t in ext.tasks.items():
        scorable = loaded.masks is not None if t.type == "segmentation" else any(v is not None for v in loaded.labels)
        if scorable:
            tasks[name] = task_data(name, t, source, held_out_only=True)
        else:  # predicted (derived decisions read it), not scored
            shape = (n, *loaded.images.shape[1:3]) if t.type == "segmentation" else (n,)
            tasks[name] = TaskData(name, t.type, list(t.classes), source, {s: np.zeros(0, np.int64) for s in
                                   ("train", "val", "test")}, np.full(shape, 0 if len(shape) > 1 else -1, np.int32))
        log(f"{name}: {len(tasks[name].index['test'])} of {n} images with "
            f"{'a mask' if t.type == 'segmentation' else 'a label'}" + ("" if scorable else " (not scored)"))
    model = load_model(run, model_name)
    t0 = time.perf_counter()
    arrays = predict_split(model, ext, tasks, source, "test", tta=tta)
    for name, t in ext.tasks.items():
        if t.type == "segmentation":
            arrays.update(at_input_size(arrays, name, t, loaded, tasks[name].index["test"], cfg.resize))
    folder = out / DIR
    write_split(folder / "test.npz", arrays)
    metrics = score_predictions({"test": read_split(folder / "test.npz")}, ext, log=log)
    metrics["data"] = {
        "sources": {source.key: {"root": cfg.root, "images": n, "train": 0, "val": 0, "test": n,
                                 "skipped": [vars(x) for x in loaded.skipped]}},
        "tasks": {k: {"source": source.key, **td.counts(), "skipped": [vars(x) for x in td.skipped],
                      **({"excluded_by_label_map": td.excluded} if td.excluded else {})} for k, td in tasks.items()}}
    meta = run.read_json(RunDir.RUN)
    metrics["run"] = {"name": recipe.name, "modality": recipe.modality, "strategy": model_name or recipe.strategy.kind,
                      "representation": meta.get("preprocessing", {}).get("kind"), "umsrep_version":
                      meta.get("umsrep_version"), "wall_time_s": round(time.perf_counter() - t0, 2)}
    metrics["external"] = {"run": str(run.path), "model": model_name or "model", "data": cfg.root,
                           "data_config": cfg.model_dump(mode="json", exclude={"split", "synthetic"}),
                           "resolution": "input", "resize_rule": RESIZE_RULE,
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    rd = RunDir(out)
    rd.write_json("evaluation.json", metrics)
    write_text(out / RunDir.RECIPE, dump_recipe(ext))
    rd.write_text(RunDir.REPORT, render_markdown(metrics))
    write_html_report(rd, metrics, folder, log=log)
    log(f"wrote {out / 'evaluation.json'}, {out / RunDir.REPORT}")
    return metrics


def at_input_size(arrays, name, task, loaded, labelled, mode="stretch") -> dict:
    """A segmentation task's label maps at each image's own size (ragged): predictions resized by
    :data:`RESIZE_RULE`, the truth read again from its mask file at the original size."""
    from umsrep.data.prepare import segmentation_targets
    from umsrep.data.readers import read_mask, to_original

    has = set(int(i) for i in labelled)
    out = {}

    def size(i):
        return tuple(int(v) for v in loaded.sizes[i])

    for key in (f"{name}.labels", f"{name}.labels_raw"):
        if key in arrays:
            out[key] = [to_original(m, size(i), mode) for i, m in enumerate(arrays[key])]
    out[f"{name}.truth"] = [
        segmentation_targets(read_mask(loaded.mask_files[i]), task.classes, task.mask_classes).astype(np.uint8)
        if i in has else np.zeros(size(i), np.uint8) for i in range(len(loaded))]
    return out
