"""A run directory: the one place that knows its file names. Every file is written atomically."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from umsrep.errors import DataError, RunDirError
from umsrep.io import path_text, read_text, write_json, write_text


class RunDir:
    RECIPE, RUN, SPLITS, METRICS, REPORT = "recipe.yaml", "run.json", "splits.json", "metrics.json", "report.md"
    MODEL, ENCODER_DIR, LOGS, CHECKPOINTS = "model.keras", "encoder", "logs", "checkpoints"
    HTML, LOCK, SPLIT_FILE = "report.html", ".umsrep.lock", "split.csv"

    def __init__(self, path):
        self.path = Path(path)
        self._lock_fd = None

    @classmethod
    def create(cls, parent, name, out=None, adopt=()) -> "RunDir":
        """``out`` if given (must be new or empty: an existing run is never overwritten), else
        ``parent/<name>-<timestamp>``. ``adopt``: sub-run folder names ``out`` may already hold, each a complete
        run (a seeds or cross-validation run keeps them after checking their recipes). Claimed atomically and
        returned locked (:meth:`lock`): of two runs started at the same moment on the same folder, one gets it and
        the other a one-line error."""
        if out is not None:
            path = Path(out)
            if path.exists() and not path.is_dir():
                raise RunDirError(f"{path_text(path)}: exists and is not a folder (choose a new --out)")
            if path.is_dir() and any(path.iterdir()):
                held = list(path.iterdir())
                if not all(p.name in adopt and p.is_dir() and cls(p).is_complete for p in held):
                    raise RunDirError(cls(path).occupied_message())
            path.mkdir(parents=True, exist_ok=True)
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            Path(parent).mkdir(parents=True, exist_ok=True)
            path, k = Path(parent) / f"{name}-{stamp}", 0
            while True:
                try:
                    path.mkdir()  # no exist_ok: a folder another run just made is never shared
                    break
                except FileExistsError:
                    k += 1
                    path = Path(parent) / f"{name}-{stamp}-{k}"
        rd = cls(path)
        try:  # the claim: exactly one process creates the lock file of a new run
            fd = os.open(path / cls.LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            raise RunDirError(f"{path_text(path)}: another umsrep run claimed this folder at the same moment "
                              f"(two runs never share one; choose a new --out)") from None
        os.close(fd)
        rd.lock()
        return rd

    # -- lock and status ------------------------------------------------------------------------------------------
    def lock(self) -> "RunDir":
        """Hold ``.umsrep.lock`` (an OS file lock, released when the process ends) while this process writes the run;
        a second process (a concurrent ``--resume``) is refused with one line."""
        if self._lock_fd is not None:
            return self
        fd = os.open(self.path / self.LOCK, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            import fcntl
        except ImportError:  # pragma: no cover  (no advisory locks on this platform: the claim file still holds)
            self._lock_fd = fd
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunDirError(f"{path_text(self.path)}: in use by another umsrep process (it holds "
                              f"{self.LOCK}); wait for it to end") from None
        self._lock_fd = fd
        return self

    def __del__(self):
        self.unlock()

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None

    def status(self):
        """``(status, reason)`` from run.json, or ``(None, None)`` when it has none or cannot be read."""
        try:
            meta = self.read_json(self.RUN) if (self.path / self.RUN).is_file() else {}
        except RunDirError:
            return None, None
        return meta.get("status"), meta.get("reason")

    def describe_state(self) -> str:
        status, reason = self.status()
        if status is None:
            return "holds files but no umsrep run"
        if status == "complete":
            return "holds a complete umsrep run"
        if status == "failed":
            return f"holds a umsrep run that stopped on an error ({reason})"
        if status == "interrupted":
            return "holds a umsrep run that was interrupted"
        return f"holds a umsrep run with status {status!r} (killed while training, or still running)"

    def occupied_message(self) -> str:
        status, _ = self.status()
        hint = ("continue it with `umsrep fit --resume " + path_text(self.path) + "` or choose a new --out"
                if status not in (None, "complete") else "choose a new --out")
        return f"{path_text(self.path)}: output folder exists and is not empty: it {self.describe_state()}; {hint}"

    def mark(self, status: str, reason=None) -> None:
        """Set run.json's status (and reason) — best effort: a full disk must not hide the original error."""
        try:
            meta = self.read_json(self.RUN) if (self.path / self.RUN).is_file() else {}
        except RunDirError:
            meta = {}
        meta = {k: v for k, v in meta.items() if k not in ("status", "reason", "stopped")}
        meta["status"] = status
        if reason is not None:
            meta.update(reason=reason, stopped=time.strftime("%Y-%m-%dT%H:%M:%S"))
        try:
            self.write_json(self.RUN, meta)
        except OSError:
            pass

    @classmethod
    def open(cls, path) -> "RunDir":
        rd = cls(path)
        if rd.path.exists() and not rd.path.is_dir():
            raise RunDirError(f"{path_text(rd.path)}: not a umsrep run directory (it is a file)")
        for f in (cls.RUN, cls.RECIPE):
            if not (rd.path / f).is_file():
                raise RunDirError(f"{path_text(rd.path)}: not a umsrep run directory (missing {f})")
        return rd

    def __truediv__(self, name):
        return self.path / name

    def write_json(self, name, obj):
        return write_json(self.path / name, obj)

    def write_text(self, name, text):
        return write_text(self.path / name, text)

    def read_json(self, name):
        p = self.path / name
        if not p.exists():
            raise RunDirError(f"{path_text(p)}: missing (was the run completed?)")
        try:
            return json.loads(read_text(p, "JSON file"))
        except DataError as e:
            raise RunDirError(str(e)) from None
        except json.JSONDecodeError as e:
            raise RunDirError(f"{path_text(p)}: invalid JSON ({e.msg} at line {e.lineno})") from None

    @property
    def is_complete(self) -> bool:
        """True when ``run.json`` exists and says the run finished (``status: complete``)."""
        if not (self.path / self.RUN).is_file():
            return False
        meta = self.read_json(self.RUN)
        if not isinstance(meta, dict):
            raise RunDirError(f"{path_text(self.path / self.RUN)}: not a umsrep run.json (expected a JSON object)")
        return meta.get("status") == "complete"

    def require_model(self):
        """The trained model's path, or a one-line error saying why there is none."""
        if self.model_path.is_file():
            return self.model_path
        kind = self.read_json(self.RUN).get("kind") if (self.path / self.RUN).is_file() else None
        if kind == "cross_validation":
            raise RunDirError(f"{self.path}: a cross-validation run has one model per fold; give a fold folder "
                              f"({self.path / 'fold0'}, ...)")
        if kind == "seeds":
            seed = self.read_json(self.RUN).get("seeds", [0])[0]
            raise RunDirError(f"{self.path}: a run over several training seeds has one model per seed; give a seed "
                              f"folder ({self.path / f'seed{seed}'}, ...)")
        raise RunDirError(f"{self.model_path}: missing (the run did not finish training)")

    @property
    def model_path(self):
        return self.path / self.MODEL

    @property
    def encoder_dir(self):
        return self.path / self.ENCODER_DIR
