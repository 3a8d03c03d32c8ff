"""``strategy.kind: joint``: one batch of every task per step, one optimizer (``strategy.optimizer``) over the
encoder and all heads, the per-task losses combined by ``strategy.weighting`` (:mod:`umsrep.train.weighting`)."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import BeforeValidator, Field, SerializeAsAny

from umsrep.lazy import tf
from umsrep.registry import STRATEGIES, WEIGHTINGS, settings_validator
from umsrep.settings import StrategySettings, WeightingSettings
from umsrep.train.engine import Trainer, _scaled_loss, _unique
from umsrep.train.strategies import Strategy

# fields every weighting of older recipes repeated, with their unused values
_LEGACY_WEIGHTING = {"alpha": 1.5, "learning_rate": 0.025, "temperature": 2.0}

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




def _default_weighting():
    return WEIGHTINGS.get("fixed").Settings()


def shared_batches(ctx):
    """Joint training's one-batch-for-all-tasks stream, when every task is labelled on the same training images
    with the same batch size and augmentation (else None: a batch per task)."""
    from umsrep.data import pipeline
    from umsrep.transforms import augmentation

    names = [s.name for s in ctx.streams]
    recipe, tasks = ctx.recipe, ctx.tasks
    first = tasks[names[0]]
    same = all(tasks[n].source is first.source and np.array_equal(tasks[n].index["train"], first.index["train"])
               and recipe.tasks[n].batch_size == recipe.tasks[names[0]].batch_size
               and recipe.task_data(n).augment.model_dump() == recipe.task_data(names[0]).augment.model_dump()
               for n in names[1:])
    if len(names) < 2 or not same:
        return None
    x_tr = first.arrays("train")[0]
    ys = {n: tasks[n].arrays("train")[1] for n in names}
    return pipeline.train_dataset(x_tr, ys, batch_size=recipe.tasks[names[0]].batch_size, seed=recipe.seed + 7,
                                  map_fn=augmentation(recipe.task_data(names[0]).augment))


@STRATEGIES.register("joint")
class JointStrategy(Strategy):
    supports_mixed_float16 = False   # the weighting methods do no loss scaling

    class Settings(StrategySettings):
        weighting: Annotated[SerializeAsAny[WeightingSettings],
                             BeforeValidator(settings_validator(WEIGHTINGS, "fixed", _LEGACY_WEIGHTING))] = Field(
            default_factory=_default_weighting, description="joint: loss weighting by method "
                                                            "(umsrep/train/weighting/)")

    def fine_tune(self, ctx):
        from umsrep.train.engine import make_optimizer
        from umsrep.train.weighting import make_weighting

        model = self.shared_model(ctx)
        weighting = make_weighting(self.settings.weighting, [s.name for s in ctx.streams])
        shared = shared_batches(ctx)
        trainer = Joint(ctx.name, ctx.streams, ctx.encoder.trainable_variables, make_optimizer(self.settings.optimizer),
                        weighting, model, strategy=ctx.distribute, shared_batches=shared)
        ctx.log(f"joint training, weighting {self.settings.weighting.method!r}"
                + (", one batch of shared images for all tasks per step" if shared is not None else
                   ", one batch per task per step (tasks labelled on different images)"))
        self.run_together(ctx, trainer, model)
