"""Per-stage checkpoints written after every epoch, so ``umsrep fit --resume RUN_DIR`` continues a run.

A checkpoint is ``<run>/checkpoints/<stage>/``: ``arrays.npz`` (every variable of the stage's model — weights,
BatchNorm statistics, dropout seed-generator states — every optimizer variable incl. its step counter and
learning rate, the loss-weighting state, and the best weights kept for early stopping) and ``state.json`` (the
epoch, early-stopping / plateau counters, history, the number of batches each task stream has consumed, the
alternating schedule position). Both files are written atomically, arrays first; ``state.json`` names the
epoch of its arrays, so a crash between the two writes is detected and the older pair is never mixed with the
newer one. A finished stage keeps a final checkpoint (``done: true``) holding its final weights, and is restored
instead of retrained.

Input pipelines are deterministic streams (seeded shuffle, noise keyed by sample counter), so a resumed stage
skips the batches already consumed and sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from umsrep.errors import RunDirError
from umsrep.io import write_bytes, write_json


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


class Checkpoints:
    def __init__(self, root):
        self.root = Path(root)

    def _dir(self, stage):
        return self.root / _safe(stage)

    def save(self, stage: str, trainer, state: dict, best_weights=None, done: bool = False):
        d = self._dir(stage)
        d.mkdir(parents=True, exist_ok=True)
        arrays = {f"v{i}": np.asarray(v) for i, v in enumerate(_values(trainer.state_variables()))}
        for i, w in enumerate(best_weights or []):
            arrays[f"best{i}"] = np.asarray(w)
        arrays["epoch"] = np.asarray(state["epoch"])
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_bytes(d / "arrays.npz", buf.getvalue())
        write_json(d / "state.json", {**state, "done": done, "n_best": len(best_weights or []),
                                      "trainer": trainer.get_state()})

    def load(self, stage: str) -> Optional[dict]:
        d = self._dir(stage)
        if not (d / "state.json").is_file():
            return None
        try:
            state = json.loads((d / "state.json").read_text(encoding="utf-8"))
            with np.load(d / "arrays.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            if "epoch" not in arrays or not isinstance(state, dict) or "epoch" not in state:
                raise ValueError("incomplete")
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
            what = "arrays.npz" if not isinstance(e, json.JSONDecodeError) else "state.json"
            raise RunDirError(f"{d / what}: damaged checkpoint ({type(e).__name__}: {' '.join(str(e).split())}); "
                              f"delete the folder {d} to train the {stage!r} stage again from its start, then "
                              f"resume") from None
        if int(arrays["epoch"]) != state["epoch"]:
            raise RunDirError(f"{d}: checkpoint arrays (epoch {int(arrays['epoch'])}) and state.json "
                              f"(epoch {state['epoch']}) disagree; the run was interrupted while writing it")
        n_vars = sum(1 for k in arrays if k.startswith("v"))
        state["values"] = [arrays[f"v{i}"] for i in range(n_vars)]
        state["best_weights"] = [arrays[f"best{i}"] for i in range(state["n_best"])] or None
        return state

    def restore(self, stage: str, trainer, state: dict):
        variables = trainer.state_variables()
        if len(variables) != len(state["values"]):
            raise RunDirError(f"{self._dir(stage)}: checkpoint holds {len(state['values'])} variables, the model "
                              f"{len(variables)}; the recipe or umsrep version changed since it was written")
        for v, value in zip(variables, state["values"]):
            if tuple(v.shape) != value.shape:
                raise RunDirError(f"{self._dir(stage)}: variable {getattr(v, 'path', v.name)} has shape "
                                  f"{tuple(v.shape)}, checkpoint {value.shape}")
            v.assign(value)
        trainer.set_state(state["trainer"])


def _values(variables):
    return [v.numpy() for v in variables]
