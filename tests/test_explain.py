"""Grad-CAM (hand-computed on a tiny model, nested encoder, save/load), `umsrep explain`, and report.html."""

from __future__ import annotations

import csv
import json
import re
import shutil

import cv2
import keras
import numpy as np
import pytest

from tests.conftest import write_dicom
from umsrep.cli import main
from umsrep.explain.gradcam import GradCam, mass_inside
from umsrep.models import HEADS
from umsrep.models.pyramid import attach, pyramid_spec


def _tiny_model(seed=0):
    """umsrep layout: image -> nested encoder (one conv level) -> head_dx (GAP -> Dense relu -> Dropout -> Dense)."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((8, 8, 1), name="image")
    a = keras.layers.Conv2D(3, 3, padding="same", name="conv")(image)
    encoder = keras.Model(image, [a], name="encoder")
    head = HEADS.get("classification").build(pyramid_spec(encoder), (8, 8), name="dx", n_classes=2, units=4,
                                             dropout=0.5)
    return attach(encoder, {"dx": head})


def _hand_cam(model, x, k, plus=False):
    """Grad-CAM for GAP -> Dense(relu) -> Dense: dlogit_k/dA_ijc = (W1 @ (W2[:, k] * [h > 0]))_c / (H W)."""
    enc = model.get_layer("encoder")
    a = np.asarray(enc(x))[0].astype(np.float64)                       # (8, 8, 3)
    w1, b1 = [np.asarray(v, np.float64) for v in model.get_layer("head_dx").get_layer("dx_dense").weights]
    w2 = np.asarray(model.get_layer("head_dx").get_layer("dx_probs").weights[0], np.float64)
    h = a.mean(axis=(0, 1)) @ w1 + b1
    g = np.broadcast_to((w1 @ (w2[:, k] * (h > 0))) / 64.0, a.shape)    # the same gradient at every pixel
    if plus:
        denom = 2 * g ** 2 + a.sum(axis=(0, 1)) * g ** 3
        weights = (np.where(denom != 0, g ** 2 / np.where(denom != 0, denom, 1), 0) * np.maximum(g, 0)).sum((0, 1))
    else:
        weights = g.mean(axis=(0, 1))
    cam = np.maximum((a * weights).sum(-1), 0)
    return cam / cam.max() if cam.max() > 0 else cam


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_gradcam_equals_the_hand_computed_map(method):
    model = _tiny_model()
    x = np.random.default_rng(1).random((1, 8, 8, 1)).astype(np.float32)
    for k in (0, 1):
        r = GradCam(model, "dx", method=method)(x, k)
        want = _hand_cam(model, x, k, plus=method == "gradcam++")
        assert r.layer == "encoder/conv" and r.classes == [k]
        np.testing.assert_allclose(r.maps[0], np.clip(want, 0, 1), atol=1e-5)   # same size: no resampling
        np.testing.assert_allclose(r.probs, np.asarray(model(x)["dx"]), atol=1e-6)


def test_gradcam_after_save_and_load_on_the_nested_model(tmp_path):
    model = _tiny_model(seed=2)
    x = np.random.default_rng(3).random((3, 8, 8, 1)).astype(np.float32)
    before = GradCam(model, "dx")(x)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    after = GradCam(loaded, "dx", layer="encoder/conv")(x)
    np.testing.assert_allclose(after.maps, before.maps, atol=1e-6)
    assert after.classes == before.classes == [int(c) for c in np.argmax(np.asarray(model(x)["dx"]), -1)]


def test_mass_inside_a_mask():
    cam = np.zeros((4, 4))
    cam[0, 0], cam[3, 3] = 3.0, 1.0
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    assert mass_inside(cam, mask) == 0.75 and mass_inside(np.zeros((4, 4)), mask) is None


def test_explain_files_folders_dicom_and_errors(tiny_run, tmp_path, capsys):
    imgs = sorted((tiny_run / "data" / "images").glob("*.png"))[:3]
    folder = tmp_path / "in"
    folder.mkdir()
    for f in imgs[:2]:
        shutil.copy(f, folder / f.name)
    dcm = write_dicom(tmp_path / "scan.dcm", cv2.imread(str(imgs[2]), cv2.IMREAD_GRAYSCALE).astype(np.uint16) * 16)
    out = tmp_path / "cam"
    assert main(["explain", str(tiny_run), str(folder), str(dcm), "--task", "diagnosis", "--class", "malignant",
                 "--method", "gradcam++", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "explanations.csv")))
    assert [r["explained_class"] for r in rows] == ["malignant"] * 3 and rows[2]["file"].endswith("scan.dcm")
    for r in rows:
        assert cv2.imread(r["heatmap"]).shape == (32, 32, 3) and cv2.imread(r["overlay"]).shape == (32, 32, 3)
    assert json.loads((out / "explanations.json").read_text())["layer"] == "encoder/enc4_relu"
    capsys.readouterr()
    for args, msg in [(["--task", "lesion"], "'lesion' is not a classification head"),
                      (["--task", "nope"], "--task: unknown task 'nope'"),
                      (["--task", "diagnosis", "--layer", "encoder/x"], "--layer: 'encoder/x' is not a 4-D layer"),
                      (["--task", "diagnosis", "--class", "cyst"], "--class: 'cyst' is not a class of 'diagnosis'")]:
        assert main(["explain", str(tiny_run), str(folder), "--out", str(tmp_path / "x"), *args]) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_metrics_hold_decisions_and_gradcam_localization(tiny_run):
    m = json.loads((tiny_run / "metrics.json").read_text())
    d = m["derive"]
    assert set(d) == {"refer", "discharge"}
    t = d["refer"]["test"]
    assert t["tp"] + t["fp"] + t["tn"] + t["fn"] == t["n_with_truth"] == t["n"]
    assert t["accuracy"] == pytest.approx((t["tp"] + t["tn"]) / t["n"])
    loc = m["explain"]["diagnosis"]
    assert loc["mask_task"] == "lesion" and loc["layer"] == "encoder/enc4_relu"
    for r in loc["classes"].values():
        assert 0 <= r["cam_mass_in_mask"] <= 1 and 0 < r["mask_area_fraction"] < 1
    report = (tiny_run / "report.md").read_text()
    assert "## Derived decisions" in report and "## Grad-CAM localization" in report


def test_report_html_is_self_contained_and_complete(tiny_run):
    page = (tiny_run / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)   # nothing fetched from a network
    assert not re.search(r"<(script|link)\b", page)
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images and all(u.startswith("data:image/png;base64,") for u in images)
    for section in ["Data", "Training", "Results", "Derived decisions", "Grad-CAM localization", "Recipe",
                    "Learning curves", "Confusion matrices and ROC curves", "Test segmentations",
                    "Grad-CAM examples", "Denoising examples", "95% CI"]:
        assert section in page, section
    assert main(["report", str(tiny_run)]) == 0                      # re-drawn from the saved run
    assert (tiny_run / "report.html").read_text().count("<img ") == page.count("<img ")


def test_default_layer_is_the_deepest_level_the_head_reads():
    from umsrep.models.pyramid import pyramid_spec
    from umsrep.recipe import parse_recipe
    from umsrep.train.fit import build_encoder, build_head

    raw = {"name": "t", "modality": "us", "data": {"synthetic": {"n": 24}, "image_size": 32},
           "representation": {"kind": "mmanet", "filters": [4, 4, 8, 8, 8]}, "strategy": {"kind": "joint"},
           "tasks": {"dx": {"type": "classification", "classes": ["a", "b"],
                            "head": {"connection": False, "branch_level": 3, "units": 4}}}}
    r = parse_recipe(raw)
    enc = build_encoder(r, 0.0, 1.0)
    model = attach(enc, {"dx": build_head("dx", r.tasks["dx"], pyramid_spec(enc), (32, 32), "mmanet")})
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
    cam = GradCam(model, "dx")
    assert cam.layer == "encoder/enc3_aspp_fuse_relu" and cam(x).maps.shape == (2, 32, 32)
    from umsrep.errors import RecipeError

    with pytest.raises(RecipeError, match="does not feed the 'dx' head"):
        GradCam(model, "dx", layer="encoder/enc5_res_relu")(x)
