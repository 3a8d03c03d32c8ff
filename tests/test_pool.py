"""`data.pool`: several data sets read and split on their own, trained as one, scored per data set."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from umsrep.data.prepare import prepare
from umsrep.data.synthetic import make_ultrasound_dataset
from umsrep.errors import DataError, RecipeError
from umsrep.recipe import load_recipe, parse_recipe

QUIET = {"log": lambda *_: None}


def _renamed(src, dst, prefix):
    """A copy of a synthetic set whose files (and labels rows) carry ``prefix``: a second, differently named set."""
    for sub in ("images", "masks"):
        (dst / sub).mkdir(parents=True)
        for f in sorted((src / sub).iterdir()):
            shutil.copy(f, dst / sub / f"{prefix}{f.name}")
    rows = list(csv.DictReader(open(src / "labels.csv")))
    with open(dst / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "filename": prefix + r["filename"]} for r in rows)
    return dst


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    base = tmp_path_factory.mktemp("pool")
    a = make_ultrasound_dataset(base / "first", n=24, size=32, seed=1)
    b = _renamed(make_ultrasound_dataset(base / "raw_second", n=36, size=32, seed=7), base / "second", "s_")
    return a, b


def _raw(a, pool, **data):
    return {"name": "t", "seed": 0, "modality": "ultrasound",
            "data": {"root": str(a), "image_size": 32, "group_by": "patient", "split": {"test": 0.25, "val": 0.2},
                     "pool": pool, **data},
            "tasks": {"lesion": {"type": "segmentation", "classes": ["lesion"]},
                      "dx": {"type": "classification", "classes": ["benign", "malignant", "normal"]}}}


def test_pooled_sets_keep_their_own_splits(two_sets, tmp_path):
    a, b = two_sets
    rep, tasks, sources = prepare(parse_recipe(_raw(a, [{"root": str(b), "split": {"test": 0.5, "val": 0.1}}])),
                                  tmp_path, **QUIET)
    alone_a, _, _ = prepare(parse_recipe(_raw(a, [])), tmp_path, **QUIET)
    raw_b = _raw(b, [])
    raw_b["data"]["split"] = {"test": 0.5, "val": 0.1}
    alone_b, _, _ = prepare(parse_recipe(raw_b), tmp_path, **QUIET)
    assert len(sources) == 1 and len(rep.data) == len(alone_a.data) + len(alone_b.data)
    assert rep.data.origins == ["first"] * len(alone_a.data) + ["second"] * len(alone_b.data)
    for s in ("train", "val", "test"):  # each set's split is the split of its own recipe, not a re-split of all
        assert rep.names(s) == alone_a.names(s) + alone_b.names(s)
    assert rep.pooled_counts()["second"] == {"root": str(b), "images": len(alone_b.data),
                                             **{s: len(alone_b.split[s]) for s in ("train", "val", "test")}}
    # group values carry the data set, so patient 'p001' of one set is not patient 'p001' of the other
    assert all(g.startswith(("first/", "second/")) for g in rep.data.groups)
    np.testing.assert_array_equal(rep.data.images[len(alone_a.data):], alone_b.data.images)


def test_pool_refuses_shared_names_fields_and_is_not_inherited(two_sets, tmp_path):
    a, b = two_sets
    with pytest.raises(DataError, match=r"both have an image named 'benign_000'.*rename one"):
        prepare(parse_recipe(_raw(a, [{"root": str(a / ".." / "raw_second")}])), tmp_path, **QUIET)
    for entry, field in (({"root": str(b), "image_size": 64}, r"data\.pool\[0\]\.image_size: pooled data sets "
                                                               r"share"),
                         ({"root": str(b), "augment": "strong"}, r"pool\[0\]\.augment"),
                         ({"root": str(b), "resize": "letterbox"}, r"pool\[0\]\.resize"),
                         ({"root": str(b), "split": {"folds": 3}}, r"pool\[0\]\.split\.folds: pooled data sets"),
                         ({"root": str(b), "pool": []}, r"pool\[0\]\.pool: pools do not nest"),
                         ({"root": str(b), "split": {"test": 1.5}}, r"data\.pool\[0\]\.split\.test: a fraction"),
                         ({"roots": str(b)}, r"data\.pool\[0\]\.roots: unknown field")):
        p = tmp_path / "r.yaml"
        import yaml

        p.write_text(yaml.safe_dump(_raw(a, [entry])))
        with pytest.raises(RecipeError, match=field) as e:
            load_recipe(p)
        assert "\n" not in str(e.value)
    raw = _raw(a, [{"root": str(b)}])
    raw["tasks"]["lesion"]["data"] = {"root": str(b)}
    r = parse_recipe(raw)
    assert r.task_data("lesion").pool == [] and r.task_data("dx").pool    # an override names one data set
    assert [c.root for c in r.data.parts()] == [str(a), str(b)]
    # a pooled set's split changes the shared split field by field: a labelled-data fraction applies to both sets
    raw = _raw(a, [{"root": str(b), "split": {"test": 0.5}}], split={"test": 0.25, "train_fraction": 0.5, "seed": 4})
    parts = parse_recipe(raw).data.parts()
    assert [(c.split.test, c.split.train_fraction, c.split.seed) for c in parts] == [(0.25, 0.5, 4), (0.5, 0.5, 4)]


def test_scores_per_pooled_data_set():
    from umsrep.evaluate.report import _ci_note
    from umsrep.evaluate.scores import _test_scalars, score_task
    from umsrep.recipe import TaskConfig

    truth = np.zeros((4, 8, 8), np.uint8)
    truth[:, 2:6, 2:6] = 1
    pred = truth.copy()
    pred[2:] = 0                                    # the second set's two images are missed entirely
    p = {"seg.has_truth": np.ones(4, bool), "seg.truth": truth, "seg.labels": pred,
         "seg.origins": np.array(["a", "a", "b", "b"])}
    m, per = score_task(p, "seg", TaskConfig(type="segmentation", classes=["x"]))
    assert m["dice"] == pytest.approx(0.5)
    assert m["by_source"]["a"]["dice"] == pytest.approx(1.0) and m["by_source"]["b"]["dice"] == pytest.approx(0.0)
    assert m["by_source"]["a"]["n"] == 2 and len(m["by_source"]["b"]["dice_ci95"]) == 2
    task = {"type": "segmentation", "test": m}
    assert _test_scalars(task)["dice_on_a"] == pytest.approx(1.0)
    assert any("per pooled data set" in line and "b 0.000" in line for line in _ci_note(task))


def test_fit_on_pooled_data_reports_each_set(two_sets, tmp_path):
    import json

    import yaml

    from umsrep.cli import main

    a, b = two_sets
    raw = _raw(a, [{"root": str(b)}])
    raw["representation"] = {"kind": "denoising_autoencoder", "filters": [4, 8], "epochs": 1, "batch_size": 8,
                             "noise": [{"kind": "gaussian", "levels": [0.1]}]}
    raw["tasks"] = {"lesion": {"type": "segmentation", "classes": ["lesion"], "epochs": 1, "batch_size": 8}}
    p = tmp_path / "pool.yaml"
    p.write_text(yaml.safe_dump(raw))
    assert main(["fit", str(p), "--out", str(tmp_path / "run")]) == 0
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["tasks"]["lesion"]["test"]
    src = test["by_source"]
    assert set(src) == {"first", "second"} and sum(v["n"] for v in src.values()) == test["n"]
    weighted = sum(v["dice"] * v["n"] for v in src.values()) / test["n"]
    assert weighted == pytest.approx(test["dice"], abs=1e-6)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    pool = next(iter(metrics["data"]["sources"].values()))["pool"]
    assert {o: v["test"] for o, v in pool.items()} == {o: v["n"] for o, v in src.items()}
    report = (tmp_path / "run" / "report.md").read_text()
    assert "pooled (data.pool):" in report and str(b) in report and "per pooled data set" in report
    # a card published from a pooled run names every data set the encoder saw
    from umsrep import pretrained

    card = pretrained.publish(tmp_path / "run", "pooled-test", dest=tmp_path / "reg")
    assert yaml.safe_load((card / "card.yaml").read_text())["training"]["also"] == [str(b)]
    # the run's split.csv, given back as data.split.file, reproduces the pooled split
    raw["data"]["split"] = {"file": str(tmp_path / "run" / "split.csv")}
    again, _, _ = prepare(parse_recipe(raw), tmp_path, **QUIET)
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    key = next(iter(splits["sources"]))
    for s in ("train", "val", "test"):
        assert again.names(s) == splits["sources"][key][s]


def test_pool_names_groups_paths_and_what_it_does_not_combine(two_sets, tmp_path, monkeypatch):
    import yaml

    from umsrep.data.prepare import _pooled_groups, origin_names
    from umsrep.recipe import DataConfig

    assert origin_names([DataConfig(root=r) for r in ("/x/data", "/y/data", "/z/data1")]) == ["data", "data2", "data1"]
    assert len(set(origin_names([DataConfig(root=r) for r in ("/a/d", "/b/d", "/c/d2", "/e/d")]))) == 4
    # the section ungrouped, a pooled set grouped: its groups are used, the other set's images are each their own
    a, b = two_sets
    r = parse_recipe(_raw(a, [{"root": str(b), "group_by": "patient"}], group_by=None))
    assert r.data.grouped_by == "patient"
    rep, _, _ = prepare(r, tmp_path, **QUIET)
    n_a = sum(1 for o in rep.data.origins if o == "first")
    assert rep.data.groups[:n_a] == [f"first/{n}" for n in rep.data.names[:n_a]]
    assert all(g.startswith("second/p") for g in rep.data.groups[n_a:])
    assert _pooled_groups([rep.data], [DataConfig(root="/x")], ["x"]) == [None] * len(rep.data)
    # a relative pooled root is found next to the recipe file, as the section's own root is
    raw = _raw("first", [{"root": "second"}])
    (a.parent / "rel.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    resolved = load_recipe(a.parent / "rel.yaml")
    from umsrep.recipe import resolve_paths

    resolved = resolve_paths(resolved, a.parent)
    assert [c.root for c in resolved.data.parts()] == [str(a.parent / "first"), str(a.parent / "second")]
    # per-patient classifiers read one labels table: refused with a pool
    raw = _raw(a, [{"root": str(b)}])
    raw["patient"] = {"group_by": "patient", "areas": {"lesion": ["lesion"]}, "targets": {"dx": {"column": "label"}}}
    with pytest.raises(Exception, match="patient: per-patient classifiers are not combined with data.pool"):
        parse_recipe(raw)
