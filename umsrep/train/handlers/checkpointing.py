"""Per-epoch checkpoints of a stage (:class:`umsrep.train.checkpoint.Checkpoints`): after every epoch but the last
and a stopping one, and a final one (``done``) when the stage ends — so ``fit --resume`` continues exactly."""

from __future__ import annotations

from umsrep.train.handlers.base import Handler


class Checkpointing(Handler):
    name = "checkpointing"

    def __init__(self, checkpoints):
        self.checkpoints = checkpoints

    def on_epoch_end(self, stage, record):
        if not stage.stop and record["epoch"] < stage.cfg.epochs:
            self.checkpoints.save(stage.name, stage.trainer, stage.get_state(), stage.get_arrays())

    def on_stage_end(self, stage):
        self.checkpoints.save(stage.name, stage.trainer, stage.get_state(), done=True)
