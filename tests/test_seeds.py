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
    assert main(["predict", str(seeds_run), str(seeds_run / "seed5" / "data"), "--out",
                 str(seeds_run.parent / "p")]) == 2
    assert "one model per seed" in capsys.readouterr().err


def test_evaluate_on_the_parent_rescores_every_seed_and_summarises_again(seeds_run, tmp_path, capsys):
    """`umsrep evaluate PARENT`: each seed's evaluation.json, and the parent's mean ± SD made again from them, so a
    seed whose metrics.json predates a metric (here by_group stripped by hand) is summarised with it; the parent's
    metrics.json from training stays as it was. A `--set derive.*` measurement reaches every seed."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(seeds_run, run)
    m5 = json.loads((run / "seed5" / "metrics.json").read_text())
    del m5["tasks"]["lesion"]["test"]["by_group"]                    # as written before by_group existed
    (run / "seed5" / "metrics.json").write_text(json.dumps(m5))
    parent_before = (run / "metrics.json").read_text()
    thick = "derive.thick={measure: thickness, from: {aponeurosis: lesion}}"
    assert main(["evaluate", str(run), "--set", thick]) == 0
    assert "mean" in capsys.readouterr().out
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["evaluated"]["sub_runs"] == ["seed5", "seed6"] and ev["seeds"]["seeds"] == [5, 6]
    assert ev["evaluated"]["set"] == [thick]
    sub_ev = [json.loads((run / f"seed{s}" / "evaluation.json").read_text()) for s in (5, 6)]
    assert all("thick" in e["measurements"] and e["evaluated"]["set"] == [thick] for e in sub_ev)
    subs = [e["tasks"]["lesion"]["test"] for e in sub_ev]
    lesion = ev["seeds"]["approaches"]["independent"]["tasks"]["lesion"]
    assert lesion["dice"]["values"] == [t["dice"] for t in subs]
    assert lesion["dice_pooled_by_group"]["values"] == [t["by_group"]["dice_pooled"] for t in subs]
    assert lesion["dice_by_group"]["mean"] == pytest.approx(np.mean([t["by_group"]["mean"] for t in subs]))
    assert (run / "metrics.json").read_text() == parent_before
    # the training record (wall time) still comes from each seed's metrics.json
    assert ev["seeds"]["approaches"]["independent"]["wall_time_s"]["values"][0] == pytest.approx(
        sum(st["wall_time_s"] for st in m5["stages"].values()), abs=1e-3)


def test_evaluate_on_a_parent_with_an_unfinished_seed_writes_nothing(seeds_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(seeds_run, run)
    meta = json.loads((run / "seed6" / "run.json").read_text())
    (run / "seed6" / "run.json").write_text(json.dumps({**meta, "status": "training"}))
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert "seed6" in err and "--resume" in err and len(err.strip().splitlines()) == 1
    assert not (run / "evaluation.json").exists() and not (run / "seed5" / "evaluation.json").exists()
    assert main(["evaluate", str(run), "--model", "x"]) == 2
    assert "seeds parent" in capsys.readouterr().err
    (run / "seed6" / "run.json").write_text(json.dumps(meta))   # all finished: a training field is still refused
    assert main(["evaluate", str(run), "--set", "strategy.epochs=3"]) == 2
    assert "--set strategy.epochs" in capsys.readouterr().err
    assert not (run / "evaluation.json").exists() and not (run / "seed5" / "evaluation.json").exists()


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


def test_a_finished_run_placed_as_a_seed_is_adopted(seeds_run, tiny_recipe_file, tmp_path):
    import shutil

    out = tmp_path / "adopt"
    shutil.copytree(seeds_run / "seed5", out / "seed5")               # e.g. an earlier single-seed run
    mtime = (out / "seed5" / "model.keras").stat().st_mtime_ns
    assert main(["fit", str(tiny_recipe_file), "--out", str(out), "--seeds", "5", *ARGS]) == 0
    assert (out / "seed5" / "model.keras").stat().st_mtime_ns == mtime  # kept, not trained again
    dice = json.loads((seeds_run / "seed5" / "metrics.json").read_text())["tasks"]["lesion"]["test"]["dice"]
    sec = json.loads((out / "metrics.json").read_text())["seeds"]
    assert sec["approaches"]["independent"]["tasks"]["lesion"]["dice"]["values"] == [dice]


def test_a_placed_run_of_another_recipe_is_refused(seeds_run, tiny_recipe_file, tmp_path, capsys):
    import shutil

    out = tmp_path / "other"
    shutil.copytree(seeds_run / "seed5", out / "seed5")
    mtime = (out / "seed5" / "model.keras").stat().st_mtime_ns
    args = [a if a != "tasks.lesion.epochs=1" else "tasks.lesion.epochs=2" for a in ARGS]
    assert main(["fit", str(tiny_recipe_file), "--out", str(out), "--seeds", "6,5", *args]) == 2
    err = capsys.readouterr().err
    assert "seed5/recipe.yaml: tasks.lesion.epochs: is 1 but seed 5 (2/2) needs 2" in err and "Traceback" not in err
    assert (out / "seed5" / "model.keras").stat().st_mtime_ns == mtime  # nothing lost
    assert [p.name for p in out.iterdir()] == ["seed5"]                 # checked before seed 6 or any parent file
    for extra in ("seed6", "seed7"):            # beside a finished seed: an unfinished one, one of another seed
        fresh = tmp_path / f"with-{extra}"
        shutil.copytree(seeds_run / "seed5", fresh / "seed5")
        (fresh / extra).mkdir()
        (fresh / extra / "notes.txt").write_text("x")
        assert main(["fit", str(tiny_recipe_file), "--out", str(fresh), "--seeds", "5,6", *ARGS]) == 2
        assert "output folder exists and is not empty: it holds files but no umsrep run" in capsys.readouterr().err
        assert sorted(p.name for p in fresh.iterdir()) == sorted(["seed5", extra])   # nothing written


def test_an_unset_split_seed_trains_like_the_same_seed_stated():
    import yaml

    from tests.conftest import TINY_RECIPE
    from umsrep.recipe import parse_recipe, recipe_difference
    from umsrep.train.crossval import seed_recipe

    raw = yaml.safe_load(TINY_RECIPE)
    single = parse_recipe({**raw, "seed": 42}, "single")                # split seed unset: the run's seed
    assert single.data.split.seed is None
    many = parse_recipe({**raw, "seed": 42, "seeds": [42, 43]}, "seeds")
    assert recipe_difference(single, seed_recipe(many, 42)) is None
    field, was, now = recipe_difference(single, seed_recipe(many, 43))
    assert (field, was, now) == ("seed", 42, 43)
    other_split = parse_recipe({**raw, "seed": 7, "seeds": [42]}, "seeds")
    assert recipe_difference(single, seed_recipe(other_split, 42))[0] == "data.split.seed"
    assert recipe_difference(single, parse_recipe({**raw, "seed": 42, "name": "renamed"}, "r")) is None

    from umsrep.train.crossval import subrun_folders
    folds = {**raw, "data": {**raw["data"], "split": {"folds": 3}}}
    assert subrun_folders(parse_recipe(folds, "cv")) == ["fold0", "fold1", "fold2"]
    one_fold = {**raw, "data": {**raw["data"], "split": {"folds": 3, "fold": 1}}}
    assert subrun_folders(parse_recipe(one_fold, "fold")) == []      # one fold is one run: nothing to adopt
    assert subrun_folders(many) == ["seed42", "seed43"]


def _run_metrics(dice, dice_by_group, mae, mae_group):
    """A sub-run's metrics.json, reduced to what the summary reads: one grouped segmentation task, one measurement."""
    test = {"dice": dice, "iou": dice - 0.1, "n": 10, "dice_ci95": [dice - 0.05, dice + 0.05],
            "per_class": {"apo": {"dice": dice}}, "by_group": {"n": 3, "mean": dice_by_group, "largest": 5}}
    agreement = {"px": {"n": 9, "mae": mae, "mae_pct": mae * 2, "bias": -mae / 2,
                        "by_group": {"n": 3, "mae": mae_group, "mae_pct": mae_group * 2}},
                 "per_image": {"name": ["a"] * 9, "pred": [1.0] * 9}}
    return {"run": {"strategy": "joint"}, "parameters": {"model_total": 100},
            "stages": {"joint": {"wall_time_s": 5.0, "epochs_run": 3}},
            "tasks": {"apo": {"type": "segmentation", "test": test}},
            "measurements": {"thickness": {"unit": "px", "by_data": [
                {"tasks": ["apo"], "truth": {"apo": "true masks"}, "val": agreement, "test": agreement}]}}}


def test_seed_summary_has_per_group_metrics_and_measurements():
    import yaml

    from tests.conftest import TINY_RECIPE
    from umsrep.evaluate.report import render_cv_markdown
    from umsrep.recipe import parse_recipe
    from umsrep.train.crossval import summarize_runs

    raw = yaml.safe_load(TINY_RECIPE)
    raw["tasks"] = {"apo": {"type": "segmentation", "classes": ["apo"]}}
    raw.pop("derive")
    recipe = parse_recipe(raw, "tiny")
    runs = [_run_metrics(0.7, 0.8, 4.0, 2.0), _run_metrics(0.6, 0.9, 6.0, 3.0), _run_metrics(0.8, 0.7, 5.0, 1.0)]
    sec = summarize_runs(runs, recipe)
    apo = sec["approaches"]["joint"]["tasks"]["apo"]
    assert apo["dice_by_group"]["values"] == [0.8, 0.9, 0.7]
    assert apo["dice_by_group"]["mean"] == pytest.approx(0.8) and apo["dice_by_group"]["sd"] == pytest.approx(0.1)
    th = sec["measurements"]["thickness"]["by_data"][0]["px"]
    assert th["mae"]["values"] == [4.0, 6.0, 5.0] and th["mae"]["sd"] == pytest.approx(1.0)
    assert th["mae_pct"]["mean"] == pytest.approx(10.0) and th["bias"]["mean"] == pytest.approx(-2.5)
    assert th["mae_by_group"]["mean"] == pytest.approx(2.0) and th["mae_pct_by_group"]["values"] == [4.0, 6.0, 2.0]
    report = render_cv_markdown({"seeds": {"seeds": [1, 2, 3], "split_seed": 1, **sec}, "run": {"name": "t"}})
    assert "dice_by_group" in report and "0.8000 ± 0.1000" in report
    assert "| thickness | apo | apo: true masks | px | 9.00 ± 0.00 | 5.00 ± 1.00 | 10.00 ± 2.00 | 2.00 ± 1.00 |" \
        in report
    runs[1]["measurements"]["thickness"]["by_data"][0]["test"]["px"].pop("by_group")   # one run without groups
    th = summarize_runs(runs, recipe)["measurements"]["thickness"]["by_data"][0]["px"]
    assert "mae_by_group" not in th and "mae" in th


def test_seed_summary_has_the_patient_decisions():
    import yaml

    from tests.conftest import TINY_RECIPE
    from umsrep.evaluate.report import render_cv_markdown
    from umsrep.recipe import parse_recipe
    from umsrep.train.crossval import summarize_runs

    recipe = parse_recipe(yaml.safe_load(TINY_RECIPE), "tiny")

    def run(acc, mcc, ref_acc):
        m = _run_metrics(0.7, 0.8, 4.0, 2.0)
        score = {"n_groups": 20, "accuracy": acc, "balanced_accuracy": acc, "mcc": mcc, "confusion": [[1]]}
        m["patient"] = {"features": ["lv_ED"], "unit": "px", "n_groups": 30, "train_features": "predicted",
                        "groups": [{"group": "p1", "lv_ED": 0.5}],
                        "predicted_masks": {"diagnosis": {"classes": ["A", "B"], "test": score},
                                            "dcm": {"skipped": "one class in the training groups"}},
                        "true_masks": {"diagnosis": {"test": {**score, "accuracy": ref_acc}}}}
        return m

    sec = summarize_runs([run(0.7, 0.6, 0.95), run(0.8, 0.7, 0.95), run(0.9, 0.8, 0.95)], recipe)
    pred = sec["patient"]["predicted_masks"]["diagnosis"]
    assert pred["n_groups"] == 20 and pred["accuracy"]["values"] == [0.7, 0.8, 0.9]
    assert pred["accuracy"]["mean"] == pytest.approx(0.8) and pred["accuracy"]["sd"] == pytest.approx(0.1)
    assert pred["mcc"]["mean"] == pytest.approx(0.7) and "dcm" not in sec["patient"]["predicted_masks"]
    assert sec["patient"]["true_masks"]["diagnosis"]["accuracy"]["sd"] == pytest.approx(0.0)
    report = render_cv_markdown({"seeds": {"seeds": [1, 2, 3], "split_seed": 1, **sec}, "run": {"name": "t"}})
    assert "| predicted masks | diagnosis | 20 | 0.800 ± 0.100 | 0.800 ± 0.100 | 0.700 ± 0.100 | 0.700, 0.800, " \
           "0.900 |" in report
    assert "patient" not in summarize_runs([_run_metrics(0.7, 0.8, 4.0, 2.0)] * 2, recipe)  # no patient section
    folds = [run(0.7, 0.6, 0.95), run(0.8, 0.7, 0.95)]
    folds[1]["patient"]["predicted_masks"]["diagnosis"]["test"]["n_groups"] = 19  # folds: other test patients
    sec = summarize_runs(folds, recipe)
    assert sec["patient"]["predicted_masks"]["diagnosis"]["n_groups"] == [20, 19]
    assert "| predicted masks | diagnosis | 20/19 |" in render_cv_markdown({"cv": {"folds": 2, **sec},
                                                                          "run": {"name": "t"}})


def test_seed_summary_has_each_class_of_a_multi_class_segmentation():
    import yaml

    from tests.conftest import TINY_RECIPE
    from umsrep.evaluate.report import render_cv_markdown
    from umsrep.recipe import parse_recipe
    from umsrep.train.crossval import summarize_runs

    recipe = parse_recipe(yaml.safe_load(TINY_RECIPE), "tiny")
    runs = []
    for rv, lv in ((0.5, 0.8), (0.6, 0.9), (0.7, 0.7)):
        m = _run_metrics((rv + lv) / 2, 0.8, 4.0, 2.0)
        m["tasks"]["apo"]["test"]["per_class"] = {"rv": {"dice": rv, "iou": 0.1}, "lv": {"dice": lv, "iou": 0.2}}
        runs.append(m)
    apo = summarize_runs(runs, recipe)["approaches"]["joint"]["tasks"]["apo"]
    assert apo["dice_rv"]["values"] == [0.5, 0.6, 0.7] and apo["dice_rv"]["sd"] == pytest.approx(0.1)
    assert apo["dice_lv"]["mean"] == pytest.approx(0.8) and "iou_rv" not in apo
    report = render_cv_markdown({"seeds": {"seeds": [1, 2, 3], "split_seed": 1,
                                           **summarize_runs(runs, recipe)}, "run": {"name": "t"}})
    assert "| approach | dice | iou | dice_rv | dice_lv | dice_by_group | per seed (dice) |" in report
    one = summarize_runs([_run_metrics(0.7, 0.8, 4.0, 2.0)] * 2, recipe)["approaches"]["joint"]["tasks"]["apo"]
    assert "dice_apo" not in one  # one class: its Dice is the task's
    for m in runs:  # classes whose key would read as an interval or a per-group mean are left out
        m["tasks"]["apo"]["test"]["per_class"].update({"ci95": {"dice": 0.1}, "by_group": {"dice": 0.2}})
    from umsrep.evaluate.scores import approach_summary

    task = approach_summary([{"wall_time_s": 1.0, "epochs_run": 1}], {"apo": runs[0]["tasks"]["apo"]})["tasks"]["apo"]
    assert task["dice_ci95"] == pytest.approx([0.6, 0.7]) and task["dice_by_group"] == 0.8 and task["dice_rv"] == 0.5
    apo = summarize_runs(runs, recipe)["approaches"]["joint"]["tasks"]["apo"]
    assert "dice_ci95" not in apo and apo["dice_by_group"]["values"] == [0.8, 0.8, 0.8]


def test_a_damaged_run_json_in_a_placed_seed_is_one_line(tiny_recipe_file, tmp_path, capsys):
    out = tmp_path / "damaged"
    (out / "seed5").mkdir(parents=True)
    (out / "seed5" / "run.json").write_text("[]")                      # valid JSON, not a run's
    assert main(["fit", str(tiny_recipe_file), "--out", str(out), "--seeds", "5", *ARGS]) == 2
    err = capsys.readouterr().err
    assert "seed5/run.json: not a umsrep run.json" in err and "Traceback" not in err
    assert [p.name for p in out.iterdir()] == ["seed5"]
