"""``dwa`` (dynamic weight average, Liu et al. 2019): weights from the ratio of the last two epochs' losses."""

from __future__ import annotations

from typing import List, Literal

import numpy as np
from pydantic import Field

from umsrep.registry import WEIGHTINGS
from umsrep.settings import WeightingSettings
from umsrep.train.weighting import Weighting


@WEIGHTINGS.register("dwa")
class DynamicWeightAverage(Weighting):
    class Settings(WeightingSettings):
        method: Literal["dwa"] = "dwa"
        temperature: float = Field(2.0, gt=0, description="dwa: softmax temperature")

    def __init__(self, tasks, cfg=None):
        super().__init__(tasks, cfg)
        self.temperature = self.cfg.temperature
        self.history: List[np.ndarray] = []

    def get_state(self):
        return {"history": [h.tolist() for h in self.history]}

    def set_state(self, state):
        self.history = [np.asarray(h, np.float64) for h in state.get("history", [])]

    def on_epoch_end(self, mean_losses):
        self.history.append(np.array([mean_losses[t] for t in self.tasks], np.float64))
        if len(self.history) >= 2:
            r = self.history[-1] / np.maximum(self.history[-2], 1e-12)
            e = np.exp((r - r.max()) / self.temperature)
            self.w.assign((len(self.tasks) * e / e.sum()).astype(np.float32))
