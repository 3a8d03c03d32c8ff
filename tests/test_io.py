"""Atomic writes: a failed write never leaves a half-written file and keeps the previous content."""

from __future__ import annotations

import json
import os

import pytest

from umsrep.errors import RunDirError
from umsrep.io import write_json, write_text
from umsrep.rundir import RunDir


def test_write_replaces_and_keeps_permissions(tmp_path):
    p = write_text(tmp_path / "a" / "f.txt", "one")
    write_text(p, "two")
    assert p.read_text() == "two"
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(p).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert [f.name for f in p.parent.iterdir()] == ["f.txt"]


def test_failed_write_keeps_old_file(tmp_path):
    p = write_json(tmp_path / "m.json", {"ok": 1})
    with pytest.raises(TypeError):
        write_json(p, {"bad": object()})  # serialization fails half-way
    assert json.loads(p.read_text()) == {"ok": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["m.json"]  # no temporary left behind


def test_rundir_create_and_open(tmp_path):
    a = RunDir.create(tmp_path, "x")
    b = RunDir.create(tmp_path, "x")
    assert a.path != b.path and a.path.name.startswith("x-")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("k")
    with pytest.raises(RunDirError, match="exists and is not empty"):
        RunDir.create(tmp_path, "x", out=tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "k"
    with pytest.raises(RunDirError, match="not a umsrep run directory"):
        RunDir.open(tmp_path / "full")
