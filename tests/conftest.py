"""Shared test helpers: where the real (non-repository) data sets live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """The real-data folder: ``$UMSREP_DATA``, default ``../shared/data`` relative to the repository root."""
    env = os.environ.get("UMSREP_DATA")
    return Path(env).expanduser() if env else (REPO_ROOT.parent / "shared" / "data")


@pytest.fixture
def real_data() -> Path:
    """The real-data root; skips the test when it is absent."""
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root}; set UMSREP_DATA")
    return root
