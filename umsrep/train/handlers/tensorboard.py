"""TensorBoard scalars of every epoch record (losses, validation losses, learning rates, task weights)."""

from __future__ import annotations

from umsrep.lazy import tf
from umsrep.train.handlers.base import Handler


class TensorBoard(Handler):
    name = "tensorboard"

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.writer = None

    def on_epoch_end(self, stage, record):
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(str(self.log_dir))
        with self.writer.as_default(step=record["epoch"]):
            for k, v in record.items():
                if k not in ("epoch", "time_s") and isinstance(v, (int, float)):
                    tf.summary.scalar(k, v)

    def on_stage_end(self, stage):
        if self.writer is not None:
            self.writer.flush()
