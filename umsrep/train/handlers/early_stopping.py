"""Early stopping: the best epoch by the monitored value, its weights (restored at the end with
``restore_best``), and the stop after ``patience`` epochs without an improvement by more than ``min_delta``.

Without ``early_stopping`` in the recipe the best epoch is still tracked (reported), but training never stops
early and the last weights are kept. The monitored value is :meth:`value`: the stage's monitored validation loss
(lower is better), or with ``monitor: metric`` its validation metric (:meth:`umsrep.train.engine.Stage.
monitored_metric`: Dice / MCC, higher is better; the loss for a stage without one, e.g. the denoising
representation). ``min_epochs``: no stop before that epoch.
"""

from __future__ import annotations

import math

from umsrep.train.handlers.base import Handler


class EarlyStopping(Handler):
    name = "early_stopping"

    def __init__(self, cfg, mode: str = "min", min_epochs: int = 0, planned_decay: bool = False):
        self.cfg = cfg
        self.planned_decay = planned_decay  # the stage's schedule lowers the rate by plan (cosine, poly)
        self.sign = 1.0 if mode == "min" else -1.0
        self.min_epochs = max(min_epochs, getattr(cfg, "min_epochs", 0) or 0)
        self.use_metric = getattr(cfg, "monitor", "loss") == "metric"
        self.best, self.since_best, self.best_epoch, self.stopped_early = math.inf, 0, 0, False
        self.best_weights = None

    def value(self, stage, record) -> float:
        """The value to minimise: the monitored loss, or minus the monitored metric (``monitor: metric``)."""
        if self.use_metric:
            m = stage.monitored_metric()
            if m is not None:
                return -m
        return self.sign * stage.monitored()

    def on_epoch_end(self, stage, record):
        v = self.value(stage, record)
        if v < self.best - (self.cfg.min_delta if self.cfg else 0.0):
            self.best, self.since_best, self.best_epoch = v, 0, record["epoch"]
            self.best_weights = stage.trainer.model.get_weights()  # incl. BatchNorm statistics
        else:
            self.since_best += 1
        if self.cfg and self.since_best >= self.cfg.patience and record["epoch"] >= self.min_epochs:
            self.stopped_early = stage.stop = True
            stage.log(f"[{stage.name}] early stop at epoch {record['epoch']} (best epoch {self.best_epoch})"
                      + (_rate_left(stage.history, record) if self.planned_decay else ""))

    def on_stage_end(self, stage):
        if self.cfg and self.cfg.restore_best and self.best_weights is not None:
            stage.trainer.model.set_weights(self.best_weights)

    def get_state(self):
        return {"best": None if math.isinf(self.best) else self.best, "since_best": self.since_best,
                "best_epoch": self.best_epoch, "stopped_early": self.stopped_early}

    def set_state(self, state):
        self.best = math.inf if state["best"] is None else state["best"]
        self.since_best, self.best_epoch = int(state["since_best"]), int(state["best_epoch"])
        self.stopped_early = bool(state["stopped_early"])

    def get_arrays(self):
        return list(self.best_weights or [])

    def set_arrays(self, arrays):
        self.best_weights = list(arrays) or None


def _rate_left(history, record) -> str:
    """A note when a planned decay of the learning rate is stopped with much of it left (still >= 1/4 of its peak,
    and below it): a long cosine schedule cut off early never reaches the low rates where it gains most (ACDC, 80
    epochs: docs/results.md). Empty when every rate is at its peak (warm-up, constant) or already low. With several
    optimizers (``lr/<name>``), the one with the most left."""
    left = []
    for key in [k for k in record if k == "lr" or k.startswith("lr/")]:
        now = record.get(key)
        peak = max([r.get(key) or 0.0 for r in history] + [now or 0.0])
        if now is not None and peak > 0 and 0.25 * peak <= now < 0.99 * peak:
            left.append(now / peak)
    if not left:
        return ""
    return (f"; the learning rate was still {max(left):.0%} of its peak — early_stopping.min_epochs keeps "
            "a decaying schedule running")
