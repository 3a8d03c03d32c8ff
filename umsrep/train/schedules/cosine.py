"""``lr_schedule: {kind: cosine}``: linear warm-up over ``warmup_epochs``, then cosine decay from the optimizer's
learning rate to ``min_lr`` at the stage's last epoch (set per epoch)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from umsrep.registry import SCHEDULES
from umsrep.settings import ScheduleSettings
from umsrep.train.schedules import Schedule, warmup_factor


@SCHEDULES.register("cosine")
class Cosine(Schedule):
    planned_decay = True

    class Settings(ScheduleSettings):
        kind: Literal["cosine"] = "cosine"
        warmup_epochs: int = Field(0, ge=0, description="linear warm-up from lr / (warmup_epochs + 1)")
        min_lr: float = Field(0.0, ge=0, description="learning rate at the last epoch")

    def on_epoch_begin(self, epoch, lr):
        w = self.settings.warmup_epochs
        if epoch <= w:
            return self.initial_lr * warmup_factor(epoch, w)
        t = (epoch - w - 1) / max(1, self.epochs - w - 1)
        lo = min(self.settings.min_lr, self.initial_lr)
        return lo + 0.5 * (self.initial_lr - lo) * (1 + math.cos(math.pi * min(t, 1.0)))
