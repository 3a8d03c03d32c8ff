"""``umsrep fit``: representation stage, then the heads (independent strategy), then evaluation.

Order of work, each step writing its files atomically into the run directory:
recipe.yaml -> splits.json -> encoder/ -> model.keras -> metrics.json -> report.md (run.json tracks status).
"""

from __future__ import annotations

import platform
import time

import keras
import tensorflow as tf

import umsrep
from umsrep.data import pipeline
from umsrep.data.noise import noise_levels, random_noise
from umsrep.data.prepare import SPLITS, prepare
from umsrep.data.splits import write_split_file
from umsrep.evaluate.evaluate import evaluate_model
from umsrep.evaluate.html import PREVIEW_FILE, write_html_report
from umsrep.evaluate.predictions import approach_dir
from umsrep.evaluate.report import render_markdown
from umsrep.evaluate.scores import approach_summary, compare_approaches
from umsrep.io import save_keras
from umsrep.models import HEADS, ImageSpec
from umsrep.models import build_encoder as build_encoder_model
from umsrep.models import build_head as build_head_model
from umsrep.models.encoder_io import DENOISER_FILE, load_denoiser, load_encoder, preprocessing_of, save_encoder
from umsrep.models.flops import count_flops, count_parameters
from umsrep.models.losses import LOSSES, build_loss
from umsrep.models.pyramid import attach, attach_one, pyramid_spec
from umsrep.recipe import Recipe, dump_recipe, task_head
from umsrep.registry import ENCODERS, STRATEGIES
from umsrep.rundir import RunDir
from umsrep.train.checkpoint import Checkpoints
from umsrep.train.distribute import make_strategy
from umsrep.train.engine import SingleTask, TaskStream, make_optimizer, run_stage
from umsrep.train.strategies import FineTune
from umsrep.transforms import augmentation, log_augmentation
from umsrep.transforms.compose import preview_sets, write_previews


def build_encoder(recipe, mean, std, name="encoder", settings=None):
    """The recipe's encoder architecture (or ``settings``'), freshly initialised, with its normalisation
    statistics."""
    d = recipe.data
    image = ImageSpec((*d.image_size, d.channels), d.normalization, mean, std, d.lowpass_sigma)
    return build_encoder_model(settings or recipe.representation, image, name=name)


def baseline_architecture(recipe):
    """The encoder settings the baseline rebuilds from scratch: the recipe's representation, or for a pretrained
    encoder the architecture its card names."""
    rep = recipe.representation
    if rep.kind != "pretrained":
        return rep
    arch = _card(rep)["architecture"]
    return ENCODERS.get(arch["kind"]).Settings.model_validate(arch)


#: a validation split smaller than this is reported as too small to steer training alone
SMALL_VAL = 30


def _stream(name, model, loss_fn, cfg, x_tr, y_tr, x_va, y_va, seed, map_fn=None, head_variables=(), augment=None,
            task=None, log=None):
    """``augment`` (data.augment) runs on the training split only, before ``map_fn``. ``task`` (a task's settings)
    gives the stream its validation metric: Dice for segmentation, MCC for classification."""
    steps = cfg.steps_per_epoch or pipeline.steps(len(x_tr), cfg.batch_size)
    train_ds = pipeline.train_dataset(x_tr, y_tr, batch_size=cfg.batch_size, seed=seed,
                                      map_fn=augmentation(augment, map_fn))
    val_ds, val_steps = None, 0
    if len(x_va):
        val_ds = pipeline.eval_dataset(x_va, y_va, batch_size=cfg.batch_size, map_fn=map_fn, seed=seed + 1)
        val_steps = pipeline.steps(len(x_va), cfg.batch_size)
    metric = {}
    if task is not None:
        k = len(task.classes)
        metric = ({"metric": "dice", "n_classes": k if k == 1 else k + 1, "threshold": task.threshold}
                  if task.type == "segmentation" else {"metric": "mcc", "n_classes": k})
        es = cfg.early_stopping
        if log is not None and 0 < len(x_va) < SMALL_VAL and es is not None and not es.min_epochs:
            log(f"warning: {name!r} has {len(x_va)} validation images: early stopping and the learning-rate schedule "
                f"may react to noise; consider early_stopping.min_epochs / monitor: metric, or a larger val split")
    return TaskStream(name, model, loss_fn, train_ds, steps, val_ds, val_steps, list(head_variables), **metric,
                      seed=seed, batch_size=cfg.batch_size)


def build_head(task_name, task, spec, input_size, encoder_kind="denoising_autoencoder", image_channels=1):
    """Task ``task_name``'s head on a pyramid ``spec`` of encoder architecture ``encoder_kind`` (``head.kind: auto``
    resolved for it; RecipeError naming the field when the head does not fit)."""
    return build_head_model(task_head(task_name, task, encoder_kind), spec, input_size, name=task_name,
                            n_classes=len(task.classes), image_channels=image_channels)


def run_meta(recipe: Recipe, pre: dict, has_denoise: bool, status: str, created: str) -> dict:
    return {"umsrep_version": umsrep.__version__, "name": recipe.name, "modality": recipe.modality,
            "status": status, "created": created, "preprocessing": pre,
            "tasks": {n: {"type": t.type, "classes": list(t.classes), "threshold": t.threshold}
                      for n, t in recipe.tasks.items()},
            "denoise": has_denoise,
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                         "python": platform.python_version()}}


def _representation(recipe, run, rep_source, tasks, heads, stages, mean, std, strategy, stage_log, log, ckpt=None):
    """Load or train the shared encoder (denoising autoencoder or supervised); returns (encoder, preprocessing)."""
    rep = recipe.representation
    size, ch = tuple(recipe.data.image_size), recipe.data.channels
    if rep.source:
        encoder, pre = load_encoder(rep.source, recipe, warn=log)
        log(f"encoder loaded from {rep.source} ({pre.get('kind')}, {encoder.count_params():,} parameters)")
        return encoder, {**pre, "init_from": str(rep.source)}
    pre = preprocessing_of(recipe, mean, std, rep.kind)
    encoder = build_encoder(recipe, mean, std)
    spec = pyramid_spec(encoder)
    if rep.training == "none":
        log(f"representation: {rep.kind} encoder, {encoder.count_params():,} parameters, random init (trained by "
            f"the {recipe.strategy.kind} strategy)")
        save_encoder(encoder, run.encoder_dir, pre)
        return encoder, pre
    if rep.training == "denoising":
        heads["denoise"] = HEADS.get("denoise").build(spec, size, name="denoise", channels=ch, decoder=rep.decoder)
        model = attach_one(encoder, heads["denoise"])
        levels = noise_levels(rep.noise)
        log(f"representation: {rep.kind} encoder + denoising decoder, {model.count_params():,} parameters, "
            f"noise {[lv.name for lv in levels]}")

        def add_noise(x, y, seed):  # the target is the clean (augmented, when training) image
            return random_noise(x, levels, seed), x

        x_rep, x_va = rep_source.representation_images("train"), rep_source.representation_images("val")
        stream = _stream("representation", model, LOSSES.get("mse")(), rep, x_rep, x_rep, x_va, x_va, recipe.seed,
                         map_fn=add_noise, augment=recipe.data.augment)
    else:
        tname = rep.task or max((n for n, t in recipe.tasks.items() if t.type == "classification"),
                                key=lambda n: len(tasks[n].index["train"]))
        task = recipe.tasks[tname]  # its head is trained with the encoder, at representation.dropout
        head = task_head(tname, task, rep.kind)
        if "dropout" in type(head).model_fields:
            task = task.model_copy(update={"head": head.model_copy(update={"dropout": rep.dropout})})
        heads[tname] = build_head(tname, task, spec, size, rep.kind, ch)
        model = attach_one(encoder, heads[tname])
        log(f"representation: {rep.kind} encoder trained with task {tname!r}, {model.count_params():,} parameters")
        (x_tr, y_tr), (x_va, y_va) = tasks[tname].arrays("train"), tasks[tname].arrays("val")
        stream = _stream("representation", model, build_loss(task.type, task.loss), rep, x_tr, y_tr, x_va, y_va,
                         recipe.seed, augment=recipe.task_data(tname).augment, task=task, log=log)
    trainer = SingleTask("representation", stream, model.trainable_variables, make_optimizer(rep.optimizer),
                         strategy)
    res = run_stage(trainer, rep, log=log, log_dir=stage_log("representation"), checkpoints=ckpt)
    stages["representation"] = {**res.to_dict(), "parameters": count_parameters(model), "kind": rep.kind}
    if rep.training == "supervised":
        stages["representation"]["task"] = tname
    save_encoder(encoder, run.encoder_dir, pre, denoise_head=heads.get("denoise"))
    return encoder, pre


def _fine_tune(recipe, encoder, heads, tasks, stages, strategy, stage_log, log, ckpt=None, encoder_kind=None):
    """Attach a head per task and train them with the recipe's strategy (a plug-in of
    :mod:`umsrep.train.strategies`, looked up by ``strategy.kind``).

    ``encoder_kind``: the architecture the heads attach to (a loaded encoder's own, from its card)."""
    kind = recipe.strategy.kind
    plugin = STRATEGIES.get(kind)(recipe.strategy.settings_of(kind))
    size = tuple(recipe.data.image_size)
    trainable = recipe.representation.trainable
    encoder.trainable = trainable if trainable is not None else not plugin.freezes_encoder
    encoder_kind = encoder_kind or recipe.representation.kind
    spec = pyramid_spec(encoder)
    streams = []
    for i, (name, task) in enumerate(recipe.tasks.items()):
        if name in heads and not plugin.trains_representation_head:
            continue  # the supervised representation's own head is already trained
        if name not in heads:
            heads[name] = build_head(name, task, spec, size, encoder_kind, recipe.data.channels)
        model = attach_one(encoder, heads[name])
        (x_tr, y_tr), (x_va, y_va) = tasks[name].arrays("train"), tasks[name].arrays("val")
        n_cls = len(task.classes)
        log(f"head {name!r} ({task.type}, {n_cls} class{'es' if n_cls != 1 else ''}): {heads[name].count_params():,} "
            f"parameters, {len(x_tr)} train / {len(x_va)} val images")
        streams.append(_stream(name, model, build_loss(task.type, task.loss), task, x_tr, y_tr, x_va, y_va,
                               recipe.seed + 7 * (i + 1), head_variables=heads[name].trainable_variables,
                               augment=recipe.task_data(name).augment, task=task, log=log))
    ctx = FineTune(kind, recipe, encoder, heads, streams, tasks, strategy, stage_log, log, ckpt, stages)
    plugin.fine_tune(ctx)


def _baseline(recipe, encoder, heads, tasks, stages, strategy, stage_log, log, ckpt=None):
    """The paper's baseline: a separate model per task (a freshly initialised encoder of the same architecture +
    the same head, all trainable) trained on images denoised by the representation's denoising autoencoder — the
    one trained in this run, or the denoiser saved with a loaded encoder (``denoise.keras``; without one, the
    separate models read the images as they are, and the log says so).

    Returns ``({task: image -> output model}, {model: {time, parameters, ...}})``; the denoiser counts as one
    of the baseline's models with the representation stage's training time when this run trained it (UMS-Rep's
    time counts that stage too), and with none when it was loaded (neither side counts a pretraining; its card's
    time is kept as ``pretrained_wall_time_s``)."""
    size, ch = tuple(recipe.data.image_size), recipe.data.channels
    rep = recipe.representation
    arch = baseline_architecture(recipe)
    models, costs = {}, {}
    if "denoise" in heads:
        denoiser = attach_one(encoder, heads["denoise"])
        trained = stages.get("representation", {})
        rep_stage = {"wall_time_s": trained.get("wall_time_s", 0.0), "epochs_run": trained.get("epochs_run", 0)}
    else:
        denoiser = load_denoiser(rep.source, recipe, warn=lambda msg: None) if rep.source else None
        # a loaded denoiser was trained with the loaded encoder, before this run: that pretraining is counted on
        # neither side (UMS-Rep does not count the encoder's either); a card's time is recorded beside it
        trained = (_card(rep).get("training") or {}) if denoiser is not None else {}
        rep_stage = {"wall_time_s": 0.0, "epochs_run": 0,
                     **({"pretrained_wall_time_s": trained["wall_time_s"]} if trained.get("wall_time_s") else {})}
        if rep.source and denoiser is None:
            log(f"baseline: {rep.source} has no denoising decoder ({DENOISER_FILE}): the separate models read the "
                "images as they are")
    if denoiser is not None:
        costs["denoiser"] = {**rep_stage, "parameters": {"trainable": count_parameters(denoiser)["total"],
                                                         "total": count_parameters(denoiser)["total"]}}
        clean = tf.function(lambda x: denoiser(x, training=False), reduce_retracing=True)
    for i, (name, task) in enumerate(recipe.tasks.items()):
        (x_tr, y_tr), (x_va, y_va) = tasks[name].arrays("train"), tasks[name].arrays("val")
        if denoiser is not None:
            x_tr, x_va = pipeline.predict(clean, x_tr), pipeline.predict(clean, x_va) if len(x_va) else x_va
        # same architecture, random init, its own normalisation statistics from its (denoised) training images
        enc = build_encoder(recipe, float(x_tr.mean()), float(x_tr.std()), name=f"baseline_{name}_encoder",
                            settings=arch)
        head = build_head(name, task, pyramid_spec(enc), size, arch.kind, ch)
        model = attach_one(enc, head)
        log(f"baseline model {name!r}: {model.count_params():,} parameters, trained from scratch"
            + (" on denoised images" if denoiser is not None else ""))
        stream = _stream(name, model, build_loss(task.type, task.loss), task, x_tr, y_tr, x_va, y_va,
                         recipe.seed + 101 * (i + 1), augment=recipe.task_data(name).augment, task=task)
        res = run_stage(SingleTask(f"baseline/{name}", stream, model.trainable_variables,
                                   make_optimizer(task.optimizer), strategy), task, log=log,
                        log_dir=stage_log(f"baseline_{name}"), checkpoints=ckpt)
        costs[name] = {**res.to_dict(), "parameters": count_parameters(model)}
        image = keras.Input(shape=(*size, ch), name="image")
        models[name] = keras.Model(image, model(denoiser(image) if denoiser is not None else image),
                                   name=f"baseline_{name}")
    return models, costs


def _card(rep) -> dict:
    """A pretrained encoder's card ({} for an encoder built here or loaded from a run folder)."""
    if rep.kind != "pretrained":
        return {}
    from umsrep import pretrained

    return pretrained.read_card(pretrained.resolve(rep.source))


def fit(recipe: Recipe, run: RunDir, log=print) -> dict:
    """Train and evaluate ``recipe`` into ``run``; with ``data.split.folds`` and no ``fold``, every fold, with
    ``seeds`` every training seed (:mod:`umsrep.train.crossval`). Continues from the run's checkpoints when it
    has any."""
    if recipe.data.split.folds is not None and recipe.data.split.fold is None:
        from umsrep.train.crossval import fit_folds

        return fit_folds(recipe, run, log, fit_one=fit)
    if recipe.seeds:
        from umsrep.train.crossval import fit_seeds

        return fit_seeds(recipe, run, log, fit_one=fit)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(recipe.precision)
    try:
        return _fit_one(recipe, run, log)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _fit_one(recipe: Recipe, run: RunDir, log=print) -> dict:
    t_run = time.perf_counter()
    created = time.strftime("%Y-%m-%dT%H:%M:%S")
    keras.utils.set_random_seed(recipe.seed)
    run.write_text(RunDir.RECIPE, dump_recipe(recipe))
    if not (run / RunDir.RUN).is_file():
        run.write_json(RunDir.RUN, run_meta(recipe, {}, False, "training", created))
    ckpt = Checkpoints(run / RunDir.CHECKPOINTS)
    rep = recipe.representation
    rep_source, tasks, sources = prepare(recipe, run.path, log)
    run.write_json(RunDir.SPLITS, {
        "sources": {k: {"root": s.config.root or "synthetic",
                        **({"pool": [c.root or "synthetic" for c in s.config.parts()[1:]]} if s.config.pool else {}),
                        **{sp: s.names(sp) for sp in SPLITS},
                        "skipped": [vars(x) for x in s.data.skipped]} for k, s in sources.items()},
        "tasks": {n: td.source.key for n, td in tasks.items()}})
    write_split_file(run / RunDir.SPLIT_FILE, rep_source.data.files, rep_source.split)  # data.split.file reuses it

    log_augmentation(recipe, log)
    x_rep = rep_source.representation_images("train")
    mean, std = float(x_rep.mean()), float(x_rep.std())
    if rep_source.also:
        log(f"representation data: {len(x_rep)} training images from {1 + len(rep_source.also)} data sets")
    stages, heads = {}, {}
    log_dir = (run / RunDir.LOGS) if recipe.output.tensorboard else None
    stage_log = (lambda n: log_dir / n) if log_dir else (lambda n: None)

    strategy = make_strategy(recipe.distribute)
    if strategy.num_replicas_in_sync > 1 or recipe.distribute.strategy != "default":
        log(f"distribute: {recipe.distribute.strategy} ({type(strategy).__name__}) with "
            f"{strategy.num_replicas_in_sync} replica(s)")
    kinds = [recipe.strategy.kind] + [k for k in dict.fromkeys(recipe.strategy.compare) if k != recipe.strategy.kind]
    approaches, outcomes, results = {}, {}, {}
    with strategy.scope():
        encoder, pre = _representation(recipe, run, rep_source, tasks, heads, stages, mean, std, strategy,
                                       stage_log, log, ckpt)
        rep_heads = dict(heads)
        snapshot = {"encoder": encoder.get_weights(), **{h: m.get_weights() for h, m in rep_heads.items()}}

        def restore_representation():  # every strategy and the baseline start from the trained representation
            encoder.set_weights(snapshot["encoder"])
            for h, m in rep_heads.items():
                m.set_weights(snapshot[h])

        rep_stage = [stages["representation"]] if "representation" in stages else []
        for n, kind in enumerate(kinds):
            if n:
                restore_representation()
                log(f"--- strategy {kind!r} (comparison), from the same representation")
            heads_k, stages_k = dict(rep_heads), {}
            _fine_tune(recipe.model_copy(update={"strategy": recipe.strategy.model_copy(update={"kind": kind})}),
                       encoder, heads_k, tasks, stages_k, strategy, stage_log, log, ckpt,
                       encoder_kind=pre.get("kind"))
            full = attach(encoder, heads_k)
            path = run.model_path if n == 0 else run.path / "models" / f"{kind}.keras"
            save_keras(full, path)
            if n == 0:
                run.write_json(RunDir.RUN, run_meta(recipe, pre, "denoise" in heads_k, "trained", created))
                heads, stages = heads_k, {**stages, **stages_k}
                main_model = full
            log(f"model saved: {path} ({full.count_params():,} parameters)")
            outcomes[kind] = {}
            results[kind] = evaluate_model(full, recipe, tasks, rep_source, approach_dir(run.path, kind), log=log,
                                           outcomes=outcomes[kind])
            approaches[kind] = {**approach_summary(rep_stage + list(stages_k.values()), results[kind]["tasks"]),
                                "parameters": {"total": count_parameters(full)["total"]}}
        if recipe.baseline:
            restore_representation()
            log("--- baseline: one separate model per task, random init")
            base_models, costs = _baseline(recipe, encoder, rep_heads, tasks, stages, strategy, stage_log, log, ckpt)
            outcomes["baseline"] = {}
            results["baseline"] = evaluate_model(base_models, recipe, tasks, rep_source,
                                                 approach_dir(run.path, "baseline"), log=log,
                                                 outcomes=outcomes["baseline"])
            approaches["baseline"] = {**approach_summary(list(costs.values()), results["baseline"]["tasks"]),
                                      "models": costs,
                                      "parameters": {"total": int(sum(c["parameters"]["total"]
                                                                      for c in costs.values()))}}
            for name, m in base_models.items():
                save_keras(m, run.path / "models" / f"baseline_{name}.keras")
    full = main_model

    metrics = results[kinds[0]]
    metrics["stages"] = stages
    if len(approaches) > 1:
        metrics["comparison"] = compare_approaches(approaches, outcomes, recipe)
    metrics["parameters"] = {"encoder": count_parameters(encoder)["total"],
                             "heads": {h: count_parameters(m)["total"] for h, m in heads.items()},
                             "model_total": count_parameters(full)["total"],
                             "flops_per_image": count_flops(full)}
    metrics["data"] = {
        "sources": {k: {"root": s.config.root or "synthetic", "images": len(s.data),
                        **{sp: int(len(s.split[sp])) for sp in SPLITS},
                        **({"pool": s.pooled_counts()} if s.config.pool else {}),
                        "skipped": [vars(x) for x in s.data.skipped]} for k, s in sources.items()},
        "tasks": {n: {"source": td.source.key, **td.counts(), "skipped": [vars(x) for x in td.skipped],
                      **({"excluded_by_label_map": td.excluded} if td.excluded else {})}
                  for n, td in tasks.items()}}
    metrics["run"] = {"name": recipe.name, "modality": recipe.modality, "strategy": recipe.strategy.kind,
                      "representation": (f"pretrained {rep.source}" if rep.kind == "pretrained" else
                                         f"init_from {rep.source}" if rep.source else rep.kind),
                      **encoder_identity(rep),
                      "wall_time_s": round(time.perf_counter() - t_run, 2), "umsrep_version": umsrep.__version__}
    run.write_json(RunDir.METRICS, metrics)
    run.write_text(RunDir.REPORT, render_markdown(metrics))
    write_previews(run.path / PREVIEW_FILE, preview_sets(recipe, tasks, rep_source))
    if recipe.output.html:
        write_html_report(run, metrics, approach_dir(run.path, kinds[0]), log=log)
    run.write_json(RunDir.RUN, {**run_meta(recipe, pre, "denoise" in heads, "complete", created),
                                "wall_time_s": metrics["run"]["wall_time_s"]})
    return metrics


def encoder_identity(rep) -> dict:
    """For a run from a pretrained encoder, the SHA-256 of the encoder it loaded (from its card, verified at load):
    a shipped name such as ``cmr-cdae`` can be republished, the hash says which version a run started from."""
    return {"encoder_sha256": _card(rep)["sha256"]} if rep.kind == "pretrained" else {}
