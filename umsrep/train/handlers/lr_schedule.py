"""The learning rate of every optimizer of a stage, from a schedule of :mod:`umsrep.train.schedules`.

One schedule instance per optimizer; each sees the monitored validation loss of the tasks its optimizer trains
(:meth:`umsrep.train.engine.Stage.monitored`). A schedule may set the rate at the start of an epoch (warm-up,
decay) and after it (reduce on plateau); the change is logged.
"""

from __future__ import annotations

from umsrep.lazy import keras
from umsrep.registry import SCHEDULES
from umsrep.train.handlers.base import Handler


def get_lr(opt) -> float:
    return float(keras.ops.convert_to_numpy(opt.learning_rate))


class LRSchedule(Handler):
    name = "lr_schedule"

    def __init__(self, settings, min_delta: float = 0.0):
        self.settings = settings
        self.min_delta = min_delta
        self.schedules = {}

    def on_stage_begin(self, stage):
        cls = SCHEDULES.get(self.settings.kind)
        self.schedules = {k: cls(self.settings, get_lr(o), stage.cfg.epochs, self.min_delta)
                          for k, o in stage.trainer.optimizers.items()}

    def _apply(self, stage, k, new_lr):
        opt = stage.trainer.optimizers[k]
        if new_lr is not None and new_lr != get_lr(opt):
            opt.learning_rate.assign(new_lr)
            stage.log(f"[{stage.name}] learning rate ({k}) -> {new_lr:.2e}")

    def on_epoch_begin(self, stage, epoch):
        for k, s in self.schedules.items():
            self._apply(stage, k, s.on_epoch_begin(epoch, get_lr(stage.trainer.optimizers[k])))

    def on_epoch_end(self, stage, record):
        for k, s in self.schedules.items():
            m = stage.monitored(stage.trainer.optimizer_tasks(k))
            self._apply(stage, k, s.on_epoch_end(record["epoch"], get_lr(stage.trainer.optimizers[k]), m))

    def get_state(self):
        return {k: s.get_state() for k, s in self.schedules.items()}

    def set_state(self, state):
        for k, s in self.schedules.items():
            s.set_state(state[k])
