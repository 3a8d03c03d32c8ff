"""Real-data runs of the shipped recipes, shortened. Slow: run on purpose with `python -m pytest -m slow`."""

from __future__ import annotations

import json

import pytest

from umsrep.cli import main

from .conftest import REPO_ROOT

# these recipes start from the shipped pretrained encoders (128x128): only the heads train here
CASES = [("busi", ["lesion", "diagnosis"]), ("cxr_lung", ["lung"]), ("acdc", [])]


@pytest.mark.slow
@pytest.mark.parametrize("recipe,tasks", CASES, ids=[c[0] for c in CASES])
def test_shipped_recipe_short_run(recipe, tasks, real_data, tmp_path, monkeypatch):
    monkeypatch.setenv("UMSREP_DATA", str(real_data))
    args = ["fit", str(REPO_ROOT / "recipes" / f"{recipe}.yaml"), "--out", str(tmp_path / "run")]
    for t in tasks:
        args += ["--set", f"tasks.{t}.epochs=2"]
    if not tasks:  # joint strategy
        args += ["--set", "strategy.epochs=2"]
    assert main(args) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for t in tasks or list(m["tasks"]):
        key = "dice" if m["tasks"][t]["type"] == "segmentation" else "accuracy"
        assert 0.0 <= m["tasks"][t]["test"][key] <= 1.0
