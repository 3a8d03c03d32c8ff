"""Patient-level tasks (umsrep.derive.patient): per-group features from label maps, classifiers on the training
groups, the recipe section's checks, and the features of ACDC's true masks (real data; skips when absent)."""

from __future__ import annotations

import numpy as np
import pytest

from umsrep.derive.patient import group_features, group_splits, read_table, train_evaluate
from umsrep.errors import DataError, RecipeError
from umsrep.recipe import PatientConfig, parse_recipe

CFG = {"group_by": "patient", "frame_column": "frame", "frames": {"ED": "01", "ES": "02"},
       "areas": {"heart": ["cav", "wall"]},
       "features": {"ef": {"change": ["cav_ED", "cav_ES"]}, "wall_cav": {"ratio": ["wall_ED", "cav_ED"]}},
       "targets": {"dx": {"column": "label"},
                   "sick": {"column": "label", "label_map": {"big": "yes", "small": "no", "thick": "yes"},
                            "classes": ["no", "yes"]}}}


def _disc(size, r_cav, r_wall):
    yy, xx = np.mgrid[0:size, 0:size]
    d = np.hypot(yy - size / 2, xx - size / 2)
    m = np.zeros((size, size), np.int32)
    m[d < r_wall] = 2
    m[d < r_cav] = 1
    return m


def _table(n_groups=24, slices=2, size=48, seed=0):
    """Groups of three kinds separable by construction: big (large cavity, low EF), small (normal), thick
    (small cavity, thick wall)."""
    rng = np.random.default_rng(seed)
    kinds = {"big": (15, 0.15, 3), "small": (9, 0.5, 3), "thick": (7, 0.5, 7)}
    names, maps, table = [], [], {}
    for g in range(n_groups):
        label = list(kinds)[g % 3]
        r, ef, wall = kinds[label]
        r = r * rng.uniform(0.95, 1.05)
        for frame, rr in (("01", r), ("02", r * np.sqrt(1 - ef))):
            for s in range(slices):
                name = f"p{g:02d}_f{frame}_s{s}"
                names.append(name)
                maps.append(_disc(size, rr, rr + wall))
                table[name] = {"filename": name + ".png", "patient": f"p{g:02d}", "frame": frame, "label": label}
    return names, maps, table


def test_features_and_a_classifier_on_separable_groups():
    cfg = PatientConfig(**CFG)
    names, maps, table = _table()
    f = group_features(cfg, {"heart": ["cav", "wall"]}, names, {"heart": maps}, table, sizes=[(96, 48)] * len(names))
    assert f.names == ["cav_ED", "cav_ES", "wall_ED", "wall_ES", "ef", "wall_cav"] and f.X.shape == (24, 6)
    g0 = [n for n in names if n.startswith("p00_f01")]
    expected = sum(int((maps[names.index(n)] == 1).sum()) for n in g0) * 2     # original has twice the rows
    assert f.X[0, 0] == pytest.approx(expected)
    big = np.array(f.columns["label"]) == "big"
    assert np.all(f.X[big, 4] < 0.3) and np.all(f.X[~big, 4] > 0.35)           # the EF proxy: (ED - ES) / ED
    split = {g: ("train" if i < 15 else "val" if i < 18 else "test") for i, g in enumerate(f.groups)}
    res = train_evaluate(cfg, f, split, seed=1)
    for target in ("dx", "sick"):
        for s in ("train", "val", "test"):
            assert res[target][s]["accuracy"] == 1.0 and res[target][s]["mcc"] == pytest.approx(1.0)
    assert res["dx"]["classes"] == ["big", "small", "thick"] and res["sick"]["test"]["n_groups"] == 6
    assert np.trace(np.asarray(res["dx"]["test"]["confusion"])) == 6
    # a classifier that sees nothing (a constant feature) cannot reach that
    cfg2 = PatientConfig(**{**CFG, "areas": None, "features": {"n": {"area": "heart", "frame": "ED"}}})
    blank = {"heart": [np.ones_like(m) for m in maps]}
    res2 = train_evaluate(cfg2, group_features(cfg2, {"heart": ["cav", "wall"]}, names, blank, table), split)
    assert res2["dx"]["test"]["accuracy"] < 1.0
    rf = PatientConfig(**{**CFG, "classifier": "random_forest"})
    assert train_evaluate(rf, f, split, seed=0)["dx"]["test"]["accuracy"] == 1.0


def test_missing_columns_and_bad_groups_are_named():
    names, maps, table = _table(n_groups=6)
    cfg = PatientConfig(**{**CFG, "group_by": "subject"})
    with pytest.raises(DataError, match=r"patient\.group_by: no column 'subject' in the labels table; columns are "
                                        r"filename, frame, label, patient"):
        group_features(cfg, {"heart": ["cav", "wall"]}, names, {"heart": maps}, table)
    bad_target = PatientConfig(**{**CFG, "targets": {"dx": {"column": "diagnosis"}}})
    f = group_features(bad_target, {"heart": ["cav", "wall"]}, names, {"heart": maps}, table)
    with pytest.raises(DataError, match=r"patient\.targets\.dx\.column: no column 'diagnosis'"):
        train_evaluate(bad_target, f, {g: "train" for g in f.groups})
    with pytest.raises(DataError, match=r"group 'p00' has images in the splits \['test', 'train'\]"):
        group_splits(["p00"], ["p00", "p00"], ["train", "test"])


@pytest.mark.parametrize("patient,message", [
    ({"areas": {"heartx": ["cav"]}}, r"patient\.areas: 'heartx' is not a segmentation task"),
    ({"areas": {"heart": ["scar"]}}, r"patient\.areas: 'scar' is not a class of 'heart'"),
    ({"features": {"ef": {"change": ["lv_ED", "cav_ES"]}}}, r"patient\.features\.ef: 'lv_ED' is not a feature"),
    ({"features": {"x": {"area": "heart.cav", "ratio": ["a", "b"]}}}, r"give exactly one of area"),
    ({"features": {"x": {"area": "heart.cav", "frame": "MID"}}}, r"frame 'MID' is not one of frames"),
    ({"frames": None}, r"frame_column and frames go together"),
    ({"features": {"t": {"thickness": "heart"}}}, r"patient\.features\.t: thickness needs task\.class"),
    ({"features": {"t": {"area": "heart.wall", "stat": "cv"}}}, r"stat is for thickness features"),
    ({"features": {"t": {"thickness": "heart.wall", "stat": "median"}}}, r"patient\.features\.t\.stat"),
])
def test_the_recipe_section_is_checked_at_load(patient, message):
    raw = {"name": "t", "modality": "cmr", "data": {"synthetic": {"n": 24}},
           "tasks": {"heart": {"type": "segmentation", "classes": ["cav", "wall"],
                               "mask_classes": {"cav": [1], "wall": [2]}},
                     "dx": {"type": "classification", "classes": ["a", "b"]}},
           "patient": {**CFG, **patient}}
    with pytest.raises(RecipeError, match=message) as e:
        parse_recipe(raw)
    assert "\n" not in str(e.value)


def test_wall_thickness_of_rings_of_known_width():
    """wall_thickness on straight bands (within half a pixel, by construction) and rasterised rings (outer radius
    30, widths 3-11 px: the mean within 0.6 pixel); a ring thinned to 3 px over a quarter of its circumference has
    a lower 10th/90th percentile ratio and a larger coefficient of variation than the even ring."""
    from umsrep.derive.patient import thickness_stat, wall_thickness

    yy, xx = np.mgrid[0:96, 0:96]
    r = np.hypot(yy - 48, xx - 48)
    for width in (3, 4, 5, 6):
        band = np.zeros((20, 40), bool)
        band[5:5 + width] = True
        assert abs(thickness_stat(wall_thickness(band), "mean") - width) == pytest.approx(0.5), width
    for width in (3, 5, 8, 11):
        ring = (r <= 30) & (r > 30 - width)
        assert thickness_stat(wall_thickness(ring), "mean") == pytest.approx(width, abs=0.6), width
    ring = (r <= 30) & (r > 20)
    thin = ring & ~((r <= 30 - 3) & (xx > 48) & (yy > 48))           # one quadrant only 3 px thick
    even, uneven = wall_thickness(ring), wall_thickness(thin)
    assert thickness_stat(uneven, "p10_p90") < 0.5 < thickness_stat(even, "p10_p90")
    assert thickness_stat(uneven, "cv") > 2 * thickness_stat(even, "cv")
    assert thickness_stat(even, "max") >= thickness_stat(even, "mean")
    assert np.isnan(thickness_stat(wall_thickness(np.zeros((8, 8), bool)), "mean"))


def test_thickness_features_in_original_pixels():
    """A group's thickness feature is in pixels of the original image: a ring 8 model pixels wide in a 96x96 map
    of a 192x192 image measures 16."""
    from umsrep.derive.patient import group_features
    from umsrep.recipe import PatientConfig

    yy, xx = np.mgrid[0:96, 0:96]
    r = np.hypot(yy - 48, xx - 48)
    ring = (((r <= 30) & (r > 22)) * 2).astype(np.uint8)             # class 2 = wall
    cfg = PatientConfig(group_by="patient", features={"t": {"thickness": "heart.wall"}},
                        targets={"dx": {"column": "label"}})
    table = {"a": {"filename": "a.png", "patient": "p1", "label": "x"},
             "b": {"filename": "b.png", "patient": "p1", "label": "x"}}
    f = group_features(cfg, {"heart": ["cav", "wall"]}, ["a", "b"], {"heart": [ring, ring]}, table,
                       sizes=[(192, 192), (192, 192)])
    assert f.X[0, 0] == pytest.approx(16.0, abs=2.0)


def test_acdc_true_masks_separate_the_diagnoses(real_data):
    """The acdc recipe's patient features from the TRUE masks (no model): they separate the pathologies."""
    import cv2
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from tests.conftest import REPO_ROOT
    from umsrep.derive.patient import make_classifier
    from umsrep.recipe import load_recipe

    root = real_data / "acdc"
    if not (root / "meta.csv").is_file():
        pytest.skip(f"ACDC not found at {root}")
    r = load_recipe(REPO_ROOT / "recipes" / "acdc.yaml")
    table = read_table(root / "meta.csv")
    names = sorted(table)
    maps = [cv2.imread(str(root / "masks" / f"{n}.png"), cv2.IMREAD_GRAYSCALE) for n in names]
    sizes = [(int(table[n]["orig_h"]), int(table[n]["orig_w"])) for n in names]
    f = group_features(r.patient, {"heart": r.tasks["heart"].classes}, names, {"heart": maps}, table, sizes=sizes)
    assert f.X.shape == (100, 19) and np.isfinite(f.X).all()
    lab = np.array(f.columns["label"])
    ef = f.X[:, f.names.index("lv_ef")]
    assert np.median(ef[lab == "DCM"]) < 0.3 < np.median(ef[lab == "NOR"])       # frame01 = ED: LV empties
    assert np.median(f.X[lab == "HCM", f.names.index("myo_lv_ED")]) > np.median(f.X[lab == "NOR",
                                                                                   f.names.index("myo_lv_ED")])
    classes = r.patient.targets["diagnosis"].classes
    y = np.array([classes.index(v) for v in lab])
    pred = cross_val_predict(make_classifier("logistic_regression", 0), f.X, y,
                             cv=StratifiedKFold(5, shuffle=True, random_state=0))
    # areas and EF proxies alone: 0.86 and 0.92 (DCM and MINF confused); with the wall thickness features 0.92 / 0.96
    assert (pred == y).mean() >= 0.88
    assert ((pred == 0) == (y == 0)).mean() >= 0.93
    thick = f.X[:, f.names.index("myo_thick_ED")]
    assert np.median(thick[lab == "HCM"]) > 1.3 * np.median(thick[lab == "NOR"])     # hypertrophy: a thick wall
    split = group_splits(f.groups, [table[n]["patient"] for n in names], [table[n]["source_split"] for n in names])
    res = train_evaluate(r.patient, f, split, seed=r.seed)
    assert res["diagnosis"]["test"]["n_groups"] == 20 and res["diagnosis"]["test"]["accuracy"] >= 0.7


def test_evaluate_patients_with_a_stand_in_for_the_heads(tmp_path):
    """evaluate_patients: features from 'predicted' maps (here the true ones, eroded), the true-mask reference,
    groups' splits from the data split; the labels table is the data set's labels CSV."""
    import csv

    import cv2

    from umsrep.data.dataset import LoadedData
    from umsrep.data.prepare import Source, TaskData
    from umsrep.evaluate.measurements import evaluate_patients

    names, maps, table = _table(n_groups=24)
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["filename", "patient", "frame", "label"])
        w.writeheader()
        w.writerows(table[n] for n in names)
    raw = {"name": "t", "modality": "cmr", "seed": 3,
           "data": {"root": str(tmp_path), "labels": "labels.csv", "group_by": "patient"},
           "tasks": {"heart": {"type": "segmentation", "classes": ["cav", "wall"],
                               "mask_classes": {"cav": [1], "wall": [2]}}},
           "patient": CFG}
    r = parse_recipe(raw)
    n = len(names)
    group = np.array([table[k]["patient"] for k in names])
    gid = np.array([int(g[1:]) for g in group])
    split = {"train": np.flatnonzero(gid < 15), "val": np.flatnonzero((gid >= 15) & (gid < 18)),
             "test": np.flatnonzero(gid >= 18)}
    data = LoadedData(names=names, files=[f"{k}.png" for k in names], images=np.zeros((n, 4, 4, 1), np.float32),
                      masks=None, has_mask=np.ones(n, bool), labels=[None] * n, groups=list(group),
                      sizes=np.array([(48, 48)] * n))
    src = Source("k", r.data, data, split)
    tasks = {"heart": TaskData("heart", "segmentation", ["cav", "wall"], src, dict(split), np.stack(maps))}
    kernel = np.ones((3, 3), np.uint8)
    m = evaluate_patients(None, r, tasks, log=lambda s: None,
                          labels=lambda t, s, rows: np.stack([cv2.erode(maps[i].astype(np.uint8), kernel)
                                                              for i in rows]))
    assert m["n_groups"] == 24 and len(m["groups"]) == 24 and m["groups"][0]["split"] == "train"
    for key in ("predicted_masks", "true_masks"):
        assert m[key]["dx"]["test"]["accuracy"] == 1.0 and m[key]["dx"]["test"]["n_groups"] == 6
    assert m["predicted_masks"]["sick"]["val"]["n_groups"] == 3
    from umsrep.evaluate.report import render_markdown

    md = render_markdown({"run": {"name": "t"}, "patient": m})
    section = md.split("## Patient-level tasks", 1)[1]
    row = next(line for line in section.splitlines() if line.startswith("| dx |"))
    assert "| 6 | 1.0000 |" in row and row.endswith("| 1.0000 |")     # test groups, accuracy; true-mask accuracy


def test_train_features_true_may_be_written_unquoted():
    """`train_features: true` unquoted in YAML (a recipe or `--set patient.train_features=true`) is the boolean
    true: read as the option "true", not refused; other values still are."""
    assert PatientConfig(**{**CFG, "train_features": True}).train_features == "true"
    assert PatientConfig(**{**CFG, "train_features": "true"}).train_features == "true"
    with pytest.raises(ValueError, match="train_features"):
        PatientConfig(**{**CFG, "train_features": False})
