"""k-fold cross-validation: every fold is a full run; the parent holds mean ± SD and paired tests over folds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from umsrep.cli import main
from umsrep.evaluate.stats import paired_tests
from umsrep.train.checkpoint import Checkpoints

ARGS = ["--set", "data.split.folds=3", "--set", "strategy.compare=[joint]", "--set", "strategy.epochs=1",
        "--set", "representation.epochs=1", "--set", "output.tensorboard=false", "--set", "output.html=false"]


@pytest.fixture(scope="module")
def cv_run(tiny_recipe_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv-run") / "run"
    assert main(["fit", str(tiny_recipe_file), "--out", str(out), *ARGS]) == 0
    return out


def test_every_fold_is_a_run_and_the_test_folds_partition_the_data(cv_run):
    tests = []
    for f in range(3):
        fold = cv_run / f"fold{f}"
        assert json.loads((fold / "run.json").read_text())["status"] == "complete"
        assert (fold / "model.keras").is_file() and (fold / "models" / "joint.keras").is_file()
        src = next(iter(json.loads((fold / "splits.json").read_text())["sources"].values()))
        tests.append(set(src["test"]))
        assert not set(src["test"]) & (set(src["train"]) | set(src["val"]))
    assert not (tests[0] & tests[1]) and not (tests[0] & tests[2]) and not (tests[1] & tests[2])
    assert len(set().union(*tests)) == 36


def test_mean_sd_and_paired_tests_are_computed_from_the_folds(cv_run):
    cv = json.loads((cv_run / "metrics.json").read_text())["cv"]
    assert cv["folds"] == 3 and list(cv["approaches"]) == ["independent", "joint"]
    for a in ("independent", "joint"):
        dice = [json.loads((cv_run / f"fold{f}" / "metrics.json").read_text())["comparison"]["approaches"][a]
                ["tasks"]["lesion"]["dice"] for f in range(3)]
        got = cv["approaches"][a]["tasks"]["lesion"]["dice"]
        assert got["values"] == dice
        assert got["mean"] == pytest.approx(np.mean(dice)) and got["sd"] == pytest.approx(np.std(dice, ddof=1))
    ind = cv["approaches"]["independent"]["tasks"]["diagnosis"]["accuracy"]["values"]
    joint = cv["approaches"]["joint"]["tasks"]["diagnosis"]["accuracy"]["values"]
    assert cv["tests"]["diagnosis"]["independent vs joint"] == {"metric": "accuracy", **paired_tests(ind, joint)}
    report = (cv_run / "report.md").read_text()
    assert "# umsrep cross-validation" in report and "paired t-test p" in report and "± " in report


def test_cv_parent_has_no_single_model(cv_run, capsys):
    assert main(["predict", str(cv_run), str(cv_run / "fold0" / "data"), "--out", str(cv_run.parent / "p")]) == 2
    err = capsys.readouterr().err
    assert "cross-validation run has one model per fold" in err and "Traceback" not in err
    # evaluate re-scores a parent's sub-runs, but not when each compares strategies (several models per fold)
    assert main(["evaluate", str(cv_run)]) == 2
    err = capsys.readouterr().err
    assert "compares strategies" in err and "--model" in err and "Traceback" not in err
    assert not (cv_run / "evaluation.json").exists()


def test_interrupted_cv_resumes_at_the_unfinished_fold(tiny_recipe_file, cv_run, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real, saves = Checkpoints.save, []

    def save(self, *a, **k):
        real(self, *a, **k)
        saves.append(str(self.root))
        if "fold1" in str(self.root):
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoints, "save", save)
    assert main(["fit", str(tiny_recipe_file), "--out", str(out), *ARGS]) == 130
    monkeypatch.undo()
    assert json.loads((out / "fold0" / "run.json").read_text())["status"] == "complete"
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    mtime = (out / "fold0" / "model.keras").stat().st_mtime_ns
    assert main(["fit", "--resume", str(out)]) == 0
    assert (out / "fold0" / "model.keras").stat().st_mtime_ns == mtime   # finished fold kept, not retrained
    a = json.loads((cv_run / "metrics.json").read_text())["cv"]["approaches"]
    b = json.loads((out / "metrics.json").read_text())["cv"]["approaches"]
    assert a["joint"]["tasks"]["lesion"]["dice"]["values"] == b["joint"]["tasks"]["lesion"]["dice"]["values"]
