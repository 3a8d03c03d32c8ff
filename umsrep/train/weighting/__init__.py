"""Loss weighting for the ``joint`` strategy, one file per method, looked up by
name in :data:`umsrep.registry.WEIGHTINGS`.

A weighting turns the per-task losses of one joint step into gradients for the shared (encoder) variables
and the task (head) variables. The simple methods weight the losses and take one gradient of the sum; the
gradient-based methods take one gradient per task from a persistent tape:

- ``fixed``: ``sum_i w_i L_i`` with weights from the recipe (default 1 each);
- ``uncertainty`` (Kendall et al. 2018): ``sum_i exp(-s_i) L_i + s_i`` with learned log-variances ``s_i``
  (trained by the same optimizer as the model); the effective weight is ``exp(-s_i)``;
- ``dwa`` (dynamic weight average, Liu et al. 2019): ``w_i = T softmax_i(r_i / temperature)`` with
  ``r_i = L_i(e-1) / L_i(e-2)`` the ratio of the task's mean training losses of the last two epochs;
- ``gradnorm`` (Chen et al. 2018): weights updated every step so the weighted tasks' gradient norms at the
  last shared layer follow ``mean norm * (relative inverse training rate) ** alpha``, renormalised to sum T;
- ``pcgrad`` (Yu et al. 2020): each task's gradient on the shared variables loses its component along any
  other task gradient it conflicts with (negative dot product), then they are summed.

Weights are ``tf.Variable``s read inside the compiled step, so changing them never retraces; every method
reports its current weights for the logs. Everything here runs inside a replica context of a
``tf.distribute`` strategy (losses arrive already scaled by the number of replicas).

A method is a :class:`Weighting` subclass registered under its name, with a ``Settings`` class (subclassing
:class:`umsrep.settings.WeightingSettings`) declaring the ``strategy.weighting`` fields it reads. Adding one is
one file here (and its test)::

    @WEIGHTINGS.register("equal")
    class Equal(Weighting):
        class Settings(WeightingSettings):
            method: Literal["equal"] = "equal"

        def objective(self, losses):
            return tf.reduce_mean(losses) * len(self.tasks)
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np

from umsrep.lazy import tf
from umsrep.registry import WEIGHTINGS


def _state(value, name, dtype=None):
    """A non-trained state variable that every replica updates to the same value (default float32)."""
    return tf.Variable(value, dtype=dtype or tf.float32, trainable=False, name=name,
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


class Weighting:
    """Base: a fixed vector of task weights (``tf.Variable``, not trained by the model's optimizer)."""

    Settings = None   # each method: a umsrep.settings.WeightingSettings subclass

    per_task_gradients = False

    def __init__(self, tasks: List[str], cfg=None):
        self.tasks = list(tasks)
        self.cfg = cfg if cfg is not None else self.Settings()
        init = [float((self.cfg.weights or {}).get(t, 1.0)) for t in self.tasks]
        self.w = _state(init, "task_weights")

    # -- what the joint trainer calls ------------------------------------------------------------
    @property
    def trainable_variables(self) -> list:
        """Extra variables the model's optimizer trains with the network (uncertainty's log-variances)."""
        return []

    def build(self, shared_variables, task_variables: Dict[str, list]):
        """Called once before the first step with the encoder's and each head's trainable variables."""

    def weights(self):
        """Current effective weight per task, a float32 vector in ``self.tasks`` order."""
        return tf.identity(self.w)

    def objective(self, losses):
        """Scalar to minimise from the per-task loss vector (methods with one gradient)."""
        return tf.reduce_sum(self.w * losses)

    def gradients(self, tape, losses, objective, shared, task_vars: Dict[str, list], extra: list):
        """Gradients for ``shared + [head vars in task order] + extra``.

        ``losses`` are the per-task scalar losses and ``objective`` = :meth:`objective` of their stack, both
        computed inside ``tape`` (persistent when :attr:`per_task_gradients`).
        """
        variables = shared + [v for t in self.tasks for v in task_vars[t]] + extra
        return tape.gradient(objective, variables)

    def on_epoch_end(self, mean_losses: Dict[str, float]):
        """Called after each epoch with every task's mean raw training loss."""

    # -- checkpointing ---------------------------------------------------------------------------
    def state_variables(self) -> list:
        """Every variable of the method (trained or not), saved in checkpoints."""
        return [self.w] + self.trainable_variables

    def get_state(self) -> dict:
        return {}

    def set_state(self, state: dict):
        pass

    def state(self) -> dict:
        return {t: float(w) for t, w in zip(self.tasks, self.weights().numpy())}

    def monitor_weights(self) -> dict:
        """How much each task counts in the monitored validation loss (early stopping, LR plateau): equally
        (``{}``) for methods whose weights move every epoch."""
        return {}


def _flat(grads, variables):
    return tf.concat([tf.reshape(g if g is not None else tf.zeros_like(v), [-1]) for g, v in zip(grads, variables)],
                     axis=0)


def _unflat(vec, variables):
    out, i = [], 0
    for v in variables:
        n = int(np.prod(v.shape))
        out.append(tf.reshape(vec[i:i + n], v.shape))
        i += n
    return out


def pcgrad_project(grads):
    """PCGrad on a (T, P) matrix of flattened task gradients -> the (T, P) projected gradients.

    Each task's gradient is projected, in turn, onto the normal plane of every other task's *original*
    gradient it conflicts with (fixed order j = 0..T-1, skipping itself), as in Yu et al. 2020.
    """
    grads = tf.convert_to_tensor(grads, tf.float32)
    t = grads.shape[0]
    out = []
    for i in range(t):
        g = grads[i]
        for j in range(t):
            if j == i:
                continue
            gj = grads[j]
            dot = tf.reduce_sum(g * gj)
            g = tf.where(dot < 0, g - dot / (tf.reduce_sum(gj * gj) + 1e-12) * gj, g)
        out.append(g)
    return tf.stack(out)


class _PerTask(Weighting):
    per_task_gradients = True

    def _head_grads(self, tape, objective, task_vars):
        # head i only sees L_i, so d objective / d head_i = w_i dL_i / d head_i
        head_vars = [v for t in self.tasks for v in task_vars[t]]
        return list(tape.gradient(objective, head_vars)) if head_vars else []


def weighting_settings(method: str = "fixed", **fields):
    """The validated ``strategy.weighting`` settings of ``method`` (its ``Settings`` class)."""
    return WEIGHTINGS.get(method).Settings(**fields)


def make_weighting(cfg, tasks) -> Weighting:
    """The weighting method ``cfg.method`` (its ``Settings``) for ``tasks``."""
    return WEIGHTINGS.get(cfg.method)(list(tasks), cfg)
