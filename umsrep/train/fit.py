"""``umsrep fit``: representation stage, then the heads (independent strategy), then evaluation.

Order of work, each step writing its files atomically into the run directory:
recipe.yaml -> splits.json -> encoder/ -> model.keras -> metrics.json -> report.md (run.json tracks status).
"""

from __future__ import annotations

import platform
import time

import keras
import numpy as np
import tensorflow as tf

import umsrep
from umsrep.data import pipeline
from umsrep.data.noise import NoiseLevel, random_noise
from umsrep.data.prepare import SPLITS, prepare
from umsrep.evaluate.evaluate import evaluate_model
from umsrep.evaluate.report import render_markdown
from umsrep.io import save_keras
from umsrep.models.encoder_io import load_encoder, preprocessing_of, save_encoder
from umsrep.models.encoders import ENCODERS
from umsrep.models.heads import HEADS, attach, attach_one, pyramid_spec
from umsrep.models.losses import LOSSES, build_loss
from umsrep.recipe import Recipe, dump_recipe
from umsrep.rundir import RunDir
from umsrep.train.distribute import make_strategy
from umsrep.train.engine import Alternating, Joint, SingleTask, TaskStream, make_optimizer, run_stage
from umsrep.train.weighting import make_weighting


def noise_levels(rep) -> list:
    return [NoiseLevel(s.kind, float(v)) for s in rep.noise for v in s.levels]


def _params(model):
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    return {"trainable": trainable, "total": int(model.count_params())}


def _stream(name, model, loss_fn, cfg, x_tr, y_tr, x_va, y_va, seed, map_fn=None, head_variables=()):
    steps = cfg.steps_per_epoch or pipeline.steps(len(x_tr), cfg.batch_size)
    train_ds = pipeline.train_dataset(x_tr, y_tr, batch_size=cfg.batch_size, seed=seed, map_fn=map_fn)
    val_ds, val_steps = None, 0
    if len(x_va):
        val_ds = pipeline.eval_dataset(x_va, y_va, batch_size=cfg.batch_size, map_fn=map_fn, seed=seed + 1)
        val_steps = pipeline.steps(len(x_va), cfg.batch_size)
    return TaskStream(name, model, loss_fn, train_ds, steps, val_ds, val_steps, list(head_variables))


def build_head(task_name, task, spec, input_size):
    h = task.head
    return HEADS.get(task.type)(spec, input_size, name=task_name, n_classes=len(task.classes), filters=h.filters,
                                skips=h.skips, units=h.units, dropout=h.dropout)


def run_meta(recipe: Recipe, pre: dict, has_denoise: bool, status: str, created: str) -> dict:
    return {"umsrep_version": umsrep.__version__, "name": recipe.name, "modality": recipe.modality,
            "status": status, "created": created, "preprocessing": pre,
            "tasks": {n: {"type": t.type, "classes": list(t.classes), "threshold": t.threshold}
                      for n, t in recipe.tasks.items()},
            "denoise": has_denoise,
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                         "python": platform.python_version()}}


def _representation(recipe, run, rep_source, tasks, heads, stages, mean, std, strategy, stage_log, log):
    """Load or train the shared encoder (denoising autoencoder or supervised); returns (encoder, preprocessing)."""
    rep = recipe.representation
    size, ch = tuple(recipe.data.image_size), recipe.data.channels
    if rep.init_from:
        encoder, pre = load_encoder(rep.init_from, recipe)
        log(f"encoder loaded from {rep.init_from} ({encoder.count_params():,} parameters)")
        return encoder, {**pre, "init_from": str(rep.init_from)}
    pre = preprocessing_of(recipe, mean, std, rep.kind)
    encoder = ENCODERS.get(rep.kind)((*size, ch), filters=rep.filters, normalization=recipe.data.normalization,
                                     mean=mean, std=std, dilation=rep.dilation,
                                     dilated_layers=tuple(rep.dilated_layers), pool_after=tuple(rep.pool_after))
    spec = pyramid_spec(encoder)
    if rep.kind == "denoising_autoencoder":
        heads["denoise"] = HEADS.get("denoise")(spec, size, channels=ch)
        model = attach_one(encoder, heads["denoise"])
        levels = noise_levels(rep)
        log(f"representation: denoising autoencoder, {model.count_params():,} parameters, "
            f"noise {[lv.name for lv in levels]}")

        def add_noise(x, y, seed):
            return random_noise(x, levels, seed), y

        x_rep = rep_source.data.images[rep_source.split["train"]]
        x_va = rep_source.data.images[rep_source.split["val"]]
        stream = _stream("representation", model, LOSSES.get("mse")(), rep, x_rep, x_rep, x_va, x_va, recipe.seed,
                         map_fn=add_noise)
    else:
        tname = rep.task or max((n for n, t in recipe.tasks.items() if t.type == "classification"),
                                key=lambda n: len(tasks[n].index["train"]))
        task = recipe.tasks[tname]
        heads[tname] = build_head(tname, task, spec, size)
        model = attach_one(encoder, heads[tname])
        log(f"representation: supervised dilated CNN on task {tname!r}, {model.count_params():,} parameters")
        (x_tr, y_tr), (x_va, y_va) = tasks[tname].arrays("train"), tasks[tname].arrays("val")
        stream = _stream("representation", model, build_loss(task.type, task.loss), rep, x_tr, y_tr, x_va, y_va,
                         recipe.seed)
    trainer = SingleTask("representation", stream, model.trainable_variables, make_optimizer(rep.optimizer),
                         strategy)
    res = run_stage(trainer, rep, log=log, log_dir=stage_log("representation"))
    stages["representation"] = {**res.to_dict(), "parameters": _params(model), "kind": rep.kind}
    if rep.kind == "supervised":
        stages["representation"]["task"] = tname
    save_encoder(encoder, run.encoder_dir, pre)
    return encoder, pre


def _fine_tune(recipe, encoder, heads, tasks, stages, strategy, stage_log, log):
    """Attach a head per task and train them with the recipe's strategy (see :mod:`umsrep.train.engine`)."""
    kind = recipe.strategy.kind
    size = tuple(recipe.data.image_size)
    encoder.trainable = kind != "independent"
    spec = pyramid_spec(encoder)
    streams = []
    for i, (name, task) in enumerate(recipe.tasks.items()):
        if kind == "independent" and name in heads:
            continue  # the supervised representation's own head is already trained
        if name not in heads:
            heads[name] = build_head(name, task, spec, size)
        model = attach_one(encoder, heads[name])
        (x_tr, y_tr), (x_va, y_va) = tasks[name].arrays("train"), tasks[name].arrays("val")
        log(f"head {name!r} ({task.type}, {len(task.classes)} classes): {heads[name].count_params():,} "
            f"parameters, {len(x_tr)} train / {len(x_va)} val images")
        streams.append(_stream(name, model, build_loss(task.type, task.loss), task, x_tr, y_tr, x_va, y_va,
                               recipe.seed + 7 * (i + 1), head_variables=heads[name].trainable_variables))
    if kind == "independent":
        for s in streams:
            trainer = SingleTask(s.name, s, s.head_variables, make_optimizer(recipe.tasks[s.name].optimizer),
                                 strategy)
            res = run_stage(trainer, recipe.tasks[s.name], log=log, log_dir=stage_log(s.name))
            stages[s.name] = {**res.to_dict(), "parameters": {"trainable": res.trainable_params,
                                                              "total": int(s.model.count_params())}}
        return
    st = recipe.strategy
    model = attach(encoder, {s.name: heads[s.name] for s in streams}, name=f"umsrep_{kind}")
    if kind == "alternating":
        trainer = Alternating(kind, streams, encoder.trainable_variables,
                              {s.name: make_optimizer(recipe.tasks[s.name].optimizer) for s in streams}, model,
                              ratios=st.ratios, strategy=strategy)
        log(f"alternating schedule (task, batches per turn): {trainer.schedule}")
    else:
        weighting = make_weighting(st.weighting, [s.name for s in streams])
        trainer = Joint(kind, streams, encoder.trainable_variables, make_optimizer(st.optimizer), weighting, model,
                        strategy=strategy)
        log(f"joint training, weighting {st.weighting.method!r}")
    res = run_stage(trainer, st, log=log, log_dir=stage_log(kind))
    stages[kind] = {**res.to_dict(), "tasks": [s.name for s in streams],
                    "parameters": {"trainable": res.trainable_params, "total": int(model.count_params())}}
    if kind == "alternating":
        stages[kind]["schedule"] = [list(x) for x in trainer.schedule]


def fit(recipe: Recipe, run: RunDir, log=print) -> dict:
    t_run = time.perf_counter()
    created = time.strftime("%Y-%m-%dT%H:%M:%S")
    keras.utils.set_random_seed(recipe.seed)
    run.write_text(RunDir.RECIPE, dump_recipe(recipe))
    rep = recipe.representation
    rep_source, tasks, sources = prepare(recipe, run.path, log)
    run.write_json(RunDir.SPLITS, {
        "sources": {k: {"root": s.config.root or "synthetic", **{sp: s.names(sp) for sp in SPLITS},
                        "skipped": [vars(x) for x in s.data.skipped]} for k, s in sources.items()},
        "tasks": {n: td.source.key for n, td in tasks.items()}})

    x_rep = rep_source.data.images[rep_source.split["train"]]
    mean, std = float(x_rep.mean()), float(x_rep.std())
    stages, heads = {}, {}
    log_dir = (run / RunDir.LOGS) if recipe.output.tensorboard else None
    stage_log = (lambda n: log_dir / n) if log_dir else (lambda n: None)

    strategy = make_strategy(recipe.distribute)
    if strategy.num_replicas_in_sync > 1 or recipe.distribute.strategy != "default":
        log(f"distribute: {recipe.distribute.strategy} ({type(strategy).__name__}) with "
            f"{strategy.num_replicas_in_sync} replica(s)")
    with strategy.scope():
        encoder, pre = _representation(recipe, run, rep_source, tasks, heads, stages, mean, std, strategy,
                                       stage_log, log)
        _fine_tune(recipe, encoder, heads, tasks, stages, strategy, stage_log, log)
        full = attach(encoder, heads)
    save_keras(full, run.model_path)
    run.write_json(RunDir.RUN, run_meta(recipe, pre, "denoise" in heads, "trained", created))
    log(f"model saved: {run.model_path} ({full.count_params():,} parameters)")

    metrics = evaluate_model(full, recipe, tasks, rep_source, log=log)
    metrics["stages"] = stages
    metrics["parameters"] = {"encoder": int(encoder.count_params()),
                             "heads": {h: int(m.count_params()) for h, m in heads.items()},
                             "model_total": int(full.count_params())}
    metrics["data"] = {
        "sources": {k: {"root": s.config.root or "synthetic", "images": len(s.data),
                        **{sp: int(len(s.split[sp])) for sp in SPLITS},
                        "skipped": [vars(x) for x in s.data.skipped]} for k, s in sources.items()},
        "tasks": {n: {"source": td.source.key, **td.counts(), "skipped": [vars(x) for x in td.skipped]}
                  for n, td in tasks.items()}}
    metrics["run"] = {"name": recipe.name, "modality": recipe.modality, "strategy": recipe.strategy.kind,
                      "representation": rep.kind if not rep.init_from else f"init_from {rep.init_from}",
                      "wall_time_s": round(time.perf_counter() - t_run, 2), "umsrep_version": umsrep.__version__}
    run.write_json(RunDir.METRICS, metrics)
    run.write_text(RunDir.REPORT, render_markdown(metrics))
    run.write_json(RunDir.RUN, {**run_meta(recipe, pre, "denoise" in heads, "complete", created),
                                "wall_time_s": metrics["run"]["wall_time_s"]})
    return metrics
