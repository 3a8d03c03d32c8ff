"""The base of the epoch loop's handlers (see :mod:`umsrep.train.handlers`)."""

from __future__ import annotations


class Handler:
    name = "handler"

    def on_stage_begin(self, stage):
        pass

    def on_epoch_begin(self, stage, epoch: int):
        pass

    def on_epoch_end(self, stage, record: dict):
        pass

    def on_stage_end(self, stage):
        pass

    def get_state(self) -> dict:
        return {}

    def set_state(self, state: dict):
        pass

    def get_arrays(self) -> list:
        return []

    def set_arrays(self, arrays: list):
        pass
