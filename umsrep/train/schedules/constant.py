"""``lr_schedule: {kind: constant}``: the optimizer's learning rate throughout."""

from __future__ import annotations

from typing import Literal

from umsrep.registry import SCHEDULES
from umsrep.settings import ScheduleSettings
from umsrep.train.schedules import Schedule


@SCHEDULES.register("constant")
class Constant(Schedule):
    class Settings(ScheduleSettings):
        kind: Literal["constant"] = "constant"
