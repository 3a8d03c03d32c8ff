"""``lr_schedule: {kind: poly}``: linear warm-up over ``warmup_epochs``, then polynomial decay
``lr * (1 - t) ** power`` over the remaining epochs (nnU-Net's schedule: power 0.9), never below ``min_lr``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from umsrep.registry import SCHEDULES
from umsrep.settings import ScheduleSettings
from umsrep.train.schedules import Schedule, warmup_factor


@SCHEDULES.register("poly")
class Poly(Schedule):
    planned_decay = True

    class Settings(ScheduleSettings):
        kind: Literal["poly"] = "poly"
        power: float = Field(0.9, gt=0)
        warmup_epochs: int = Field(0, ge=0, description="linear warm-up from lr / (warmup_epochs + 1)")
        min_lr: float = Field(0.0, ge=0)

    def on_epoch_begin(self, epoch, lr):
        w = self.settings.warmup_epochs
        if epoch <= w:
            return self.initial_lr * warmup_factor(epoch, w)
        t = (epoch - w - 1) / max(1, self.epochs - w)
        return max(self.settings.min_lr, self.initial_lr * (1 - min(t, 1.0)) ** self.settings.power)
