"""The training loop's concerns, one handler each, around :func:`umsrep.train.engine.run_stage`'s epoch loop.

A handler sees the stage (:class:`umsrep.train.engine.Stage`: the trainer, the stage's settings, the epoch, the
monitored losses, the history) at four points — ``on_stage_begin``, ``on_epoch_begin``, ``on_epoch_end`` (with the
epoch's record: losses, validation losses, learning rates) and ``on_stage_end`` — and keeps its own state through
``get_state`` / ``set_state`` (JSON, saved in the stage's checkpoints) and ``get_arrays`` / ``set_arrays``
(weights). They run in the order :func:`default_handlers` gives:

- :class:`~umsrep.train.handlers.tensorboard.TensorBoard`: the epoch record as scalars;
- :class:`~umsrep.train.handlers.lr_schedule.LRSchedule`: a learning-rate schedule per optimizer
  (``lr_schedule.kind``, :mod:`umsrep.train.schedules`);
- :class:`~umsrep.train.handlers.early_stopping.EarlyStopping`: best epoch, best weights, stopping;
- :class:`~umsrep.train.handlers.checkpointing.Checkpointing`: the per-epoch checkpoint (last: it saves what the
  others decided).
"""

from __future__ import annotations

from umsrep.train.handlers.base import Handler

__all__ = ["Handler", "default_handlers"]


def default_handlers(cfg, *, log_dir=None, checkpoints=None) -> list:
    """The handlers of a stage trained under :class:`umsrep.settings.TrainConfig` ``cfg``."""
    from umsrep.train.handlers.checkpointing import Checkpointing
    from umsrep.train.handlers.early_stopping import EarlyStopping
    from umsrep.train.handlers.lr_schedule import LRSchedule
    from umsrep.train.handlers.tensorboard import TensorBoard

    es = cfg.early_stopping
    out = [TensorBoard(log_dir)] if log_dir else []
    from umsrep.registry import SCHEDULES

    planned = SCHEDULES.get(cfg.lr_schedule.kind).planned_decay
    out += [LRSchedule(cfg.lr_schedule, min_delta=es.min_delta if es else 0.0),
            EarlyStopping(es, planned_decay=planned)]
    if checkpoints is not None:
        out.append(Checkpointing(checkpoints))
    return out
