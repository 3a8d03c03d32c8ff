"""The training engine: one custom step (``tf.GradientTape`` + our own optimizer call) for every stage.

A *stage* trains a chosen set of variables of a model against one loss: the representation stage (encoder +
denoising decoder, or encoder + the supervised task's head) and each head stage of the independent strategy
(head variables only, encoder frozen). Loss weighting and other strategies plug into :class:`Stage` rather
than into ``compile(loss_weights=...)``. Per stage: early stopping and reduce-LR-on-plateau on the validation
loss (training loss when there is no validation split), best weights restored, TensorBoard scalars.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import keras
import numpy as np
import tensorflow as tf


def make_optimizer(cfg):
    """Keras optimizer from :class:`umsrep.recipe.OptimizerConfig`."""
    lr = cfg.learning_rate
    if cfg.name == "adam":
        return keras.optimizers.Adam(lr)
    if cfg.name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay or 0.004)
    if cfg.name == "rmsprop":
        return keras.optimizers.RMSprop(lr, momentum=cfg.momentum)
    return keras.optimizers.SGD(lr, momentum=cfg.momentum)


@dataclass
class Stage:
    name: str
    model: keras.Model                  # x -> prediction
    loss_fn: Callable                   # (y_true, y_pred) -> scalar
    variables: List[tf.Variable]        # what this stage updates
    optimizer: keras.optimizers.Optimizer
    train_ds: tf.data.Dataset
    steps_per_epoch: int
    val_ds: Optional[tf.data.Dataset] = None
    val_steps: int = 0


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


def _steps(stage: Stage):
    model, loss_fn, variables, opt = stage.model, stage.loss_fn, stage.variables, stage.optimizer

    @tf.function(reduce_retracing=True)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            loss = loss_fn(y, pred)
            if model.losses:
                loss = loss + tf.add_n([tf.cast(l, tf.float32) for l in model.losses])
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables))
        return loss

    @tf.function(reduce_retracing=True)
    def eval_step(x, y):
        return loss_fn(y, model(x, training=False))

    return train_step, eval_step


def _mean_loss(step, ds, n_steps):
    it = iter(ds)
    total = 0.0
    for _ in range(n_steps):
        x, y = next(it)
        total += float(step(x, y))
    return total / max(n_steps, 1)


def run_stage(stage: Stage, cfg, *, log: Callable[[str], None] = print, log_dir=None) -> StageResult:
    """Train ``stage`` under :class:`umsrep.recipe.TrainConfig` ``cfg``; returns its history and timings."""
    result = StageResult(stage.name, trainable_params=int(sum(np.prod(v.shape) for v in stage.variables)))
    stage.optimizer.build(stage.variables)
    train_step, eval_step = _steps(stage)
    writer = tf.summary.create_file_writer(str(log_dir)) if log_dir else None
    es, plateau = cfg.early_stopping, cfg.lr_schedule
    best, best_weights, since_best, since_plateau = math.inf, None, 0, 0
    t_start = time.perf_counter()
    train_iter = iter(stage.train_ds)
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        total = 0.0
        for _ in range(stage.steps_per_epoch):
            x, y = next(train_iter)
            total += float(train_step(x, y))
        loss = total / stage.steps_per_epoch
        val = _mean_loss(eval_step, stage.val_ds, stage.val_steps) if stage.val_ds is not None else None
        lr = float(keras.ops.convert_to_numpy(stage.optimizer.learning_rate))
        rec = {"epoch": epoch, "loss": loss, "val_loss": val, "lr": lr, "time_s": time.perf_counter() - t0}
        result.history.append(rec)
        if writer:
            with writer.as_default(step=epoch):
                tf.summary.scalar("loss", loss)
                if val is not None:
                    tf.summary.scalar("val_loss", val)
                tf.summary.scalar("learning_rate", lr)
        log(f"[{stage.name}] epoch {epoch}/{cfg.epochs}  loss {loss:.4f}"
            + (f"  val_loss {val:.4f}" if val is not None else "") + f"  lr {lr:.2e}  {rec['time_s']:.1f}s")
        monitored = val if val is not None else loss
        min_delta = es.min_delta if es else 0.0
        if monitored < best - min_delta:
            best, since_best, since_plateau = monitored, 0, 0
            result.best_epoch = epoch
            best_weights = stage.model.get_weights()  # incl. BatchNorm statistics
        else:
            since_best += 1
            since_plateau += 1
        if plateau.kind == "plateau" and since_plateau >= plateau.patience:
            new_lr = max(lr * plateau.factor, plateau.min_lr)
            if new_lr < lr:
                stage.optimizer.learning_rate.assign(new_lr)
                log(f"[{stage.name}] learning rate -> {new_lr:.2e}")
            since_plateau = 0
        result.epochs_run = epoch
        if es and since_best >= es.patience:
            result.stopped_early = True
            log(f"[{stage.name}] early stop at epoch {epoch} (best epoch {result.best_epoch})")
            break
    if es and es.restore_best and best_weights is not None:
        stage.model.set_weights(best_weights)
    if writer:
        writer.flush()
    result.wall_time_s = time.perf_counter() - t_start
    return result
