"""``lr_schedule: {kind: plateau}``: reduce-on-plateau — the learning rate times ``factor`` (not below ``min_lr``)
after ``patience`` epochs without an improvement of the monitored validation loss by more than the early-stopping
``min_delta``; the wait starts again after every reduction."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from umsrep.registry import SCHEDULES
from umsrep.settings import ScheduleSettings
from umsrep.train.schedules import Schedule


@SCHEDULES.register("plateau")
class Plateau(Schedule):
    class Settings(ScheduleSettings):
        kind: Literal["plateau"] = "plateau"
        factor: float = Field(0.5, gt=0, lt=1)
        patience: int = Field(3, ge=1)
        min_lr: float = Field(1e-6, ge=0)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.best, self.wait = math.inf, 0

    def on_epoch_end(self, epoch, lr, monitored):
        if monitored < self.best - self.min_delta:
            self.best, self.wait = monitored, 0
        else:
            self.wait += 1
        if self.wait >= self.settings.patience:
            self.wait = 0
            new_lr = max(lr * self.settings.factor, self.settings.min_lr)
            return new_lr if new_lr < lr else None
        return None

    def get_state(self):
        return {"best": None if math.isinf(self.best) else self.best, "wait": self.wait}

    def set_state(self, state):
        self.best = math.inf if state["best"] is None else state["best"]
        self.wait = int(state["wait"])
