"""bench/ums_vs_baseline.py builds its recipes from the shipped ones: for each data set they must be valid recipes
with the k tasks in order, a trained denoising-autoencoder representation (the baseline rebuilds it), the
`independent` strategy with the baseline, and one-vs-rest tasks whose label maps cover every class. No training,
no TensorFlow."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest
import yaml

from umsrep.recipe import parse_recipe

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _bench_module(name):
    """A bench/ script imported as a module (bench/ on sys.path only while the fixture lives)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def uvb():
    yield from _bench_module("ums_vs_baseline")


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


@pytest.fixture(scope="module")
def reuse():
    yield from _bench_module("reuse")


@pytest.mark.parametrize("case", ["cxr", "acdc"])
def test_reuse_arms_build_the_cards_architecture(reuse, case):
    """bench/reuse.py: the random-init arm rebuilds every architecture field of the shipped card (a card trained
    with two convolutions per level must not be compared against a one-conv network), the pretrained arms name
    the encoder; every arm is a valid recipe with the fraction and epochs asked for."""
    c = reuse.CASES[case]
    card = {"architecture": {"kind": "denoising_autoencoder", "filters": [8, 16, 32, 64], "kernel_size": 3,
                             "convs_per_level": 2, "decoder": "unet"},
            "preprocessing": {"image_size": [256, 256]}, "training": {"epochs_run": 7, "recipe": "r"}}
    base = yaml.safe_load((BENCH.parent / "recipes" / c["recipe"]).read_text())
    for arm in reuse.ARMS:
        raw = reuse.case_recipe(c, arm, 0.25, 4, card, base)
        rep = raw["representation"]
        if arm == "random":
            recipe = parse_recipe(yaml.safe_load(yaml.safe_dump(raw)), source=f"{case} {arm}")
            got = recipe.representation.model_dump(mode="json")
            assert {k: got[k] for k in card["architecture"]} == card["architecture"]
            assert rep["train"] == "none" and rep["trainable"] is True
        else:
            assert rep == {"kind": "pretrained", "name": c["encoder"], "trainable": arm == "finetune"}
        assert raw["data"]["split"]["train_fraction"] == 0.25
        assert list(raw["tasks"]) == [c["task"]] and raw["tasks"][c["task"]]["epochs"] == 4
    summary = reuse.encoder_summary(c["encoder"], card)
    assert summary["image_size"] == [256, 256] and summary["architecture"]["convs_per_level"] == 2


def test_reuse_every_arm_reaches_the_worst_arms_best_loss(reuse):
    """The time-to-quality target is the worst arm's best validation loss: that arm reaches it at its best epoch
    (its best must come from the same rounded curve time_to reads)."""
    def metrics(losses):
        hist = [{"epoch": i + 1, "val_loss": v, "time_s": 10.0} for i, v in enumerate(losses)]
        return {"stages": {"t": {"history": hist, "wall_time_s": 10.0 * len(hist), "epochs_run": len(hist)}},
                "tasks": {"t": {"test": {"dice": 0.5}}}, "data": {"tasks": {"t": {"train": 4}}}}
    worst = reuse.summarize(metrics([0.9, 0.644846, 0.7]), "t")    # rounds up to 0.64485 in the curve
    better = reuse.summarize(metrics([0.8, 0.6, 0.5]), "t")
    target = max(worst["best_val_loss"], better["best_val_loss"])
    assert reuse.time_to(worst["curve"], target) == 20.0
    assert reuse.time_to(better["curve"], target) == 20.0
    assert reuse.time_to(better["curve"], 0.1) is None


def test_measure_grid_scores_every_combination_on_the_run(tiny_run, tmp_path):
    """bench/measure_grid.py on a copy of the tiny run with a thickness measurement added: one row per combination,
    each with the val / test agreement of that combination (the same numbers `umsrep evaluate --set` gives for
    it); a value the measurement's schema refuses stops the grid."""
    import json
    import shutil

    from umsrep.cli import main as cli
    from umsrep.rundir import RunDir

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    raw = yaml.safe_load((run / RunDir.RECIPE).read_text())
    raw["derive"]["thick"] = {"measure": "thickness", "from": {"aponeurosis": "lesion"}}
    (run / RunDir.RECIPE).write_text(yaml.safe_dump(raw))
    grid = next(_bench_module("measure_grid"))
    out = tmp_path / "grid.json"
    grid.main([str(run), "thick", "--set", "region=0.3,0.9", "--set", "edge=inner,centre", "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [(r["region"], r["edge"]) for r in rows] == [(0.3, "inner"), (0.3, "centre"), (0.9, "inner"),
                                                         (0.9, "centre")]
    assert all({"lesion/val", "lesion/test"} <= set(r) for r in rows)
    assert cli(["evaluate", str(run), "--set", "derive.thick.region=0.9", "--set", "derive.thick.edge=centre"]) == 0
    ev = json.loads((run / "evaluation.json").read_text())["measurements"]["thick"]["by_data"][0]["test"]["px"]
    # the tiny lesion masks hold no aponeurosis pair: every image is counted as not measurable, the same way
    assert (ev.get("mae"), ev["n"], ev["n_missing_true"]) == tuple(rows[3]["lesion/test"][k] for k in (
        "mae", "n", "n_missing_true")) and ev["n_missing_true"] > 0
    with pytest.raises(Exception, match="region"):
        grid.main([str(run), "thick", "--set", "region=2"])


def test_hard_cases_finds_the_images_every_run_fails(tiny_run, tmp_path, capsys):
    """bench/hard_cases.py over two runs of one split: the per-run means are the runs' test Dice, the hard images
    are those below the threshold in both, each run's mean without them is recomputed by hand; runs that
    predicted other images are refused."""
    import json
    import shutil

    import numpy as np

    from umsrep.evaluate.metrics import dice_per_image
    from umsrep.evaluate.predictions import read_split, write_split

    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    pred = other / "predictions" / "independent" / "test.npz"
    p = read_split(pred)
    p["lesion.labels"] = np.zeros_like(p["lesion.labels"])  # this "run" finds no lesion anywhere
    write_split(pred, p)
    hard = next(_bench_module("hard_cases"))
    out = tmp_path / "hard.json"
    hard.main([str(tiny_run), str(other), "lesion", "--label-task", "diagnosis", "--below", "0.5",
               "--out", str(out)])
    r = json.loads(out.read_text())
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert r["mean"][0] == round(metrics["tasks"]["lesion"]["test"]["dice"], 4)
    has = p["lesion.has_truth"].astype(bool)
    first = dice_per_image(p["lesion.truth"][has], read_split(tiny_run / "predictions" / "independent" /
                                                              "test.npz")["lesion.labels"][has], 1)
    second = dice_per_image(p["lesion.truth"][has], p["lesion.labels"][has], 1)
    is_hard = (first < 0.5) & (second < 0.5)
    assert r["n_hard"] == int(is_hard.sum()) and 0 < r["n_hard"] < len(first)  # the empty masks score 1 in both
    assert r["mean_without_hard"] == [round(float(first[~is_hard].mean()), 4), round(float(second[~is_hard].mean()), 4)]
    names = list(p["lesion.names"][has])
    assert [h["name"] for h in r["hard"]] == [names[i] for i in np.flatnonzero(is_hard)]
    assert all(h["label"] in ("benign", "malignant", "normal") and h["true_mask_fraction"] > 0 for h in r["hard"])
    p["lesion.names"] = p["lesion.names"][::-1]  # another split
    write_split(pred, p)
    with pytest.raises(SystemExit, match="not the same split"):
        hard.main([str(tiny_run), str(other), "lesion"])
