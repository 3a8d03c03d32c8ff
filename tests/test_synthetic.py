import csv
import json
import time
from collections import Counter

import cv2
import numpy as np
import pytest

from umsrep.data.synthetic import CLASSES, make_ultrasound_dataset
from umsrep.errors import RecipeError


def _rows(root):
    with open(root / "labels.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _read(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


@pytest.fixture(scope="module")
def default_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "us"
    return make_ultrasound_dataset(root), None  # generation speed: bench/synthetic.py


def test_layout_labels_and_manifest(default_set):
    root, _ = default_set
    assert root.is_dir()
    rows = _rows(root)
    assert list(rows[0].keys()) == ["filename", "label", "patient"]
    assert len(rows) == 240
    assert Counter(r["label"] for r in rows) == {"benign": 80, "malignant": 80, "normal": 80}
    names = [r["filename"] for r in rows]
    assert len(set(names)) == 240
    for r in rows:
        assert r["filename"].startswith(r["label"] + "_") and r["filename"].endswith(".png")
    assert sorted(p.name for p in (root / "images").iterdir()) == sorted(names)
    assert sorted(p.name for p in (root / "masks").iterdir()) == sorted(names)

    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["params"] == {"n": 240, "size": 64, "seed": 0, "per_patient": 2}
    assert manifest["counts"] == {"benign": 80, "malignant": 80, "normal": 80}


def test_patients(default_set):
    root, _ = default_set
    by_patient = {}
    for r in _rows(root):
        by_patient.setdefault(r["patient"], []).append(r["label"])
    assert len(by_patient) == 120
    for pid, labels in by_patient.items():
        assert len(pid) == 4 and pid.startswith("p") and pid[1:].isdigit()
        assert len(labels) == 2 and len(set(labels)) == 1
    assert "p000" in by_patient and "p119" in by_patient


def test_images_and_masks(default_set):
    root, _ = default_set
    for r in _rows(root):
        img = _read(root / "images" / r["filename"])
        mask = _read(root / "masks" / r["filename"])
        assert img.dtype == np.uint8 and img.shape == (64, 64)
        assert mask.dtype == np.uint8 and mask.shape == (64, 64)
        assert set(np.unique(mask)) <= {0, 255}
        area = (mask > 0).mean()
        if r["label"] == "normal":
            assert area == 0
        else:
            assert 0.03 <= area <= 0.20, (r["filename"], area)
            n_parts, _ = cv2.connectedComponents((mask > 0).astype(np.uint8))
            assert n_parts == 2  # background + one lesion
        assert img.std() > 10  # speckled, not flat


def test_lesions_are_hypoechoic_and_classes_differ(default_set):
    root, _ = default_set
    ratio = {c: [] for c in CLASSES}
    below = {c: [] for c in CLASSES}
    for r in _rows(root):
        img = _read(root / "images" / r["filename"]).astype(np.float64)
        mask = _read(root / "masks" / r["filename"]) > 0
        if r["label"] == "normal":
            continue
        inside, outside = img[mask].mean(), img[~mask].mean()
        ratio[r["label"]].append(inside / outside)
        # posterior region: columns of the lesion, below it, compared with the same rows elsewhere
        cols = mask.any(0)
        bottom = np.nonzero(mask.any(1))[0].max()
        if bottom < 58:
            post = img[bottom + 2: bottom + 8][:, cols].mean()
            side = img[bottom + 2: bottom + 8][:, ~cols].mean()
            below[r["label"]].append(post / side)
    for c in ("benign", "malignant"):
        assert np.mean(np.array(ratio[c]) < 1) > 0.95, c
    # malignant lesions are markedly darker than benign ones
    assert np.median(ratio["malignant"]) < np.median(ratio["benign"]) - 0.1
    # posterior enhancement (benign) vs shadowing (malignant)
    assert np.median(below["benign"]) > 1.0 > np.median(below["malignant"])


def test_malignant_outlines_are_less_regular(default_set):
    root, _ = default_set
    solidity = {"benign": [], "malignant": []}
    for r in _rows(root):
        if r["label"] == "normal":
            continue
        mask = (_read(root / "masks" / r["filename"]) > 0).astype(np.uint8)
        cnts, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        c = max(cnts, key=cv2.contourArea)
        solidity[r["label"]].append(cv2.contourArea(c) / cv2.contourArea(cv2.convexHull(c)))
    assert np.median(solidity["malignant"]) < np.median(solidity["benign"])


def test_deterministic_and_seed_dependent(tmp_path):
    a = make_ultrasound_dataset(tmp_path / "a", n=12, size=48, seed=5)
    b = make_ultrasound_dataset(tmp_path / "b", n=12, size=48, seed=5)
    c = make_ultrasound_dataset(tmp_path / "c", n=12, size=48, seed=6)
    names = sorted(p.name for p in (a / "images").iterdir())
    assert len(names) == 12
    same_c = 0
    for name in names:
        for sub in ("images", "masks"):
            assert (a / sub / name).read_bytes() == (b / sub / name).read_bytes()
        same_c += (a / "images" / name).read_bytes() == (c / "images" / name).read_bytes()
    assert same_c == 0
    assert (a / "labels.csv").read_bytes() == (b / "labels.csv").read_bytes()


def test_second_call_does_not_regenerate(tmp_path):
    root = make_ultrasound_dataset(tmp_path / "d", n=9, size=32, seed=1)
    files = sorted((root / "images").iterdir()) + [root / "labels.csv", root / "manifest.json"]
    before = {p: p.stat().st_mtime_ns for p in files}
    time.sleep(0.02)
    assert make_ultrasound_dataset(tmp_path / "d", n=9, size=32, seed=1) == root
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_changed_parameters_regenerate_and_drop_stale_files(tmp_path):
    root = make_ultrasound_dataset(tmp_path / "e", n=9, size=32, seed=1)
    make_ultrasound_dataset(root, n=6, size=40, seed=1)
    rows = _rows(root)
    assert len(rows) == 6
    assert sorted(p.name for p in (root / "images").iterdir()) == sorted(r["filename"] for r in rows)
    assert _read(root / "images" / rows[0]["filename"]).shape == (40, 40)
    assert json.loads((root / "manifest.json").read_text())["params"]["size"] == 40


def test_incomplete_set_is_regenerated(tmp_path):
    root = make_ultrasound_dataset(tmp_path / "f", n=6, size=32, seed=2)
    victim = root / "images" / _rows(root)[0]["filename"]
    victim.unlink()
    make_ultrasound_dataset(root, n=6, size=32, seed=2)
    assert victim.is_file()


def test_uneven_counts_and_patients(tmp_path):
    root = make_ultrasound_dataset(tmp_path / "g", n=10, size=32, seed=0, per_patient=3)
    rows = _rows(root)
    assert sorted(Counter(r["label"] for r in rows).values()) == [3, 3, 4]
    by_patient = {}
    for r in rows:
        by_patient.setdefault(r["patient"], set()).add(r["label"])
    assert all(len(v) == 1 for v in by_patient.values())


def test_larger_size_is_reasonable(tmp_path):
    root = make_ultrasound_dataset(tmp_path / "h", n=6, size=256, seed=0)
    for r in _rows(root):
        assert _read(root / "images" / r["filename"]).shape == (256, 256)
        area = (_read(root / "masks" / r["filename"]) > 0).mean()
        assert area == 0 if r["label"] == "normal" else 0.03 <= area <= 0.20


@pytest.mark.parametrize("kw", [{"n": 0}, {"size": 8}, {"per_patient": 0}, {"seed": -1}, {"n": 2.5}])
def test_bad_parameters(tmp_path, kw):
    with pytest.raises(RecipeError):
        make_ultrasound_dataset(tmp_path / "x", **kw)
