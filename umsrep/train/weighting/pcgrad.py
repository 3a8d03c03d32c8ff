"""``pcgrad`` (Yu et al. 2020): conflicting task gradients on the shared variables projected apart, then summed."""

from __future__ import annotations

from typing import Literal

from umsrep.lazy import tf
from umsrep.registry import WEIGHTINGS
from umsrep.settings import WeightingSettings
from umsrep.train.weighting import _flat, _PerTask, _unflat, pcgrad_project


@WEIGHTINGS.register("pcgrad")
class PCGrad(_PerTask):
    class Settings(WeightingSettings):
        method: Literal["pcgrad"] = "pcgrad"

    def gradients(self, tape, losses, objective, shared, task_vars, extra):
        flat = tf.stack([self.w[i] * _flat(tape.gradient(losses[i], shared), shared) for i in range(len(self.tasks))])
        projected = tf.reduce_sum(pcgrad_project(flat), axis=0)
        return _unflat(projected, shared) + self._head_grads(tape, objective, task_vars) + [None] * len(extra)
