"""One recipe, three strategies and the baseline: the comparison tables, saved models and their costs."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from tests.conftest import TINY_RECIPE
from umsrep.cli import main


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    recipe = tmp / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    out = tmp / "run"
    assert main(["fit", str(recipe), "--out", str(out), "--set", "strategy.compare=[alternating, joint]",
                 "--set", "baseline=true", "--set", "strategy.epochs=2", "--set", "output.tensorboard=false"]) == 0
    return out


def test_comparison_section_has_every_approach(compare_run):
    m = json.loads((compare_run / "metrics.json").read_text())
    c = m["comparison"]
    assert list(c["approaches"]) == ["independent", "alternating", "joint", "baseline"]
    for a, v in c["approaches"].items():
        assert v["wall_time_s"] > 0 and v["parameters"]["total"] > 0
        assert 0.0 <= v["tasks"]["lesion"]["dice"] <= 1.0
        lo, hi = v["tasks"]["diagnosis"]["accuracy_ci95"]
        assert lo <= v["tasks"]["diagnosis"]["accuracy"] <= hi
    # the main strategy's entry is the run's own test result
    assert c["approaches"]["independent"]["tasks"]["lesion"]["dice"] == m["tasks"]["lesion"]["test"]["dice"]
    # UMS-Rep shares one encoder: fewer parameters than one model per task plus a denoiser
    base = c["approaches"]["baseline"]
    assert set(base["models"]) == {"denoiser", "lesion", "diagnosis"}
    assert base["parameters"]["total"] == sum(x["parameters"]["total"] for x in base["models"].values())
    for a in ("independent", "alternating", "joint"):
        red = c["reduction_vs_baseline"][a]
        assert red["parameters_pct"] == pytest.approx(
            100 * (1 - c["approaches"][a]["parameters"]["total"] / base["parameters"]["total"]), abs=0.06)
        assert red["parameters_pct"] > 0
        assert red["time_pct"] == pytest.approx(
            100 * (1 - c["approaches"][a]["wall_time_s"] / base["wall_time_s"]), abs=0.06)
    n = m["tasks"]["diagnosis"]["test"]["n"]
    pairs = c["tests"]["diagnosis"]
    assert len(pairs) == 6
    for r in pairs.values():
        assert r["mcnemar"]["b"] + r["mcnemar"]["c"] <= n and 0 <= r["mcnemar"]["p_value"] <= 1
    assert all("wilcoxon_dice" in r for r in c["tests"]["lesion"].values())
    report = (compare_run / "report.md").read_text()
    assert "## Strategy and baseline comparison" in report and "reduction vs baseline" in report


def test_saved_comparison_and_baseline_models_reproduce_their_metrics(compare_run):
    from umsrep.evaluate.metrics import segmentation_metrics

    m = json.loads((compare_run / "metrics.json").read_text())
    splits = json.loads((compare_run / "splits.json").read_text())
    (src,) = splits["sources"].values()
    from umsrep.data.dataset import load_dataset

    data = load_dataset(compare_run / "data", "images", "masks", "labels.csv", image_size=(32, 32), channels=1)
    idx = [data.names.index(n) for n in src["test"]]
    x, y = data.images[idx], (data.masks[idx] > 0).astype(np.int32)
    for file, key in (("models/baseline_lesion.keras", "baseline"), ("models/joint.keras", "joint")):
        model = keras.models.load_model(compare_run / file)
        out = model.predict(x, verbose=0)
        probs = out["lesion"] if isinstance(out, dict) else out
        dice = segmentation_metrics(y, (probs[..., 0] >= 0.5).astype(np.int32), ["lesion"])["dice"]
        assert dice == pytest.approx(m["comparison"]["approaches"][key]["tasks"]["lesion"]["dice"], abs=1e-6)


def test_evaluate_a_compared_model(compare_run, capsys):
    assert main(["evaluate", str(compare_run), "--model", "joint"]) == 0
    ev = json.loads((compare_run / "evaluation_joint.json").read_text())
    c = json.loads((compare_run / "metrics.json").read_text())["comparison"]["approaches"]["joint"]
    assert ev["tasks"]["lesion"]["test"]["dice"] == pytest.approx(c["tasks"]["lesion"]["dice"], abs=1e-6)
    capsys.readouterr()
    assert main(["evaluate", str(compare_run), "--model", "nope"]) == 2
    assert "--model:" in capsys.readouterr().err
