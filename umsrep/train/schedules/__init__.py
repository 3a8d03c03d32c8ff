"""Learning-rate schedules (``lr_schedule: {kind: ...}`` of any training section), one file per kind.

A schedule is a class registered in :data:`umsrep.registry.SCHEDULES` with a ``Settings`` class (its recipe
fields, subclassing :class:`umsrep.settings.ScheduleSettings`). The learning-rate handler
(:mod:`umsrep.train.handlers.lr_schedule`) makes one instance per optimizer of a stage and asks it, at the start
and the end of every epoch, for a new learning rate. Adding a kind is one file here (and its test)::

    @SCHEDULES.register("step")
    class Step(Schedule):
        planned_decay = True  # the rate falls by plan (not in answer to the validation loss)

        class Settings(ScheduleSettings):
            kind: Literal["step"] = "step"
            every: int = Field(10, ge=1)

        def on_epoch_begin(self, epoch, lr):
            return self.initial_lr * 0.1 ** ((epoch - 1) // self.settings.every)
"""

from __future__ import annotations

from typing import Optional


class Schedule:
    """Base: keeps the learning rate (``None`` = no change). ``epochs``: the stage's epochs; ``initial_lr``: the
    optimizer's learning rate before the first epoch. Whatever it must remember across epochs goes through
    :meth:`get_state` / :meth:`set_state` (saved in the stage's checkpoints, so a resumed run continues it).
    ``planned_decay``: the rate falls by plan over the stage's epochs, not in answer to the validation loss (an
    early stop then cuts the plan short, and says so)."""

    planned_decay = False

    def __init__(self, settings, initial_lr: float, epochs: int, min_delta: float = 0.0):
        self.settings = settings
        self.initial_lr = float(initial_lr)
        self.epochs = int(epochs)
        self.min_delta = float(min_delta)

    def on_epoch_begin(self, epoch: int, lr: float) -> Optional[float]:
        """Learning rate for epoch ``epoch`` (1-based), or None to keep ``lr``."""
        return None

    def on_epoch_end(self, epoch: int, lr: float, monitored: float) -> Optional[float]:
        """After the epoch, with the monitored (validation) loss of the tasks this optimizer trains."""
        return None

    def get_state(self) -> dict:
        return {}

    def set_state(self, state: dict):
        pass


def warmup_factor(epoch: int, warmup_epochs: int) -> float:
    """Linear warm-up: epoch 1 of ``warmup_epochs`` runs at 1 / (warmup_epochs + 1) of the rate, rising by as much
    per epoch; after the warm-up the factor is 1."""
    return min(1.0, epoch / (warmup_epochs + 1))
