"""Where the shared real data lives: one helper for recipes, benchmarks and tests."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA = "../shared/data"


def data_root() -> Path:
    """``$UMSREP_DATA`` if set, else ``../shared/data`` from the CWD, else from the repository root."""
    env = os.environ.get("UMSREP_DATA")
    if env:
        return Path(env).expanduser().resolve()
    cwd = (Path.cwd() / DEFAULT_DATA).resolve()
    if cwd.exists():
        return cwd
    return (Path(__file__).resolve().parents[1] / DEFAULT_DATA).resolve()
