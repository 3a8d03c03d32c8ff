"""From recipe to task arrays: label checks, mask class mapping, shared splits; and the real data sets."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from umsrep.data.prepare import prepare, segmentation_targets
from umsrep.data.synthetic import make_ultrasound_dataset
from umsrep.errors import DataError
from umsrep.recipe import parse_recipe


def _recipe(root, **task_over):
    tasks = {"lesion": {"type": "segmentation", "classes": ["lesion"]},
             "dx": {"type": "classification", "classes": ["benign", "malignant", "normal"]}}
    for k, v in task_over.items():
        tasks[k] = v
    return parse_recipe({"name": "t", "seed": 0, "modality": "ultrasound",
                         "data": {"root": str(root), "image_size": 32, "group_by": "patient",
                                  "split": {"test": 0.25, "val": 0.2}},
                         "tasks": tasks})


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_ultrasound_dataset(tmp_path_factory.mktemp("syn"), n=36, size=32, seed=2)


def test_tasks_share_the_representation_split(synth, tmp_path):
    rep, tasks, sources = prepare(_recipe(synth), tmp_path, log=lambda *_: None)
    assert len(sources) == 1
    for td in tasks.values():
        assert td.source is rep
        for s in ("train", "val", "test"):
            assert set(td.index[s]) <= set(rep.split[s])
    x, y = tasks["dx"].arrays("train")
    assert x.shape[1:] == (32, 32, 1) and y.dtype == np.int32 and set(np.unique(y)) == {0, 1, 2}
    xs, ys = tasks["lesion"].arrays("test")
    assert ys.shape == xs.shape[:3] and set(np.unique(ys)) <= {0, 1}


def _rewrite_label(root, tmp_path, old, new, count=1):
    import shutil

    dst = tmp_path / "d"
    shutil.copytree(root, dst)
    rows = list(csv.DictReader(open(dst / "labels.csv")))
    changed = 0
    for r in rows:
        if r["label"] == old and changed < count:
            r["label"] = new
            changed += 1
    with open(dst / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return dst


def test_label_not_in_classes_error_and_skip(synth, tmp_path):
    root = _rewrite_label(synth, tmp_path, "benign", "cyst")
    with pytest.raises(DataError, match=r"benign_\d+\.png: label 'cyst' is not one of the classes of task 'dx'"):
        prepare(_recipe(root), tmp_path, log=lambda *_: None)
    r = _recipe(root)
    r.data.on_bad_file = "skip"
    _, tasks, _ = prepare(r, tmp_path, log=lambda *_: None)
    assert len(tasks["dx"].skipped) == 1 and "cyst" in tasks["dx"].skipped[0].reason
    assert sum(tasks["dx"].counts().values()) == 35 and sum(tasks["lesion"].counts().values()) == 36


def test_class_missing_from_training_split(synth, tmp_path):
    root = _rewrite_label(synth, tmp_path, "normal", "rare", count=100)
    tasks = {"dx": {"type": "classification", "classes": ["benign", "malignant", "normal", "rare"]}}
    r = _recipe(root, **tasks)
    with pytest.raises(DataError, match="class 'normal' has no sample in the training split of task 'dx'"):
        prepare(r, tmp_path, log=lambda *_: None)


def test_segmentation_targets_mapping():
    raw = np.array([[[0, 1, 2, 3, 255]]])
    np.testing.assert_array_equal(segmentation_targets(raw, ["fg"], None), [[[0, 1, 1, 1, 1]]])
    np.testing.assert_array_equal(segmentation_targets(raw, ["myo"], {"myo": [2]}), [[[0, 0, 1, 0, 0]]])
    np.testing.assert_array_equal(
        segmentation_targets(raw, ["rv", "myo", "lv"], {"rv": [1], "myo": [2], "lv": [3]}), [[[0, 1, 2, 3, 0]]])


def test_real_busi_loads(real_data, tmp_path):
    root = real_data / "busi"
    if not root.is_dir():
        pytest.skip(f"BUSI not found at {root}")
    r = parse_recipe({"name": "b", "modality": "ultrasound", "data": {"root": str(root), "image_size": 64},
                      "tasks": {"lesion": {"type": "segmentation", "classes": ["lesion"]},
                                "dx": {"type": "classification", "classes": ["benign", "malignant", "normal"]}}})
    rep, tasks, _ = prepare(r, tmp_path, log=lambda *_: None)
    assert len(rep.data) == 780 and not rep.data.skipped
    counts = {c: rep.data.labels.count(c) for c in ("benign", "malignant", "normal")}
    assert counts == {"benign": 437, "malignant": 210, "normal": 133}
    normal = np.array([lab == "normal" for lab in rep.data.labels])
    assert tasks["lesion"].targets[normal].max() == 0 and tasks["lesion"].targets[~normal].max() == 1
    # stratified: each split keeps the class ratios within a few percent
    for s in ("train", "test"):
        labs = [rep.data.labels[i] for i in rep.split[s]]
        assert abs(labs.count("malignant") / len(labs) - 210 / 780) < 0.03


def test_task_with_its_own_data(synth, tmp_path):
    """Tasks may come from other files: a data override gives that task its own data set and split."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(synth, other)
    shutil.rmtree(other / "masks")
    r = _recipe(synth, dx={"type": "classification", "classes": ["benign", "malignant", "normal"],
                           "data": {"root": str(other), "masks": None}})
    rep, tasks, sources = prepare(r, tmp_path, log=lambda *_: None)
    assert len(sources) == 2
    assert tasks["lesion"].source is rep and tasks["dx"].source is not rep
    assert tasks["dx"].source.data.masks is None and tasks["dx"].source.config.root == str(other)


def test_segmentation_class_missing_from_training_masks(synth, tmp_path):
    r = _recipe(synth, lesion={"type": "segmentation", "classes": ["lesion", "calcification"],
                               "mask_classes": {"lesion": [255], "calcification": [128]}})
    with pytest.raises(DataError, match="class 'calcification' has no sample in the training split of task 'lesion'"):
        prepare(r, tmp_path, log=lambda *_: None)


def test_label_map_derives_binary_tasks_from_one_label_column(synth, tmp_path):
    """Homogeneous tasks from one CSV (as the paper did for pneumonia): each binary task keeps only the images
    whose label it maps, on the shared split; the others are counted, not errors."""
    r = _recipe(synth,
                bn={"type": "classification", "classes": ["benign", "normal"],
                    "label_map": {"benign": "benign", "normal": "normal"}},
                abnormal={"type": "classification", "classes": ["no", "yes"],
                          "label_map": {"normal": "no", "benign": "yes", "malignant": "yes"}})
    rep, tasks, _ = prepare(r, tmp_path, log=lambda *_: None)
    labels = np.asarray(rep.data.labels)
    bn, dx, ab = tasks["bn"], tasks["dx"], tasks["abnormal"]
    assert bn.excluded == {"malignant": int(np.sum(labels == "malignant"))}
    assert sum(bn.counts().values()) == int(np.sum(labels != "malignant"))
    for s in ("train", "val", "test"):
        assert set(bn.index[s]) <= set(rep.split[s])
        np.testing.assert_array_equal(labels[bn.index[s]], np.asarray(["benign", "normal"])[bn.targets[bn.index[s]]])
        np.testing.assert_array_equal(ab.targets[ab.index[s]], (labels[ab.index[s]] != "normal").astype(np.int32))
    assert ab.excluded == {} and ab.counts() == dx.counts()


@pytest.mark.parametrize("over,msg", [
    ({"label_map": {"benign": "benign"}}, "label_map gives no label for class 'normal'"),
    ({"label_map": {"benign": "benign", "normal": "cyst"}}, "label_map maps to 'cyst'"),
    ({"type": "segmentation", "classes": ["lesion"], "label_map": {"a": "lesion"}}, "label_map is only for"),
])
def test_label_map_is_validated(synth, over, msg):
    from umsrep.errors import RecipeError

    with pytest.raises(RecipeError, match=msg):
        _recipe(synth, bn={"type": "classification", "classes": ["benign", "normal"], **over})
