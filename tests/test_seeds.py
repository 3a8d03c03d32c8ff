"""Several training seeds on one split: sub-runs seed<s>/, mean, sample SD and per-seed values in the parent."""

from __future__ import annotations

import json

import numpy as np
import pytest

from umsrep.cli import main

ARGS = ["--set", "representation.epochs=1", "--set", "tasks.lesion.epochs=1", "--set", "tasks.diagnosis.epochs=1",
        "--set", "output.tensorboard=false", "--set", "output.html=false"]


@pytest.fixture(scope="module")
def seeds_run(tiny_recipe_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds") / "run"
    assert main(["fit", str(tiny_recipe_file), "--out", str(out), "--seeds", "5,6", *ARGS]) == 0
    return out


def test_each_seed_is_a_run_on_the_same_split(seeds_run):
    splits = [(seeds_run / f"seed{s}" / "split.csv").read_text() for s in (5, 6)]
    assert splits[0] == splits[1] and splits[0].count(",test") > 0
    for s in (5, 6):
        sub = seeds_run / f"seed{s}"
        assert json.loads((sub / "run.json").read_text())["status"] == "complete"
        assert f"seed: {s}\n" in (sub / "recipe.yaml").read_text()
        assert "    seed: 3\n" in (sub / "recipe.yaml").read_text()      # split seed = the parent's seed
    w = [np.load(seeds_run / f"seed{s}" / "predictions" / "independent" / "test.npz")["diagnosis.probs"]
         for s in (5, 6)]
    assert not np.allclose(w[0], w[1])                                 # different training seeds, different models


def test_mean_sd_and_values_per_seed(seeds_run, capsys):
    m = json.loads((seeds_run / "metrics.json").read_text())
    sec = m["seeds"]
    assert sec["seeds"] == [5, 6] and sec["split_seed"] == 3
    dice = [json.loads((seeds_run / f"seed{s}" / "metrics.json").read_text())["tasks"]["lesion"]["test"]["dice"]
            for s in (5, 6)]
    got = sec["approaches"]["independent"]["tasks"]["lesion"]["dice"]
    assert got["values"] == dice and got["mean"] == pytest.approx(np.mean(dice))
    assert got["sd"] == pytest.approx(np.std(dice, ddof=1))
    report = (seeds_run / "report.md").read_text()
    assert "# umsrep training seeds" in report and "per seed (dice)" in report
    assert main(["evaluate", str(seeds_run)]) == 2
    assert "one model per seed" in capsys.readouterr().err


def test_resume_keeps_finished_seeds(seeds_run):
    run_json = seeds_run / "run.json"
    meta = json.loads(run_json.read_text())
    run_json.write_text(json.dumps({**meta, "status": "training"}))     # as if stopped before the summary
    mtime = (seeds_run / "seed5" / "model.keras").stat().st_mtime_ns
    before = json.loads((seeds_run / "metrics.json").read_text())["seeds"]["approaches"]
    assert main(["fit", "--resume", str(seeds_run)]) == 0
    assert (seeds_run / "seed5" / "model.keras").stat().st_mtime_ns == mtime
    assert json.loads((seeds_run / "metrics.json").read_text())["seeds"]["approaches"] == before
    assert json.loads(run_json.read_text())["status"] == "complete"


def test_seeds_are_validated(tiny_recipe_file, tmp_path, capsys):
    assert main(["fit", str(tiny_recipe_file), "--out", str(tmp_path / "x"), "--seeds", "1,1"]) == 2
    assert "seeds: each seed once" in capsys.readouterr().err
    assert main(["fit", str(tiny_recipe_file), "--out", str(tmp_path / "y"), "--seeds", "1,a"]) == 2
    assert "--seeds: expected comma-separated integers" in capsys.readouterr().err
