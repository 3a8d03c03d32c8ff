"""The quickstart path end to end on tiny synthetic images: fit -> run directory -> evaluate -> predict."""

from __future__ import annotations

import csv
import json
import shutil

import cv2
import numpy as np
import pytest
import yaml

from tests.conftest import write_dicom
from umsrep.cli import main


def test_run_directory_complete(tiny_run):
    for f in ["recipe.yaml", "run.json", "splits.json", "model.keras", "metrics.json", "report.md",
              "encoder/encoder.keras", "encoder/preprocessing.json"]:
        assert (tiny_run / f).is_file(), f
    assert list((tiny_run / "logs" / "representation").glob("events.out.tfevents.*"))
    run = json.loads((tiny_run / "run.json").read_text())
    assert run["status"] == "complete" and run["denoise"] is True
    assert run["tasks"]["diagnosis"]["classes"] == ["benign", "malignant", "normal"]
    m = json.loads((tiny_run / "metrics.json").read_text())
    assert set(m["tasks"]) == {"lesion", "diagnosis", "denoise"}
    for key in ["accuracy", "precision", "recall", "f1", "mcc", "roc_auc", "sensitivity", "specificity",
                "confusion_matrix"]:
        assert key in m["tasks"]["diagnosis"]["test"]
    for key in ["dice", "iou", "pixel_accuracy"]:
        assert 0.0 <= m["tasks"]["lesion"]["test"][key] <= 1.0
    den = m["tasks"]["denoise"]["test"]
    assert set(den) == {"gaussian_0.1", "speckle_0.2"}
    assert all(set(v) >= {"noisy", "denoised"} and "ms_ssim" in v["denoised"] for v in den.values())
    st = m["stages"]
    assert set(st) == {"representation", "lesion", "diagnosis"}
    assert all(s["wall_time_s"] > 0 and s["parameters"]["trainable"] > 0 for s in st.values())
    # independent strategy: head stages train only their head
    assert st["diagnosis"]["parameters"]["trainable"] == m["parameters"]["heads"]["diagnosis"]
    assert st["diagnosis"]["parameters"]["total"] == m["parameters"]["encoder"] + m["parameters"]["heads"]["diagnosis"]
    report = (tiny_run / "report.md").read_text()
    for section in ["## Data", "## Training", "### lesion", "### diagnosis", "### denoise", "confusion matrix"]:
        assert section in report


def test_patient_level_split_no_leakage(tiny_run):
    splits = json.loads((tiny_run / "splits.json").read_text())
    (src,) = splits["sources"].values()
    with open(tiny_run / "data" / "labels.csv") as fh:
        patient = {r["filename"].rsplit(".", 1)[0]: r["patient"] for r in csv.DictReader(fh)}
    sets = {s: {patient[n] for n in src[s]} for s in ("train", "val", "test")}
    assert sets["train"] and sets["test"] and sets["val"]
    assert not (sets["train"] & sets["test"]) and not (sets["train"] & sets["val"]) and not (sets["val"] & sets["test"])
    assert len(src["train"]) + len(src["val"]) + len(src["test"]) == 36


def test_evaluate_reproduces_metrics(tiny_run):
    assert main(["evaluate", str(tiny_run)]) == 0
    ev = json.loads((tiny_run / "evaluation.json").read_text())
    m = json.loads((tiny_run / "metrics.json").read_text())
    for task in ("lesion", "diagnosis"):
        for k in ("dice", "accuracy", "roc_auc", "mcc"):
            if k in m["tasks"][task]["test"]:
                assert ev["tasks"][task]["test"][k] == pytest.approx(m["tasks"][task]["test"][k], abs=1e-6)
    assert ev["tasks"]["denoise"]["test"]["gaussian_0.1"]["denoised"]["psnr"] == \
        pytest.approx(m["tasks"]["denoise"]["test"]["gaussian_0.1"]["denoised"]["psnr"], abs=1e-4)


def test_predict_files_folders_and_dicom(tiny_run, tmp_path):
    imgs = sorted((tiny_run / "data" / "images").glob("*.png"))[:3]
    folder = tmp_path / "in"
    folder.mkdir()
    for f in imgs[:2]:
        shutil.copy(f, folder / f.name)
    write_dicom(tmp_path / "scan.dcm", cv2.imread(str(imgs[2]), cv2.IMREAD_GRAYSCALE).astype(np.uint16) * 16)

    out = tmp_path / "pred"
    assert main(["predict", str(tiny_run), str(folder), str(tmp_path / "scan.dcm"), "--out", str(out)]) == 0
    with open(out / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and rows[2]["file"].endswith("scan.dcm")
    for r in rows:
        p = [float(r[f"diagnosis_p_{c}"]) for c in ("benign", "malignant", "normal")]
        assert sum(p) == pytest.approx(1.0, abs=1e-4)
        assert r["diagnosis"] in ("benign", "malignant", "normal")
        mask = cv2.imread(r["lesion_mask"], cv2.IMREAD_UNCHANGED)
        assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 255}
        assert r["refer"] in ("True", "False") and r["discharge"] in ("True", "False")
        assert not (r["refer"] == "True" and r["discharge"] == "True")   # discharge needs "not refer"
        assert cv2.imread(r["overlay"]).shape == (32, 32, 3)
    assert (out / "denoised" / "scan.png").is_file()
    js = json.loads((out / "predictions.json").read_text())
    assert js["predictions"][0]["file"] == rows[0]["file"] and set(js["decisions"]) == {"refer", "discharge"}


def test_predict_bad_input(tiny_run, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(["predict", str(tiny_run), str(tmp_path / "nope.png"), "--out", str(out)]) == 2
    assert "nope.png: no such file or folder" in capsys.readouterr().err
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    assert main(["predict", str(tiny_run), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and err.count("\n") == 1
    assert not out.exists()
    assert main(["predict", str(tmp_path), str(bad), "--out", str(out)]) == 2
    assert "not a umsrep run directory" in capsys.readouterr().err


def test_fit_refuses_nonempty_out(tiny_recipe_file, tiny_run, capsys):
    before = (tiny_run / "metrics.json").read_bytes()
    assert main(["fit", str(tiny_recipe_file), "--out", str(tiny_run)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tiny_run / "metrics.json").read_bytes() == before


def test_reuse_encoder_with_bad_files(tiny_run, tmp_path, capsys):
    """init_from reuses the trained encoder (preprocessing checked); on_bad_file decides error vs skip."""
    data = tmp_path / "data"
    shutil.copytree(tiny_run / "data", data)
    victim = sorted((data / "images").glob("*.png"))[0]
    victim.write_bytes(b"garbage")
    recipe = yaml.safe_load((tiny_run / "recipe.yaml").read_text())
    recipe["data"].update({"synthetic": None, "root": str(data), "on_bad_file": "error"})
    recipe["representation"]["init_from"] = str(tiny_run)
    for t in recipe["tasks"].values():
        t["epochs"] = 1
    f = tmp_path / "reuse.yaml"
    f.write_text(yaml.safe_dump(recipe))
    assert main(["fit", str(f), "--out", str(tmp_path / "r_err")]) == 2
    assert victim.name in capsys.readouterr().err

    assert main(["fit", str(f), "--set", "data.image_size=16", "--out", str(tmp_path / "r_mm")]) == 2
    assert "encoder preprocessing does not match" in capsys.readouterr().err

    assert main(["fit", str(f), "--set", "data.on_bad_file=skip", "--out", str(tmp_path / "r_ok")]) == 0
    m = json.loads((tmp_path / "r_ok" / "metrics.json").read_text())
    (src,) = m["data"]["sources"].values()
    assert src["images"] == 35 and [s["file"] for s in src["skipped"]] == [str(victim)]
    assert victim.name in (tmp_path / "r_ok" / "report.md").read_text()
    assert "representation" not in m["stages"] and "denoise" not in m["tasks"]  # encoder reused, not retrained


def test_supervised_representation(tmp_path, tiny_recipe_file):
    recipe = yaml.safe_load(tiny_recipe_file.read_text())
    recipe["representation"] = {"kind": "supervised", "filters": [4, 8, 8, 8, 8, 8], "epochs": 1, "batch_size": 8}
    f = tmp_path / "sup.yaml"
    f.write_text(yaml.safe_dump(recipe))
    assert main(["fit", str(f), "--out", str(tmp_path / "sup")]) == 0
    m = json.loads((tmp_path / "sup" / "metrics.json").read_text())
    assert m["stages"]["representation"]["task"] == "diagnosis"
    assert set(m["stages"]) == {"representation", "lesion"}  # diagnosis head was trained with the encoder
    assert "denoise" not in m["tasks"] and "test" in m["tasks"]["diagnosis"]
