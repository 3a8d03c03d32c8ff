"""``gradnorm`` (Chen et al. 2018): task weights updated every step so the weighted gradient norms at the last
shared layer follow the tasks' relative inverse training rates."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from umsrep.lazy import tf
from umsrep.registry import WEIGHTINGS
from umsrep.settings import WeightingSettings
from umsrep.train.weighting import _PerTask, _state


@WEIGHTINGS.register("gradnorm")
class GradNorm(_PerTask):
    class Settings(WeightingSettings):
        method: Literal["gradnorm"] = "gradnorm"
        alpha: float = Field(1.5, ge=0, description="gradnorm: restoring-force asymmetry")
        learning_rate: float = Field(0.025, gt=0, description="gradnorm: learning rate of the task weights")

    def __init__(self, tasks, cfg=None):
        super().__init__(tasks, cfg)
        self.alpha = self.cfg.alpha
        self.lr = self.cfg.learning_rate
        self.total = float(tf.reduce_sum(self.w))
        self.initial = _state(tf.zeros(len(self.tasks)), "gradnorm_initial_loss")
        self.started = _state(False, "gradnorm_started", tf.bool)
        self.last_shared = None

    def state_variables(self):
        return [self.w, self.initial, self.started]

    def build(self, shared_variables, task_variables):
        # the last shared layer's kernel: the deepest >1-D shared variable
        kernels = [v for v in shared_variables if len(v.shape) > 1]
        self.last_shared = kernels[-1] if kernels else shared_variables[-1]

    def gradients(self, tape, losses, objective, shared, task_vars, extra):
        w = tf.identity(self.w)
        norms = tf.stack([tf.norm(tape.gradient(losses[i], self.last_shared)) for i in range(len(self.tasks))])
        losses = tf.stack(losses)
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            norms = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, norms)
            losses_all = ctx.all_reduce(tf.distribute.ReduceOp.SUM, losses)
        else:
            losses_all = losses
        losses_all = tf.stop_gradient(losses_all)
        self.initial.assign(tf.where(self.started, self.initial, losses_all))
        self.started.assign(True)
        weighted_norms = w * norms
        ratio = losses_all / tf.maximum(self.initial, 1e-12)
        rel = ratio / tf.reduce_mean(ratio)
        target = tf.stop_gradient(tf.reduce_mean(weighted_norms) * rel ** self.alpha)
        # d/dw_i sum_j |w_j g_j - target_j| = sign(w_i g_i - target_i) g_i
        grad_w = tf.sign(weighted_norms - target) * norms
        new_w = tf.maximum(w - self.lr * grad_w, 1e-3)
        grads = tape.gradient(objective, shared + [v for t in self.tasks for v in task_vars[t]])
        with tf.control_dependencies([g for g in grads if g is not None]):
            self.w.assign(new_w * self.total / tf.reduce_sum(new_w))
        return list(grads) + [None] * len(extra)
