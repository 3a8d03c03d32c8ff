"""bench/ums_vs_baseline.py builds its recipes from the shipped ones: for each data set they must be valid recipes
with the k tasks in order, a trained denoising-autoencoder representation (the baseline rebuilds it), the
`independent` strategy with the baseline, and one-vs-rest tasks whose label maps cover every class. No training,
no TensorFlow."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import yaml

from umsrep.recipe import parse_recipe

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def uvb():
    sys.path.insert(0, str(BENCH))
    try:
        import ums_vs_baseline
        yield ums_vs_baseline
    finally:
        sys.path.remove(str(BENCH))


EXPECTED = {
    "busi": ["lesion", "diagnosis", "malignant_vs_rest", "normal_vs_rest"],
    "acdc": ["heart", "diagnosis", "dcm_vs_rest", "hcm_vs_rest"],
}


@pytest.mark.parametrize("data", sorted(EXPECTED))
def test_each_k_is_a_valid_recipe_with_the_first_k_tasks(uvb, data):
    base = uvb.base_recipe(data)
    a = types.SimpleNamespace(data=data, epochs=3, size=64, quick=False)
    for k in (1, 2, 3, 4):
        raw = uvb.build_recipe(base, k, a)
        assert list(raw["tasks"]) == EXPECTED[data][:k]
        assert "patient" not in raw and "derive" not in raw   # they name tasks a small k lacks
        recipe = parse_recipe(yaml.safe_load(yaml.safe_dump(raw)), source=f"{data} k={k}")
        assert recipe.representation.kind == "denoising_autoencoder"
        assert recipe.baseline is True and recipe.strategy.kind == "independent"
        assert tuple(recipe.data.image_size) == (64, 64)
        # BUSI keeps the run names it had before --data existed, so its old run folders are reused
        assert recipe.name == {"busi": f"ums_vs_baseline_k{k}", "acdc": f"ums_vs_baseline_k{k}_acdc"}[data]
        assert all(t.epochs == 3 for t in recipe.tasks.values())


@pytest.mark.parametrize("data", sorted(EXPECTED))
def test_one_vs_rest_tasks_map_every_class(uvb, data):
    base = uvb.base_recipe(data)
    specs = dict(uvb.task_specs(base, data))
    source = base["tasks"][uvb.DATASETS[data]["classification"]]["classes"]
    for one in uvb.DATASETS[data]["vs_rest"]:
        t = specs[f"{one.lower()}_vs_rest"]
        assert t["classes"] == [one, "rest"]
        assert set(t["label_map"]) == set(source)
        assert [c for c, v in t["label_map"].items() if v == one] == [one]
        assert all(v in (one, "rest") for v in t["label_map"].values())
