"""Train/val/test splits: determinism, partition, stratification, grouping, k folds; plus one real-data (ACDC) check."""

from __future__ import annotations

import numpy as np
import pytest

from umsrep.data.splits import check_classes_present, split_indices
from umsrep.errors import DataError


def assert_partition(s, n):
    assert set(s) == {"train", "val", "test"}
    parts = [s["train"], s["val"], s["test"]]
    for p in parts:
        assert np.all(np.diff(p) > 0)  # sorted, unique
    allidx = np.concatenate(parts)
    assert len(allidx) == n and set(allidx.tolist()) == set(range(n))


def test_deterministic_and_seed_dependent():
    a = split_indices(100, seed=3)
    b = split_indices(100, seed=3)
    c = split_indices(100, seed=4)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["test"], c["test"])
    assert_partition(a, 100)
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (70, 10, 20)


def test_stratified_preserves_ratios():
    labels = ["a"] * 600 + ["b"] * 300 + ["c"] * 100
    s = split_indices(1000, labels=labels, test=0.2, val=0.1, seed=0)
    assert_partition(s, 1000)
    for part, frac in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        got = [labels[i] for i in s[part]]
        assert len(got) == round(1000 * frac)
        assert abs(got.count("a") / len(got) - 0.6) < 0.02
        assert abs(got.count("c") / len(got) - 0.1) < 0.02


def test_none_labels_and_tiny_class_fall_back():
    labels = ["x"] * 30 + [None] * 10 + ["rare"]  # "rare" has one sample: stratification impossible
    s = split_indices(len(labels), labels=labels, seed=1)
    assert_partition(s, len(labels))


def test_groups_never_leak():
    rng = np.random.default_rng(0)
    for seed in range(5):
        n = 500
        groups = [f"p{g}" for g in rng.integers(0, 60, size=n)]
        labels = [["x", "y", "z"][int(g[1:]) % 3] for g in groups]
        s = split_indices(n, labels=labels, groups=groups, seed=seed)
        assert_partition(s, n)
        seen = [{groups[i] for i in s[p]} for p in ("train", "val", "test")]
        assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
        n_groups = len(set(groups))
        assert abs(len(seen[2]) - 0.2 * n_groups) <= 1  # fractions are of groups


def test_groups_with_impossible_stratification_stay_grouped():
    groups = ["g1"] * 5 + ["g2"] * 5 + ["g3"] * 5 + ["g4"] * 5 + [None, None]
    labels = ["a"] * 5 + ["b"] * 5 + ["c"] * 5 + ["d"] * 5 + ["e", "e"]
    s = split_indices(len(groups), labels=labels, groups=groups, test=0.3, val=0.2, seed=0)
    assert_partition(s, len(groups))
    for g in ("g1", "g2", "g3", "g4"):
        members = {i for i, x in enumerate(groups) if x == g}
        assert sum(bool(members & set(s[p].tolist())) for p in s) == 1


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("stratified", [False, True])
def test_k_folds_disjoint_and_cover(grouped, stratified):
    rng = np.random.default_rng(2)
    n, k = 120, 5
    groups = [f"p{g}" for g in rng.integers(0, 30, size=n)] if grouped else None
    labels = [str(x) for x in rng.integers(0, 3, size=n)] if stratified else None
    tests = []
    for fold in range(k):
        s = split_indices(n, labels=labels, groups=groups, folds=k, fold=fold, val=0.1, seed=7)
        assert_partition(s, n)
        assert len(s["val"]) > 0
        if grouped:
            sets = [{groups[i] for i in s[p]} for p in ("train", "val", "test")]
            assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
        tests.append(set(s["test"].tolist()))
    assert sum(len(t) for t in tests) == n and set().union(*tests) == set(range(n))
    again = split_indices(n, labels=labels, groups=groups, folds=k, fold=3, val=0.1, seed=7)
    assert set(again["test"].tolist()) == tests[3]


def test_k_folds_tiny_class_fallback():
    labels = ["a"] * 20 + ["b"]
    tests = [set(split_indices(21, labels=labels, folds=4, fold=f, val=0)["test"].tolist()) for f in range(4)]
    assert set().union(*tests) == set(range(21)) and sum(map(len, tests)) == 21


def test_val_zero_and_empty_split_errors():
    s = split_indices(10, val=0, test=0.3)
    assert len(s["val"]) == 0 and len(s["test"]) == 3
    with pytest.raises(DataError, match=r"split: test is empty \(n=10, test=0"):
        split_indices(10, test=0)
    with pytest.raises(DataError, match="split: train is empty"):
        split_indices(2, test=0.5, val=0.5 - 1e-9)
    with pytest.raises(DataError, match="split: train is empty"):
        split_indices(4, groups=["a", "a", "b", "b"], test=0.5, val=0.4)
    with pytest.raises(DataError, match="split: test is empty"):
        split_indices(3, groups=["a", "a", "a"], folds=2)


def test_check_classes_present():
    check_classes_present(["a", "b", "a"], ["a", "b"], "the training split of task t")
    with pytest.raises(DataError, match="class 'normal' has no sample in the training split of task X"):
        check_classes_present(["benign", "malignant"], ["benign", "normal", "malignant"],
                              "the training split of task X")


def test_real_acdc_grouped(real_data):
    from umsrep.data.dataset import load_dataset

    root = real_data / "acdc"
    if not root.is_dir():
        pytest.skip(f"real data not found at {root}; set UMSREP_DATA")
    data = load_dataset(root, masks="masks", labels="meta.csv", group_by="patient", image_size=(64, 64))
    assert len(data) > 0 and data.images.shape[1:] == (64, 64, 1) and data.has_mask.all()
    assert set(np.unique(data.masks).tolist()) <= {0, 1, 2, 3}
    s = split_indices(len(data), labels=data.labels, groups=data.groups, seed=0)
    assert_partition(s, len(data))
    patients = [{data.groups[i] for i in s[p]} for p in ("train", "val", "test")]
    assert all(None not in p for p in patients)
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])


# ------------------------------------------------------------------ counts, split files, split seed (recipe level)
def test_counts_of_samples_and_of_groups():
    labels = ["a"] * 60 + ["b"] * 40
    s = split_indices(100, labels=labels, test=20, val=10, seed=1)
    assert_partition(s, 100)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (70, 10, 20)
    groups = [f"p{i // 4}" for i in range(100)]                       # 25 patients of 4 images
    s = split_indices(100, labels=labels, groups=groups, test=5, val=3, seed=1)
    seen = [{groups[i] for i in s[p]} for p in ("train", "val", "test")]
    assert (len(seen[0]), len(seen[1]), len(seen[2])) == (17, 3, 5)   # counts of groups
    assert len(s["test"]) == 20
    with pytest.raises(DataError, match="split: train is empty"):
        split_indices(10, test=6, val=4)


SPLIT_RECIPE = {
    "name": "t", "modality": "ultrasound", "seed": 1,
    "data": {"synthetic": {"n": 60, "size": 16, "seed": 2, "per_patient": 1}, "image_size": 16,
             "split": {"test": 20, "val": 10}},
    "tasks": {"lesion": {"type": "segmentation", "classes": ["lesion"]},
              "diagnosis": {"type": "classification", "classes": ["benign", "malignant", "normal"]}}}


def _prepared(tmp_path, **data):
    import copy

    from umsrep.data.prepare import prepare
    from umsrep.recipe import parse_recipe

    raw = copy.deepcopy(SPLIT_RECIPE)
    seed = data.pop("seed", None)
    if seed is not None:
        raw["seed"] = seed
    for k, v in data.items():
        raw["data"].setdefault(k, {}).update(v) if isinstance(v, dict) else raw["data"].__setitem__(k, v)
    recipe = parse_recipe(raw)
    rep, tasks, _ = prepare(recipe, tmp_path, log=lambda s: None)
    return recipe, rep


def test_recipe_split_counts_are_exact(tmp_path):
    _, rep = _prepared(tmp_path)
    assert {k: len(v) for k, v in rep.split.items()} == {"train": 30, "val": 10, "test": 20}
    _, rep = _prepared(tmp_path, synthetic={"per_patient": 2}, group_by="patient", split={"test": 6, "val": 3})
    patients = {s: {rep.data.groups[i] for i in rep.split[s]} for s in ("train", "val", "test")}
    assert {s: len(p) for s, p in patients.items()} == {"train": 21, "val": 3, "test": 6}
    assert len(rep.split["test"]) == 12


def test_split_seed_is_separate_from_the_training_seed(tmp_path):
    def test_names(**kw):
        return _prepared(tmp_path, **kw)[1].names("test")

    assert test_names(seed=1) != test_names(seed=2)
    assert test_names(seed=1, split={"seed": 7}) == test_names(seed=2, split={"seed": 7})
    recipe, _ = _prepared(tmp_path, seed=2, split={"seed": 7})
    assert recipe.split_seed == 7


def test_a_split_file_is_reused(tmp_path):
    from umsrep.data.splits import write_split_file

    _, rep = _prepared(tmp_path, seed=4)
    f = tmp_path / "split.csv"
    write_split_file(f, rep.data.files, rep.split)
    _, again = _prepared(tmp_path, seed=9, split={"file": str(f)})
    for s in ("train", "val", "test"):
        assert again.names(s) == rep.names(s)
    lines = f.read_text().splitlines()
    (tmp_path / "short.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match="short.csv: 1 image.s. of the data set have no row"):
        _prepared(tmp_path, split={"file": str(tmp_path / "short.csv")})
    (tmp_path / "bad.csv").write_text(lines[0] + "\n" + lines[1].rsplit(",", 1)[0] + ",holdout\n")
    with pytest.raises(DataError, match="bad.csv: row 2: split 'holdout'"):
        _prepared(tmp_path, split={"file": str(tmp_path / "bad.csv")})


def test_a_split_file_may_not_split_a_group(tmp_path):
    from umsrep.data.splits import read_split_file

    f = tmp_path / "s.csv"
    f.write_text("filename,split\na.png,train\nb.png,test\nc.png,test\n")
    with pytest.raises(DataError, match="group 'p1' is in both the train and the test split"):
        read_split_file(f, ["x/a.png", "x/b.png", "x/c.png"], ["a", "b", "c"], ["p1", "p1", "p2"])


@pytest.mark.parametrize("bad, msg", [(1.5, "a fraction must be in"), (-3, "a count must be >= 0"),
                                      ("x", "expected a fraction")])
def test_split_amounts_are_validated(bad, msg):
    import copy

    from umsrep.errors import RecipeError
    from umsrep.recipe import parse_recipe

    raw = copy.deepcopy(SPLIT_RECIPE)
    raw["data"]["split"] = {"test": bad}
    with pytest.raises(RecipeError, match=f"data.split.test.*{msg}"):
        parse_recipe(raw)
