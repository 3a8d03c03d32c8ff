"""A run directory: the one place that knows its file names. Every file is written atomically."""

from __future__ import annotations

import json
import time
from pathlib import Path

from umsrep.errors import RunDirError
from umsrep.io import write_json, write_text


class RunDir:
    RECIPE, RUN, SPLITS, METRICS, REPORT = "recipe.yaml", "run.json", "splits.json", "metrics.json", "report.md"
    MODEL, ENCODER_DIR, LOGS, CHECKPOINTS = "model.keras", "encoder", "logs", "checkpoints"
    HTML = "report.html"

    def __init__(self, path):
        self.path = Path(path)

    @classmethod
    def create(cls, parent, name, out=None) -> "RunDir":
        """``out`` if given (must be new or empty: an existing run is never overwritten), else
        ``parent/<name>-<timestamp>``."""
        if out is not None:
            path = Path(out)
            if path.exists() and any(path.iterdir()):
                raise RunDirError(f"{path}: output folder exists and is not empty (choose a new --out)")
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = Path(parent) / f"{name}-{stamp}"
            k = 1
            while path.exists():
                path = Path(parent) / f"{name}-{stamp}-{k}"
                k += 1
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def open(cls, path) -> "RunDir":
        rd = cls(path)
        for f in (cls.RUN, cls.RECIPE):
            if not (rd.path / f).is_file():
                raise RunDirError(f"{rd.path}: not a umsrep run directory (missing {f})")
        return rd

    def __truediv__(self, name):
        return self.path / name

    def write_json(self, name, obj):
        return write_json(self.path / name, obj)

    def write_text(self, name, text):
        return write_text(self.path / name, text)

    def read_json(self, name):
        p = self.path / name
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            raise RunDirError(f"{p}: missing (was the run completed?)") from None
        except json.JSONDecodeError as e:
            raise RunDirError(f"{p}: invalid JSON ({e.msg} at line {e.lineno})") from None

    @property
    def is_complete(self) -> bool:
        """True when ``run.json`` exists and says the run finished (``status: complete``)."""
        return (self.path / self.RUN).is_file() and self.read_json(self.RUN).get("status") == "complete"

    def require_model(self):
        """The trained model's path, or a one-line error saying why there is none."""
        if self.model_path.is_file():
            return self.model_path
        if (self.path / self.RUN).is_file() and self.read_json(self.RUN).get("kind") == "cross_validation":
            raise RunDirError(f"{self.path}: a cross-validation run has one model per fold; give a fold folder "
                              f"({self.path / 'fold0'}, ...)")
        raise RunDirError(f"{self.model_path}: missing (the run did not finish training)")

    @property
    def model_path(self):
        return self.path / self.MODEL

    @property
    def encoder_dir(self):
        return self.path / self.ENCODER_DIR
