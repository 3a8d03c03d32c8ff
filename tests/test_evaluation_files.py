"""Evaluation hands over files: predictions written once, metrics and reports read them; scoring other data."""

from __future__ import annotations

import ast
import csv
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from umsrep.cli import main


def test_metrics_are_recomputed_from_the_prediction_files_alone(tiny_run):
    from umsrep.evaluate.predictions import read_folder
    from umsrep.evaluate.scores import score_predictions
    from umsrep.recipe import load_recipe

    folder = tiny_run / "predictions" / "independent"
    assert sorted(p.name for p in folder.iterdir()) == ["test.npz", "val.npz"]
    assert sum(p.stat().st_size for p in folder.iterdir()) < 150_000     # uint8 maps, compressed
    test = read_folder(folder, ["test"])["test"]
    assert test["lesion.labels"].dtype == np.uint8 and test["lesion.truth"].dtype == np.uint8
    assert test["diagnosis.probs"].dtype == np.float32 and test["diagnosis.truth"].dtype == np.int16
    assert test["lesion.ex_images"].dtype == np.uint8 and test["diagnosis.ex_cam"].dtype == np.float16
    m = json.loads((tiny_run / "metrics.json").read_text())
    splits = json.loads((tiny_run / "splits.json").read_text())
    assert list(test["lesion.names"]) == next(iter(splits["sources"].values()))["test"]
    again = json.loads(json.dumps(score_predictions(read_folder(folder), load_recipe(tiny_run / "recipe.yaml"),
                                                    log=lambda s: None)))
    for t in list(again["tasks"].values()) + list(m["tasks"].values()):   # `umsrep evaluate` may have re-timed it
        for split in ("val", "test"):
            if isinstance(t.get(split), dict):
                t[split].pop("predict_time_s", None)
    for key in ("tasks", "derive", "explain"):
        assert again[key] == m[key], key


def test_bootstrap_level_is_recorded_and_reported(tiny_run):
    m = json.loads((tiny_run / "metrics.json").read_text())
    splits = json.loads((tiny_run / "splits.json").read_text())
    with open(tiny_run / "data" / "labels.csv") as fh:
        patient = {r["filename"].rsplit(".", 1)[0]: r["patient"] for r in csv.DictReader(fh)}
    n_patients = len({patient[n] for n in next(iter(splits["sources"].values()))["test"]})
    for task in ("lesion", "diagnosis"):
        assert m["tasks"][task]["test"]["ci95_bootstrap"] == {"over": "patient", "n": n_patients}
    assert f"bootstrap over {n_patients} patients" in (tiny_run / "report.md").read_text()


def _test_lesion_maps(run):
    """(metrics.json, [(true lesion mask, predicted lesion mask, patient), ...]) of a run's labelled test images."""
    from umsrep.evaluate.predictions import read_folder

    test = read_folder(run / "predictions" / "independent", ["test"])["test"]
    has = np.asarray(test["lesion.has_truth"], bool)
    maps = [(t == 1, p == 1, str(g)) for t, p, g in zip(test["lesion.truth"][has], test["lesion.labels"][has],
                                                          test["lesion.groups"][has])]
    return json.loads((run / "metrics.json").read_text()), maps


def test_per_patient_mean_counts_each_patient_once(tiny_run):
    """by_group: the Dice averaged within each patient, then over patients (by hand from the saved maps)."""
    m, maps = _test_lesion_maps(tiny_run)
    per_patient = {}
    for t, p, g in maps:
        dice = 1.0 if not t.any() and not p.any() else 2 * (t & p).sum() / (t.sum() + p.sum())
        per_patient.setdefault(g, []).append(dice)
    g = m["tasks"]["lesion"]["test"]["by_group"]
    assert g["n"] == len(per_patient) and g["largest"] == max(map(len, per_patient.values()))
    assert g["mean"] == pytest.approx(np.mean([np.mean(v) for v in per_patient.values()]), abs=1e-6)
    assert f"{g['mean']:.4f}" in (tiny_run / "report.md").read_text()
    big = g["largest_group"]   # the largest patient's own mean, and the per-image mean of all other images
    assert len(per_patient[big]) == g["largest"]
    assert g["largest_mean"] == pytest.approx(np.mean(per_patient[big]), abs=1e-6)
    others = [d for p, v in per_patient.items() if p != big for d in v]
    assert g["others_mean"] == pytest.approx(np.mean(others), abs=1e-6)
    assert f"{big}: dice {g['largest_mean']:.4f}; the other images {g['others_mean']:.4f}" \
        in (tiny_run / "report.md").read_text()


def test_pooled_dice_scores_each_patient_as_one_volume(tiny_run):
    """by_group.dice_pooled: each patient's pixels summed over its images, one Dice per patient, then the mean (by
    hand from the saved maps); reported in report.md and carried into the run's summary scalars."""
    from umsrep.evaluate.scores import _test_scalars

    m, maps = _test_lesion_maps(tiny_run)
    sums = {}
    for t, p, g in maps:
        s = sums.setdefault(g, np.zeros(2))
        s += [2 * (t & p).sum(), t.sum() + p.sum()]
    by_hand = np.mean([1.0 if s[1] == 0 else s[0] / s[1] for s in sums.values()])
    g = m["tasks"]["lesion"]["test"]["by_group"]
    assert g["dice_pooled"] == pytest.approx(by_hand, abs=1e-6)
    assert g["dice_pooled_ci95"][0] <= g["dice_pooled"] <= g["dice_pooled_ci95"][1]
    assert "pixels pooled" in (tiny_run / "report.md").read_text()
    assert _test_scalars(m["tasks"]["lesion"])["dice_pooled_by_group"] == g["dice_pooled"]
    assert "dice_pooled" not in m["tasks"]["diagnosis"]["test"]["by_group"]   # a segmentation's only


def test_no_evaluate_module_imports_train():
    for path in sorted((REPO_ROOT / "umsrep" / "evaluate").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            assert not any(n.startswith("umsrep.train") for n in names), f"{path.name} imports {names}"
    crossval = ast.parse((REPO_ROOT / "umsrep" / "train" / "crossval.py").read_text())
    assert not any(isinstance(n, ast.ImportFrom) and n.module == "umsrep.train.fit" for n in ast.walk(crossval))


def test_report_runs_without_tensorflow(tiny_run):
    before = (tiny_run / "report.html").read_text()
    code = ("import sys\n"
            "sys.modules['tensorflow'] = None\nsys.modules['keras'] = None\n"
            "try:\n    import tensorflow\n    sys.exit(3)\nexcept ImportError:\n    pass\n"
            "from umsrep.cli import main\nrc = main(['report', sys.argv[1]])\n"
            "assert 'tensorflow' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
            "sys.exit(rc)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    r = subprocess.run([sys.executable, "-c", code, str(tiny_run)], capture_output=True, text=True, env=env,
                       cwd=REPO_ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    page = (tiny_run / "report.html").read_text()
    assert page.count("<img ") == before.count("<img ") and "Grad-CAM examples" in page


@pytest.fixture(scope="module")
def other_set(tmp_path_factory):
    """A labelled folder the tiny run never saw, at another resolution (48x48; the model reads 32x32)."""
    from umsrep.data.synthetic import make_ultrasound_dataset

    return make_ultrasound_dataset(tmp_path_factory.mktemp("other") / "set", n=12, size=48, seed=11)


def test_evaluate_on_other_data_matches_a_hand_computation(tiny_run, other_set, tmp_path, capsys):
    import keras

    import umsrep  # noqa: F401  (registers the custom layers)
    import umsrep.models.layers  # noqa: F401
    from umsrep.data.readers import read_image, resize_image

    out = tmp_path / "ext"
    assert main(["evaluate", str(tiny_run), "--data", str(other_set), "--out", str(out)]) == 0
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["external"]["resolution"] == "input" and "nearest-neighbour" in ev["external"]["resize_rule"]

    files = sorted((other_set / "images").glob("*.png"))
    with open(other_set / "labels.csv") as fh:
        label = {r["filename"]: r["label"] for r in csv.DictReader(fh)}
    x = np.stack([resize_image(read_image(f, 1), (32, 32)) for f in files]).astype(np.float32)
    out_model = keras.models.load_model(tiny_run / "model.keras").predict(x, verbose=0)
    dice, correct, right_pixels, pixels = [], [], 0, 0
    for i, f in enumerate(files):
        truth = cv2.imread(str(other_set / "masks" / f.name), cv2.IMREAD_GRAYSCALE) > 0
        assert truth.shape == (48, 48)
        pred = cv2.resize((out_model["lesion"][i, ..., 0] >= 0.5).astype(np.uint8), (48, 48),
                          interpolation=cv2.INTER_NEAREST) > 0
        size = truth.sum() + pred.sum()
        dice.append(1.0 if size == 0 else 2 * (truth & pred).sum() / size)
        right_pixels += (truth == pred).sum()
        pixels += truth.size
        classes = ["benign", "malignant", "normal"]
        correct.append(classes[int(np.argmax(out_model["diagnosis"][i]))] == label[f.name])
    les, dx = ev["tasks"]["lesion"]["test"], ev["tasks"]["diagnosis"]["test"]
    assert les["n"] == dx["n"] == 12
    assert les["dice"] == pytest.approx(np.mean(dice), abs=1e-9)
    assert les["pixel_accuracy"] == pytest.approx(right_pixels / pixels, abs=1e-12)
    assert dx["accuracy"] == pytest.approx(np.mean(correct), abs=1e-12)
    lo, hi = les["dice_ci95"]
    assert lo <= les["dice"] <= hi and les["ci95_bootstrap"] == {"over": "image", "n": 12}
    report = (out / "report.md").read_text()
    assert "nearest-neighbour" in report and "### lesion" in report and "### diagnosis" in report
    assert (out / "report.html").is_file() and (out / "predictions" / "test.npz").is_file()

    capsys.readouterr()
    assert main(["evaluate", str(tiny_run), "--data", str(other_set), "--out", str(out)]) == 2
    assert "--out already holds files" in capsys.readouterr().err
    assert main(["evaluate", str(tiny_run), "--data", str(other_set), "--out", str(out), "--overwrite",
                 "--group-by", "patient"]) == 0
    ev2 = json.loads((out / "evaluation.json").read_text())
    assert ev2["tasks"]["lesion"]["test"]["dice"] == les["dice"]
    assert ev2["tasks"]["lesion"]["test"]["ci95_bootstrap"]["over"] == "patient"


def test_evaluate_other_data_from_a_yaml_and_labels_only(tiny_run, other_set, tmp_path):
    spec = tmp_path / "ext.yaml"
    spec.write_text(f"data:\n  root: {other_set}\n  masks: null\n")
    assert main(["evaluate", str(tiny_run), "--data", str(spec), "--out", str(tmp_path / "o")]) == 0
    ev = json.loads((tmp_path / "o" / "evaluation.json").read_text())
    assert "diagnosis" in ev["tasks"] and "lesion" not in ev["tasks"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"data:\n  root: {other_set}\n  image_size: 64\n")
    assert main(["evaluate", str(tiny_run), "--data", str(bad), "--out", str(tmp_path / "b")]) == 2


def test_predict_writes_masks_at_each_input_size(tiny_run, other_set, tmp_path):
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    src = sorted((other_set / "images").glob("*.png"))[0]
    shutil.copy(src, folder / "a.png")
    img = cv2.imread(str(src), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(folder / "b.png"), cv2.resize(img, (40, 24)))          # width 40, height 24
    out = tmp_path / "pred"
    assert main(["predict", str(tiny_run), str(folder), "--out", str(out)]) == 0
    assert cv2.imread(str(out / "masks" / "a_lesion.png"), cv2.IMREAD_UNCHANGED).shape == (48, 48)
    assert cv2.imread(str(out / "masks" / "b_lesion.png"), cv2.IMREAD_UNCHANGED).shape == (24, 40)
