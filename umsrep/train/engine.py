"""The training engine: one custom step loop (``tf.GradientTape`` + our own optimizer calls) for every stage
and every fine-tuning strategy, run under any ``tf.distribute`` strategy.

A :class:`TaskStream` is one task's model (image -> that head's output, sharing the encoder), loss and data.
A *trainer* decides which variables each batch updates:

- :class:`SingleTask`: one stream, one optimizer, a chosen variable set — the representation stage (encoder +
  denoising decoder or supervised head) and each head of the ``independent`` strategy (head only);
- the strategies' trainers (:mod:`umsrep.train.strategies`): ``Alternating`` (``ratios[t]`` consecutive batches
  of task ``t``, each updating the encoder and the active head) and ``Joint`` (one batch of every task per step,
  the loss vector combined by a :mod:`umsrep.train.weighting` method).

:func:`run_stage` drives any trainer: the epoch loop trains, validates and logs; the handlers of
:mod:`umsrep.train.handlers` do the rest — the learning-rate schedule per optimizer and early stopping
(monitoring the validation loss of the tasks that optimizer trains, :meth:`Stage.monitored`: each task's loss is
divided by its first validation loss so tasks count equally — or, with `fixed` joint weights, as much as their
weight), best weights restored, TensorBoard scalars, checkpoints. Importing this module imports no TensorFlow
(:mod:`umsrep.lazy`), so the strategy plug-ins that subclass :class:`Trainer` validate recipes without it. Every
step runs through
``strategy.run`` (Keras' ``fit`` fails under ``MultiWorkerMirroredStrategy`` on TF 2.21); per-replica losses are
divided by the replica count so the optimizer's all-reduced sum is the global mean gradient.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from umsrep.lazy import keras, tf
from umsrep.models.flops import count_parameters


def make_optimizer(cfg):
    """Keras optimizer from :class:`umsrep.recipe.OptimizerConfig`; wrapped in a dynamic
    ``LossScaleOptimizer`` under the ``mixed_float16`` policy (steps call ``opt.scale_loss``)."""
    lr = cfg.learning_rate
    if cfg.name == "adam":
        opt = keras.optimizers.Adam(lr)
    elif cfg.name == "adamw":
        opt = keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay or 0.004)
    elif cfg.name == "rmsprop":
        opt = keras.optimizers.RMSprop(lr, momentum=cfg.momentum)
    else:
        opt = keras.optimizers.SGD(lr, momentum=cfg.momentum)
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def _unique(variables):
    seen, out = set(), []
    for v in variables:
        key = id(v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


@dataclass
class TaskStream:
    """One task's model, loss and batches (datasets already batched at the *global* batch size)."""

    name: str
    model: keras.Model                  # image -> this task's prediction
    loss_fn: Callable                   # (y_true, y_pred) -> scalar mean over the batch
    train_ds: tf.data.Dataset
    steps_per_epoch: int
    val_ds: Optional[tf.data.Dataset] = None
    val_steps: int = 0
    head_variables: List[tf.Variable] = field(default_factory=list)
    metric: Optional[str] = None        # validation metric: "dice" (segmentation) or "mcc" (classification)
    n_classes: int = 0                  # the head's output channels (metric statistics)
    threshold: float = 0.5              # binary segmentation threshold
    seed: int = 0                       # the training stream's seed (its per-epoch permutations)
    batch_size: int = 16                # the training stream's global batch size


def metric_stats(metric, y, pred, n_classes, threshold=0.5):
    """Per-batch sufficient statistics of a validation metric (summed over batches and replicas):
    ``dice`` -> [sum over images of the mean Dice of the foreground classes (both empty -> 1)], the definition of
    :func:`umsrep.evaluate.metrics.dice_per_image`; ``mcc`` -> the flattened confusion matrix."""
    if metric == "mcc":
        t = tf.reshape(tf.cast(y, tf.int32), [-1])
        p = tf.argmax(pred, axis=-1, output_type=tf.int32)
        return tf.reshape(tf.cast(tf.math.confusion_matrix(t, p, num_classes=n_classes), tf.float32), [-1])
    y = tf.cast(y, tf.int32)
    if len(y.shape) == 4:
        y = y[..., 0]
    if n_classes == 1:
        p, t, k = tf.cast(pred[..., 0] > threshold, tf.int32), tf.cast(y > 0, tf.int32), 1
    else:
        p, t, k = tf.argmax(pred, axis=-1, output_type=tf.int32), y, n_classes - 1
    dice = []
    for c in range(1, k + 1):
        a, b = tf.cast(t == c, tf.float32), tf.cast(p == c, tf.float32)
        inter, size = tf.reduce_sum(a * b, [1, 2]), tf.reduce_sum(a, [1, 2]) + tf.reduce_sum(b, [1, 2])
        dice.append(tf.where(size > 0, 2 * inter / tf.maximum(size, 1.0), 1.0))
    return tf.reshape(tf.reduce_sum(tf.reduce_mean(tf.stack(dice, -1), -1)), [1])


def metric_value(metric, stats, n) -> float:
    """The validation metric from its summed statistics (:func:`metric_stats`) over ``n`` images."""
    if metric == "dice":
        return float(stats[0] / max(n, 1.0))
    from umsrep.evaluate.metrics import _mcc_from_cm

    k = int(round(len(stats) ** 0.5))
    return float(_mcc_from_cm(np.asarray(stats, np.float64).reshape(k, k)))


class Trainer:
    """Base: distributed iterators, the evaluation step, and what :func:`run_stage` needs."""

    def __init__(self, name: str, streams: List[TaskStream], model: keras.Model, strategy=None):
        self.name = name
        self.streams = streams
        self.model = model                  # whose weights early stopping saves and restores
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        self._train_ds = {s.name: s.train_ds for s in streams}   # batch streams by key (a task, or SHARED)
        self._train_iters = {}                                     # made on first use, after any resume
        self._val_fns = {s.name: self._make_eval(s) for s in streams}
        self.consumed = {s.name: 0 for s in streams}   # training batches drawn per stream (for resuming)

    # -- distribution helpers --------------------------------------------------------------------
    def _dist(self, ds):
        return self.strategy.experimental_distribute_dataset(ds)

    def _reduce(self, per_replica):
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def _make_eval(self, s: TaskStream):
        """A distributed step over one validation batch: [loss * n, n, metric statistics...], summed."""
        model, loss_fn = s.model, s.loss_fn
        n_stats = 0 if s.metric is None else (1 if s.metric == "dice" else s.n_classes ** 2)

        def replica(x, y):
            n = tf.shape(tf.nest.flatten(x)[0])[0]  # x may be a tuple (cached features)
            pred = model(x, training=False)
            loss = tf.cond(n > 0, lambda: loss_fn(y, pred), lambda: tf.constant(0.0))
            head = tf.stack([loss * tf.cast(n, tf.float32), tf.cast(n, tf.float32)])
            if not n_stats:
                return head
            return tf.concat([head, metric_stats(s.metric, y, pred, s.n_classes, s.threshold)], 0)

        @tf.function(reduce_retracing=True)
        def step(batch):
            return self._reduce(self.strategy.run(replica, args=batch))

        return step

    def _one_task_step(self, s: TaskStream, variables, opt):
        """A distributed step: one batch of task ``s``, ``opt`` updates ``variables``; returns the mean loss."""
        replicas = self.replicas

        def replica(x, y):
            with tf.GradientTape() as tape:
                loss = _scaled_loss(s, x, y, replicas)
                scaled = opt.scale_loss(loss)   # = loss, except under a LossScaleOptimizer (mixed_float16)
            opt.apply_gradients(zip(tape.gradient(scaled, variables), variables))
            return loss

        @tf.function(reduce_retracing=True)
        def step(batch):
            return self._reduce(self.strategy.run(replica, args=batch))

        return step

    def next_batch(self, key):
        """The next batch of stream ``key``; its iterator starts where ``consumed`` says (0, or a checkpoint's)."""
        if key not in self._train_iters:
            self._train_iters[key] = iter(self._dist(self._train_ds[key].skip(self.consumed[key])))
        self.consumed[key] += 1
        return next(self._train_iters[key])

    # -- checkpoint state (see umsrep.train.checkpoint) ------------------------------------------
    def state_variables(self) -> list:
        """Everything a resumed run must get back: model variables (incl. BatchNorm statistics and dropout
        seed states), optimizer variables (incl. step and learning rate), extra trainer variables."""
        out = list(self.model.variables)
        for opt in self.optimizers.values():
            out += list(opt.variables)
        return out

    def get_state(self) -> dict:
        return {"consumed": dict(self.consumed)}

    def set_state(self, state: dict):
        """Continue every batch stream where the checkpointed run left it."""
        self.consumed = {k: int(v) for k, v in state["consumed"].items()}
        self._train_iters = {}

    def validate(self) -> Dict[str, float]:
        """Each task's mean validation loss; its validation metric (streams that have one) in
        :attr:`val_metrics`."""
        out, self.val_metrics = {}, {}
        for s in self.streams:
            if s.val_ds is None:
                continue
            it = iter(self._dist(s.val_ds))
            total = None
            for _ in range(s.val_steps):
                step = self._val_fns[s.name](next(it)).numpy()
                total = step if total is None else total + step
            out[s.name] = float(total[0] / max(total[1], 1.0))
            if s.metric is not None:
                self.val_metrics[s.name] = metric_value(s.metric, total[2:], total[1])
        return out

    # -- to be provided by each trainer ------------------------------------------------------------
    @property
    def variables(self) -> List[tf.Variable]:
        raise NotImplementedError

    @property
    def optimizers(self) -> Dict[str, keras.optimizers.Optimizer]:
        """Optimizer name -> optimizer; :meth:`optimizer_tasks` says which tasks each one trains."""
        raise NotImplementedError

    def optimizer_tasks(self, opt_name) -> List[str]:
        return [s.name for s in self.streams]

    def monitor_weights(self) -> Dict[str, float]:
        """How much each task's (normalised) validation loss counts for early stopping and the plateau
        schedule; tasks not named count 1."""
        return {}

    def train_epoch(self) -> Dict[str, float]:
        """One epoch; returns ``{"loss": total, "loss/<task>": raw mean, ...}``."""
        raise NotImplementedError

    def on_epoch_end(self, logs):
        pass

    def steps_per_epoch(self) -> int:
        return sum(s.steps_per_epoch for s in self.streams)


def _scaled_loss(stream, x, y, replicas):
    pred = stream.model(x, training=True)
    loss = tf.cast(stream.loss_fn(y, pred), tf.float32)
    if stream.model.losses:
        loss = loss + tf.add_n([tf.cast(l, tf.float32) for l in stream.model.losses])
    return loss / replicas


class SingleTask(Trainer):
    """One task, one optimizer, updating ``variables`` only (the rest of the model stays as it is)."""

    def __init__(self, name, stream: TaskStream, variables, optimizer, strategy=None, model=None):
        super().__init__(name, [stream], model or stream.model, strategy)
        self._variables = _unique(variables)
        self.optimizer = optimizer
        with self.strategy.scope():
            self.optimizer.build(self._variables)
        self._step = self._make_step(stream)

    @property
    def variables(self):
        return self._variables

    @property
    def optimizers(self):
        return {self.streams[0].name: self.optimizer}

    def _make_step(self, s):
        return self._one_task_step(s, self._variables, self.optimizer)

    def train_epoch(self):
        s = self.streams[0]
        total = 0.0
        for _ in range(s.steps_per_epoch):
            total += float(self._step(self.next_batch(s.name)))
        loss = total / s.steps_per_epoch
        return {"loss": loss}


@dataclass
class StageResult:
    name: str
    history: List[dict] = field(default_factory=list)
    best_epoch: int = 0
    epochs_run: int = 0
    stopped_early: bool = False
    wall_time_s: float = 0.0
    trainable_params: int = 0

    def to_dict(self):
        return {"epochs_run": self.epochs_run, "best_epoch": self.best_epoch, "stopped_early": self.stopped_early,
                "wall_time_s": round(self.wall_time_s, 3), "trainable_params": self.trainable_params,
                "history": self.history}


def _normalised(values: Dict[str, float], first: Dict[str, float], tasks, weights=None) -> float:
    """One number to monitor: a single task's loss, or the sum over tasks of loss / first-epoch loss, each
    times its weight (default 1)."""
    tasks = [t for t in tasks if t in values]
    if len(tasks) == 1:
        return values[tasks[0]]
    weights = weights or {}
    return float(sum(weights.get(t, 1.0) * values[t] / max(first[t], 1e-12) for t in tasks))


class Stage:
    """One stage's epoch loop state, what the handlers (:mod:`umsrep.train.handlers`) see and change."""

    def __init__(self, trainer: Trainer, cfg, handlers, log):
        self.trainer, self.cfg, self.handlers, self.log = trainer, cfg, list(handlers), log
        self.name = trainer.name
        self.epoch = 0
        self.first: Dict[str, float] = {}     # each task's first monitored loss (normalises the others)
        self.watched: Dict[str, float] = {}   # this epoch's monitored loss per task
        self.task_weights: Dict[str, float] = {}
        self.history: List[dict] = []
        self.wall_time_s = 0.0
        self.stop = False                     # set by a handler (early stopping) to end the stage
        self.metrics: Dict[str, float] = {}   # this epoch's validation metric per task (streams that have one)

    def monitored_metric(self, tasks=None) -> Optional[float]:
        """This epoch's validation metric of ``tasks`` (default: all that have one), averaged with the trainer's
        monitor weights; None when no task has a metric."""
        tasks = [t for t in (self.metrics if tasks is None else tasks) if t in self.metrics]
        if not tasks:
            return None
        w = {t: self.task_weights.get(t, 1.0) for t in tasks}
        return float(sum(w[t] * self.metrics[t] for t in tasks) / max(sum(w.values()), 1e-12))

    def monitored(self, tasks=None) -> float:
        """This epoch's monitored validation loss of ``tasks`` (default: all): one task's loss, or the sum of each
        task's loss over its first one, times the trainer's monitor weight."""
        return _normalised(self.watched, self.first, self.watched if tasks is None else tasks, self.task_weights)

    def handler(self, name):
        return next((h for h in self.handlers if h.name == name), None)

    # -- checkpointed state --------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {"epoch": self.epoch, "first": self.first, "history": self.history, "wall_time_s": self.wall_time_s,
                "handlers": {h.name: h.get_state() for h in self.handlers},
                "arrays": {h.name: len(h.get_arrays()) for h in self.handlers}}

    def get_arrays(self) -> list:
        return [a for h in self.handlers for a in h.get_arrays()]

    def set_state(self, state: dict, arrays: list):
        self.epoch, self.first, self.history = state["epoch"], state["first"], state["history"]
        self.wall_time_s = state["wall_time_s"]
        i = 0
        for h in self.handlers:
            if h.name in state["handlers"]:
                h.set_state(state["handlers"][h.name])
            n = state["arrays"].get(h.name, 0)
            h.set_arrays(arrays[i:i + n])
            i += n


def trainer_metric(trainer, task) -> str:
    return next(s.metric for s in trainer.streams if s.name == task)


def run_stage(trainer: Trainer, cfg, *, log: Callable[[str], None] = print, log_dir=None, checkpoints=None,
              handlers=None) -> StageResult:
    """Train ``trainer`` under :class:`umsrep.settings.TrainConfig` ``cfg``; returns its history and timings.

    The epoch loop trains, validates and logs; everything else is a handler (default:
    :func:`umsrep.train.handlers.default_handlers` — TensorBoard, learning-rate schedule, early stopping and, with
    ``checkpoints`` (:class:`umsrep.train.checkpoint.Checkpoints`), a checkpoint after every epoch). With a
    checkpoint the stage continues from it (or is restored without training when it had finished)."""
    from umsrep.train.handlers import default_handlers

    if handlers is None:
        handlers = default_handlers(cfg, log_dir=log_dir, checkpoints=checkpoints)
    stage = Stage(trainer, cfg, handlers, log)
    name = trainer.name
    result = StageResult(name, trainable_params=count_parameters(trainer.variables)["total"])
    for h in stage.handlers:
        h.on_stage_begin(stage)
    saved = checkpoints.load(name) if checkpoints is not None else None
    if saved is not None:
        checkpoints.restore(name, trainer, saved)
        stage.set_state(saved, saved["best_weights"] or [])
        if saved["done"]:
            log(f"[{name}] finished before: restored from its checkpoint (epoch {saved['epoch']})")
            return _result(result, stage)
        log(f"[{name}] resuming after epoch {saved['epoch']}")
    opts = trainer.optimizers
    t_start = time.perf_counter() - stage.wall_time_s
    for epoch in range(stage.epoch + 1, cfg.epochs + 1):
        for h in stage.handlers:
            h.on_epoch_begin(stage, epoch)
        t0 = time.perf_counter()
        logs = trainer.train_epoch()
        val = trainer.validate()
        # monitor validation losses, or training losses for tasks without a validation split
        stage.watched = {s.name: val.get(s.name, logs.get(f"loss/{s.name}", logs["loss"])) for s in trainer.streams}
        stage.metrics = dict(getattr(trainer, "val_metrics", {}))
        stage.first = stage.first or dict(stage.watched)
        trainer.on_epoch_end(logs)
        lrs = {k: float(keras.ops.convert_to_numpy(o.learning_rate)) for k, o in opts.items()}
        stage.task_weights = trainer.monitor_weights()
        monitored = stage.monitored()
        rec = {"epoch": epoch, **logs, "val_loss": (float(sum(val.values())) if val else None),
               **({f"val_loss/{t}": v for t, v in val.items()} if len(trainer.streams) > 1 else {}),
               **({"monitored": monitored} if len(trainer.streams) > 1 else {}),
               **{f"val_{trainer_metric(trainer, t)}/{t}": v for t, v in stage.metrics.items()},
               **({"lr": next(iter(lrs.values()))} if len(lrs) == 1 else {f"lr/{k}": v for k, v in lrs.items()}),
               "time_s": time.perf_counter() - t0}
        stage.history.append(rec)
        keys = ("loss", "val_loss", "weight/") if len(trainer.streams) > 1 else ("loss", "val_loss")
        shown = "  ".join(f"{k} {v:.4f}" for k, v in rec.items()
                          if (k in keys or (len(keys) == 3 and k.startswith(keys)) or k.startswith(("val_dice/",
                                                                                                  "val_mcc/")))
                          and isinstance(v, float))
        log(f"[{name}] epoch {epoch}/{cfg.epochs}  {shown}  lr {min(lrs.values()):.2e}  {rec['time_s']:.1f}s")
        stage.epoch = epoch
        stage.wall_time_s = time.perf_counter() - t_start
        for h in stage.handlers:
            h.on_epoch_end(stage, rec)
        if stage.stop:
            break
    stage.wall_time_s = time.perf_counter() - t_start
    for h in stage.handlers:
        h.on_stage_end(stage)
    return _result(result, stage)


def _result(result: StageResult, stage: Stage) -> StageResult:
    es = stage.handler("early_stopping")
    result.history = stage.history
    result.best_epoch = es.best_epoch if es else stage.epoch
    result.epochs_run = stage.epoch
    result.stopped_early = bool(es and es.stopped_early)
    result.wall_time_s = stage.wall_time_s
    return result
