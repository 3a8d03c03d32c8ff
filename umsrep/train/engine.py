"""The training engine: one custom step loop (``tf.GradientTape`` + our own optimizer calls) for every stage
and every fine-tuning strategy, run under any ``tf.distribute`` strategy.

A :class:`TaskStream` is one task's model (image -> that head's output, sharing the encoder), loss and data.
A *trainer* decides which variables each batch updates:

- :class:`SingleTask`: one stream, one optimizer, a chosen variable set — the representation stage (encoder +
  denoising decoder or supervised head) and each head of the ``independent`` strategy (head only);
- :class:`Alternating`: ``ratios[t]`` consecutive batches of task ``t``, then the next task, each batch
  updating the encoder and the active head with that task's optimizer;
- :class:`Joint`: one batch of every task per step, one optimizer over the encoder and all heads, the loss
  vector combined by a :mod:`umsrep.train.weighting` method.

:func:`run_stage` drives any trainer: epochs, validation, early stopping and reduce-LR-on-plateau per optimizer
(monitoring the validation loss of the tasks that optimizer trains; each task's loss is divided by its first
validation loss so tasks count equally — or, with `fixed` joint weights, as much as their weight), best weights
restored, TensorBoard scalars. Every step runs through
``strategy.run`` (Keras' ``fit`` fails under ``MultiWorkerMirroredStrategy`` on TF 2.21); per-replica losses are
divided by the replica count so the optimizer's all-reduced sum is the global mean gradient.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

SUM = tf.distribute.ReduceOp.SUM


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


def n_params(variables) -> int:
    return int(sum(np.prod(v.shape) for v in variables))


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
        return self.strategy.reduce(SUM, per_replica, axis=None)

    def _make_eval(self, s: TaskStream):
        model, loss_fn = s.model, s.loss_fn

        def replica(x, y):
            n = tf.shape(x)[0]
            loss = tf.cond(n > 0, lambda: loss_fn(y, model(x, training=False)), lambda: tf.constant(0.0))
            return tf.stack([loss * tf.cast(n, tf.float32), tf.cast(n, tf.float32)])

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
        out = {}
        for s in self.streams:
            if s.val_ds is None:
                continue
            it = iter(self._dist(s.val_ds))
            total = np.zeros(2)
            for _ in range(s.val_steps):
                total += self._val_fns[s.name](next(it)).numpy()
            out[s.name] = float(total[0] / max(total[1], 1.0))
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


def alternating_schedule(streams: List[TaskStream], ratios) -> List[tuple]:
    """[(task, consecutive batches), ...] for one turn. ``ratios``: ``"auto"`` (proportional to each task's
    steps per epoch, i.e. its training examples, smallest = 1) or ``{task: batches}`` (missing tasks: 1)."""
    if ratios == "auto":
        smallest = min(s.steps_per_epoch for s in streams)
        return [(s.name, max(1, round(s.steps_per_epoch / smallest))) for s in streams]
    return [(s.name, int(ratios.get(s.name, 1))) for s in streams]


class Alternating(Trainer):
    """``ratios[t]`` batches of task t, then the next task, ...; each batch updates encoder + active head
    with the active task's optimizer. An epoch is ``sum(steps_per_epoch)`` batches in this order."""

    def __init__(self, name, streams, shared_variables, optimizers: Dict[str, keras.optimizers.Optimizer],
                 model, ratios="auto", strategy=None):
        super().__init__(name, streams, model, strategy)
        self.shared = _unique(shared_variables)
        self._opts = optimizers
        self.schedule = alternating_schedule(streams, ratios)
        self._vars = {s.name: _unique(self.shared + s.head_variables) for s in streams}
        with self.strategy.scope():
            for s in streams:
                self._opts[s.name].build(self._vars[s.name])
        self._steps = {s.name: self._make_step(s) for s in streams}
        self._turn = 0          # position in the schedule
        self._left = self.schedule[0][1]
        self.trace: List[str] = []   # task of every batch of the current epoch

    @property
    def variables(self):
        return _unique([v for s in self.streams for v in self._vars[s.name]])

    @property
    def optimizers(self):
        return self._opts

    def optimizer_tasks(self, opt_name):
        return [opt_name]

    def _make_step(self, s):
        return self._one_task_step(s, self._vars[s.name], self._opts[s.name])

    def get_state(self):
        return {**super().get_state(), "turn": self._turn, "left": self._left}

    def set_state(self, state):
        super().set_state(state)
        self._turn, self._left = int(state["turn"]), int(state["left"])

    def step(self):
        """Run the next scheduled batch; returns ``(task, loss)``."""
        task = self.schedule[self._turn][0]
        loss = float(self._steps[task](self.next_batch(task)))
        self._left -= 1
        if self._left == 0:
            self._turn = (self._turn + 1) % len(self.schedule)
            self._left = self.schedule[self._turn][1]
        self.trace.append(task)
        return task, loss

    def train_epoch(self):
        self.trace = []
        sums = {s.name: [0.0, 0] for s in self.streams}
        for _ in range(self.steps_per_epoch()):
            task, loss = self.step()
            sums[task][0] += loss
            sums[task][1] += 1
        logs = {f"loss/{t}": a / n for t, (a, n) in sums.items() if n}
        logs["loss"] = float(sum(logs.values()))
        logs.update({f"batches/{t}": n for t, (_, n) in sums.items()})
        return logs


SHARED = "__shared__"  # the consumed-batches key of Joint's shared-batch stream


class Joint(Trainer):
    """One batch of every task per step; one optimizer over encoder + heads (+ the weighting's variables).

    With ``shared_batches`` (a dataset of ``(x, {task: y})``, for tasks labelled on the same images) each step
    draws one batch for all tasks and runs the shared encoder once through ``model`` (image -> {task: output});
    otherwise each task draws its own batch and the encoder runs once per task."""

    def __init__(self, name, streams, shared_variables, optimizer, weighting, model, strategy=None,
                 shared_batches=None):
        super().__init__(name, streams, model, strategy)
        self.shared_batches = shared_batches
        if shared_batches is not None:
            self._train_ds[SHARED] = shared_batches
            self.consumed[SHARED] = 0
        self.shared = _unique(shared_variables)
        self.task_vars = {s.name: _unique(s.head_variables) for s in streams}
        self.weighting = weighting
        self.optimizer = optimizer
        weighting.build(self.shared, self.task_vars)
        self._all = self.shared + [v for s in streams for v in self.task_vars[s.name]] + weighting.trainable_variables
        with self.strategy.scope():
            self.optimizer.build(self._all)
        self._step = self._make_step()

    @property
    def variables(self):
        return self._all

    @property
    def optimizers(self):
        return {"joint": self.optimizer}

    def steps_per_epoch(self):
        return max(s.steps_per_epoch for s in self.streams)

    def state_variables(self):
        return super().state_variables() + self.weighting.state_variables()

    def monitor_weights(self):
        return self.weighting.monitor_weights()

    def get_state(self):
        return {**super().get_state(), "weighting": self.weighting.get_state()}

    def set_state(self, state):
        super().set_state(state)
        self.weighting.set_state(state["weighting"])

    def _make_step(self):
        streams, w, opt, replicas = self.streams, self.weighting, self.optimizer, self.replicas
        shared, task_vars, extra, variables = self.shared, self.task_vars, w.trainable_variables, self._all
        model, one_batch = self.model, self.shared_batches is not None

        def task_losses(batches):
            if not one_batch:
                return [_scaled_loss(s, x, y, replicas) for s, (x, y) in zip(streams, batches)]
            x, ys = batches
            outs = model(x, training=True)   # the encoder once, every head on its features
            extra_loss = tf.add_n([tf.cast(v, tf.float32) for v in model.losses]) if model.losses else 0.0
            return [(tf.cast(s.loss_fn(ys[s.name], outs[s.name]), tf.float32) + extra_loss) / replicas
                    for s in streams]

        def replica(batches):
            with tf.GradientTape(persistent=w.per_task_gradients) as tape:
                losses = task_losses(batches)
                objective = w.objective(tf.stack(losses))
            grads = w.gradients(tape, losses, objective, shared, task_vars, extra)
            del tape
            opt.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
            return tf.stack(losses)

        @tf.function(reduce_retracing=True)
        def step(batches):
            return self._reduce(self.strategy.run(replica, args=(batches,)))

        return step

    def train_epoch(self):
        n = self.steps_per_epoch()
        total = np.zeros(len(self.streams))
        for _ in range(n):
            batches = (self.next_batch(SHARED) if self.shared_batches is not None
                       else tuple(self.next_batch(s.name) for s in self.streams))
            total += self._step(batches).numpy()
        raw = total / n
        weights = self.weighting.state()
        logs = {f"loss/{s.name}": float(raw[i]) for i, s in enumerate(self.streams)}
        logs.update({f"weighted_loss/{t}": weights[t] * logs[f"loss/{t}"] for t in weights})
        logs.update({f"weight/{t}": w for t, w in weights.items()})
        logs["loss"] = float(sum(logs[f"weighted_loss/{t}"] for t in weights))
        return logs

    def on_epoch_end(self, logs):
        self.weighting.on_epoch_end({s.name: logs[f"loss/{s.name}"] for s in self.streams})


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


def run_stage(trainer: Trainer, cfg, *, log: Callable[[str], None] = print, log_dir=None,
              checkpoints=None) -> StageResult:
    """Train ``trainer`` under :class:`umsrep.recipe.TrainConfig` ``cfg``; returns its history and timings.

    With ``checkpoints`` (:class:`umsrep.train.checkpoint.Checkpoints`) the stage is checkpointed after every
    epoch and, if a checkpoint exists, continued from it (or restored without training when it finished)."""
    name = trainer.name
    result = StageResult(name, trainable_params=n_params(trainer.variables))
    es, plateau = cfg.early_stopping, cfg.lr_schedule
    opts = trainer.optimizers
    loop = {"epoch": 0, "best": math.inf, "since_best": 0, "opt_best": {k: math.inf for k in opts},
            "since_plateau": {k: 0 for k in opts}, "first": {}, "history": [], "best_epoch": 0,
            "stopped_early": False, "wall_time_s": 0.0}
    best_weights = None
    saved = checkpoints.load(name) if checkpoints is not None else None
    if saved is not None:
        checkpoints.restore(name, trainer, saved)
        loop.update(_from_json({k: saved[k] for k in loop}))
        best_weights = saved["best_weights"]
        if saved["done"]:
            log(f"[{name}] finished before: restored from its checkpoint (epoch {saved['epoch']})")
            return _result(result, loop)
        log(f"[{name}] resuming after epoch {saved['epoch']}")
    writer = tf.summary.create_file_writer(str(log_dir)) if log_dir else None
    t_start = time.perf_counter() - loop["wall_time_s"]
    for epoch in range(loop["epoch"] + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        logs = trainer.train_epoch()
        val = trainer.validate()
        # monitor validation losses, or training losses for tasks without a validation split
        watched = {s.name: val.get(s.name, logs.get(f"loss/{s.name}", logs["loss"])) for s in trainer.streams}
        first = loop["first"] = loop["first"] or dict(watched)
        trainer.on_epoch_end(logs)
        lrs = {k: float(keras.ops.convert_to_numpy(o.learning_rate)) for k, o in opts.items()}
        task_weights = trainer.monitor_weights()
        monitored = _normalised(watched, first, watched, task_weights)
        rec = {"epoch": epoch, **logs, "val_loss": (float(sum(val.values())) if val else None),
               **({f"val_loss/{t}": v for t, v in val.items()} if len(trainer.streams) > 1 else {}),
               **({"monitored": monitored} if len(trainer.streams) > 1 else {}),
               **({"lr": next(iter(lrs.values()))} if len(lrs) == 1 else {f"lr/{k}": v for k, v in lrs.items()}),
               "time_s": time.perf_counter() - t0}
        loop["history"].append(rec)
        if writer:
            with writer.as_default(step=epoch):
                for k, v in rec.items():
                    if k not in ("epoch", "time_s") and isinstance(v, (int, float)):
                        tf.summary.scalar(k, v)
        keys = ("loss", "val_loss", "weight/") if len(trainer.streams) > 1 else ("loss", "val_loss")
        shown = "  ".join(f"{k} {v:.4f}" for k, v in rec.items()
                          if (k in keys or (len(keys) == 3 and k.startswith(keys))) and isinstance(v, float))
        log(f"[{name}] epoch {epoch}/{cfg.epochs}  {shown}  lr {min(lrs.values()):.2e}  {rec['time_s']:.1f}s")
        min_delta = es.min_delta if es else 0.0
        if monitored < loop["best"] - min_delta:
            loop["best"], loop["since_best"], loop["best_epoch"] = monitored, 0, epoch
            best_weights = trainer.model.get_weights()  # incl. BatchNorm statistics
        else:
            loop["since_best"] += 1
        for k, opt in opts.items():
            m = _normalised(watched, first, trainer.optimizer_tasks(k), task_weights)
            if m < loop["opt_best"][k] - min_delta:
                loop["opt_best"][k], loop["since_plateau"][k] = m, 0
            else:
                loop["since_plateau"][k] += 1
            if plateau.kind == "plateau" and loop["since_plateau"][k] >= plateau.patience:
                new_lr = max(lrs[k] * plateau.factor, plateau.min_lr)
                if new_lr < lrs[k]:
                    opt.learning_rate.assign(new_lr)
                    log(f"[{name}] learning rate ({k}) -> {new_lr:.2e}")
                loop["since_plateau"][k] = 0
        loop["epoch"] = epoch
        loop["wall_time_s"] = time.perf_counter() - t_start
        stop = bool(es and loop["since_best"] >= es.patience)
        if stop:
            loop["stopped_early"] = True
            log(f"[{name}] early stop at epoch {epoch} (best epoch {loop['best_epoch']})")
        if checkpoints is not None and not stop and epoch < cfg.epochs:
            checkpoints.save(name, trainer, _jsonable(loop), best_weights)
        if stop:
            break
    if es and es.restore_best and best_weights is not None:
        trainer.model.set_weights(best_weights)
    if writer:
        writer.flush()
    loop["wall_time_s"] = time.perf_counter() - t_start
    if checkpoints is not None:
        checkpoints.save(name, trainer, _jsonable(loop), done=True)
    return _result(result, loop)


def _jsonable(loop):
    return {k: (None if isinstance(v, float) and math.isinf(v) else
                {kk: (None if isinstance(vv, float) and math.isinf(vv) else vv) for kk, vv in v.items()}
                if isinstance(v, dict) else v) for k, v in loop.items()}


def _from_json(loop):
    loop["best"] = math.inf if loop["best"] is None else loop["best"]
    loop["opt_best"] = {k: (math.inf if v is None else v) for k, v in loop["opt_best"].items()}
    return loop


def _result(result: StageResult, loop: dict) -> StageResult:
    result.history = loop["history"]
    result.best_epoch = loop["best_epoch"]
    result.epochs_run = loop["epoch"]
    result.stopped_early = loop["stopped_early"]
    result.wall_time_s = loop["wall_time_s"]
    return result
