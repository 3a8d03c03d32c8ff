"""umsrep tune: search-space checks, a 2-trial random search end to end, resume; mixed precision; export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tests.conftest import TINY_RECIPE
from umsrep.cli import main
from umsrep.errors import RecipeError
from umsrep.recipe import parse_recipe
from umsrep.tune import check_search, objective_names

SEARCH = {"tuner": "random", "objective": "val.diagnosis.accuracy", "max_trials": 2, "epochs": 1, "stage": "heads",
          "space": {"tasks.diagnosis.optimizer.name": {"choice": ["sgd", "adam", "rmsprop"]},
                    "tasks.diagnosis.head.dropout": {"choice": [0.1, 0.3, 0.5]},
                    "tasks.diagnosis.optimizer.learning_rate": {"float": [1e-4, 1e-2], "log": True}}}


def _raw(**search):
    raw = yaml.safe_load(TINY_RECIPE)
    raw["representation"]["epochs"] = 1
    raw["output"]["tensorboard"] = False
    raw["search"] = {**SEARCH, **search}
    return raw


@pytest.mark.parametrize("change,message", [
    ({"objective": "val.diagnosis.acc"}, "search.objective: 'val.diagnosis.acc' is not a metric this run produces; "
                                         "valid: val.lesion.dice, val.lesion.iou"),
    ({"objective": "test.diagnosis.accuracy"}, "must be on the validation split"),
    ({"objective": "val.denoise.psnr"}, "is not a metric this run produces"),   # heads stage: no denoiser trained
    ({"space": {"tasks.diagnosis.head.dropuot": {"choice": [0.1]}}},
     "search.space.tasks.diagnosis.head.dropuot: unknown recipe field"),
    ({"space": {"tasks.diagnosis.head.dropout": {"choice": [0.1, 1.5]}}},
     "search.space.tasks.diagnosis.head.dropout: value 1.5 gives an invalid recipe (tasks.diagnosis.head.dropout: "
     "Input should be less than 1"),
    ({"space": {"tasks.nope.epochs": {"int": [1, 3]}}}, "search.space.tasks.nope.epochs: unknown recipe field"),
    ({"space": {"tasks.diagnosis.optimizer.name": {"choice": ["adam", "lbfgs"]}}},
     "search.space.tasks.diagnosis.optimizer.name: value 'lbfgs' gives an invalid recipe"),
    ({"space": {"representation.kernel_size": {"choice": [3, 5]}}}, "stage 'heads' reuses one trained representation"),
])
def test_search_space_and_objective_are_checked_before_training(change, message):
    with pytest.raises(RecipeError) as e:
        check_search(parse_recipe(_raw(**change)), "r.yaml")
    assert message in str(e.value) and str(e.value).startswith("r.yaml: ")


def test_schema_rejects_a_malformed_dimension():
    with pytest.raises(RecipeError, match="give exactly one of choice"):
        parse_recipe(_raw(space={"tasks.diagnosis.epochs": {"int": [1, 3], "choice": [1]}}))
    with pytest.raises(RecipeError, match="log sampling needs min > 0"):
        parse_recipe(_raw(space={"tasks.diagnosis.optimizer.learning_rate": {"float": [0, 1], "log": True}}))


def test_representation_stage_offers_denoising_objectives():
    r = parse_recipe(_raw(stage="representation", objective="val.denoise.psnr",
                          space={"representation.kernel_size": {"choice": [3, 5]}}))
    check_search(r, "r.yaml")
    assert "val.denoise.psnr" in objective_names(r) and "val.lesion.dice" in objective_names(r)


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tune")
    recipe = tmp / "tune.yaml"
    recipe.write_text(yaml.safe_dump(_raw(), sort_keys=False))
    out = tmp / "search"
    assert main(["tune", str(recipe), "--out", str(out)]) == 0
    return recipe, out


def test_two_trial_random_search_end_to_end(search):
    _, out = search
    summary = json.loads((out / "trials.json").read_text())
    trials = summary["trials"]
    assert len(trials) == 2 and all(t["status"] == "COMPLETED" for t in trials)
    for t in trials:   # every trial is a real run whose val metric is the objective
        m = json.loads((out / "trials" / t["trial_id"] / "metrics.json").read_text())
        assert t["objective"] == m["tasks"]["diagnosis"]["val"]["accuracy"] and t["wall_time_s"] > 0
        r = yaml.safe_load((out / "trials" / t["trial_id"] / "recipe.yaml").read_text())
        assert r["tasks"]["diagnosis"]["optimizer"]["name"] == t["values"]["tasks.diagnosis.optimizer.name"]
        assert r["representation"]["init_from"] == str(out / "representation")   # one shared representation
    best = summary["best"]
    assert best["objective"] == max(t["objective"] for t in trials)
    br = yaml.safe_load((out / "best_recipe.yaml").read_text())
    assert br["search"] is None and br["tasks"]["diagnosis"]["head"]["dropout"] == \
        best["values"]["tasks.diagnosis.head.dropout"]
    parse_recipe(br)   # a normal, valid recipe
    assert "wall time (s)" in (out / "report.md").read_text()


def test_interrupted_search_resumes(search, tmp_path, monkeypatch, capsys):
    recipe, _ = search
    out = tmp_path / "s"
    import umsrep.train.fit as fit_module

    real, calls = fit_module.fit, []

    def fit(r, run, log=print):
        calls.append(run.path.name)
        if run.path.name == "1":
            raise KeyboardInterrupt
        return real(r, run, log=log)

    monkeypatch.setattr(fit_module, "fit", fit)
    assert main(["tune", str(recipe), "--out", str(out)]) == 130
    monkeypatch.undo()
    assert calls == ["representation", "0", "1"]
    done = (out / "trials" / "0" / "metrics.json").stat().st_mtime_ns
    assert main(["tune", str(recipe), "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["tune", "--resume", str(out)]) == 0
    summary = json.loads((out / "trials.json").read_text())
    assert [t["status"] for t in summary["trials"]] == ["COMPLETED", "COMPLETED"]
    assert (out / "trials" / "0" / "metrics.json").stat().st_mtime_ns == done   # trial 0 not re-run


def test_mixed_bfloat16_trains_with_float32_losses_and_metrics(tmp_path, tiny_recipe_file):
    import keras

    out = tmp_path / "bf16"
    assert main(["fit", str(tiny_recipe_file), "--out", str(out), "--set", "precision=mixed_bfloat16",
                 "--set", "strategy.kind=joint", "--set", "strategy.epochs=1", "--set", "representation.epochs=1",
                 "--set", "output.html=false", "--set", "output.tensorboard=false"]) == 0
    assert keras.mixed_precision.global_policy().name == "float32"   # restored after the run
    m = json.loads((out / "metrics.json").read_text())
    hist = m["stages"]["joint"]["history"][0]
    assert all(np.isfinite(hist[k]) for k in ("loss", "loss/lesion", "loss/diagnosis"))
    assert 0 <= m["tasks"]["lesion"]["test"]["dice"] <= 1
    model = keras.models.load_model(out / "model.keras")
    conv = model.get_layer("encoder").get_layer("enc1_conv")
    assert conv.compute_dtype == "bfloat16" and conv.variable_dtype == "float32"
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
    assert all(np.asarray(v).dtype == np.float32 for v in model(x).values())   # heads emit float32 for losses


def test_mixed_float16_uses_loss_scaling_and_joint_is_refused(tmp_path, tiny_recipe_file, capsys):
    out = tmp_path / "fp16"
    assert main(["fit", str(tiny_recipe_file), "--out", str(out), "--set", "precision=mixed_float16",
                 "--set", "representation.epochs=1", "--set", "tasks.lesion.epochs=1",
                 "--set", "tasks.diagnosis.epochs=1", "--set", "output.html=false"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(m["stages"]["representation"]["history"][0]["loss"])
    assert main(["validate", str(tiny_recipe_file), "--set", "precision=mixed_float16",
                 "--set", "strategy.kind=joint"]) == 2
    assert "precision: mixed_float16 needs loss scaling" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["savedmodel", "onnx", "tflite"])
def test_export_round_trips(tiny_run, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("tf2onnx", reason="ONNX export needs the export extra (tf2onnx, onnx, onnxruntime)")
        pytest.importorskip("onnxruntime")
    out = tmp_path / f"model.{fmt}"
    samples = sorted((tiny_run / "data" / "images").glob("*.png"))[:3]
    assert main(["export", str(tiny_run), "--format", fmt, "--out", str(out),
                 "--samples", *map(str, samples)]) == 0
    v = json.loads((tmp_path / f"model.{fmt}.verification.json").read_text())
    assert v["ok"] and v["samples"] == 3 and set(v["outputs"]) == {"denoise", "lesion", "diagnosis"}
    assert max(v["max_abs_difference"].values()) <= v["tolerance"] and out.exists()
    assert main(["export", str(tiny_run), "--format", fmt, "--out", str(out)]) == 2   # never overwritten
