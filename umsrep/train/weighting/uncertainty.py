"""``uncertainty`` (Kendall et al. 2018): ``sum_i exp(-s_i) L_i + s_i`` with learned log-variances ``s_i``."""

from __future__ import annotations

from typing import Literal

from umsrep.lazy import tf
from umsrep.registry import WEIGHTINGS
from umsrep.settings import WeightingSettings
from umsrep.train.weighting import Weighting


@WEIGHTINGS.register("uncertainty")
class Uncertainty(Weighting):
    class Settings(WeightingSettings):
        method: Literal["uncertainty"] = "uncertainty"

    def __init__(self, tasks, cfg=None):
        super().__init__(tasks, cfg)
        self.log_var = tf.Variable(tf.zeros(len(self.tasks)), trainable=True, name="task_log_variance")

    @property
    def trainable_variables(self):
        return [self.log_var]

    def weights(self):
        return tf.exp(-self.log_var)

    def objective(self, losses):
        # the log-variance regulariser is per replica too: losses arrive divided by the replica count
        n = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        return tf.reduce_sum(tf.exp(-self.log_var) * losses + self.log_var / n)
