"""Measurements from masks (umsrep.derive.measure): generated muscle images with known geometry, mapping from the
model's grid back to non-square originals (px and mm), robustness, and the recipe declaration."""

from __future__ import annotations

import numpy as np
import pytest

from umsrep.derive.measure import draw_measurements, find_aponeuroses, measure_images
from umsrep.errors import RecipeError
from umsrep.recipe import DeriveConfig, parse_recipe


def muscle(H, W, top=60.0, vthick=120.0, apo_deg=5.0, penn=20.0, band=10.0, n_fasc=7, half_width=1.2, fill=0.6):
    """Masks (H, W) of a generated muscle: two aponeurosis bands whose inner edges are the lines
    y = top + tan(apo_deg)·(x - W/2) and the same + vthick (pixel centres inside a band are set), and n_fasc
    straight fascicle segments at ``penn`` degrees to the aponeuroses (rising to the right), drawn over ``fill``
    of their length between the aponeuroses."""
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    m = np.tan(np.radians(apo_deg))
    sup = top + m * (xx - W / 2)
    deep = sup + vthick
    apo = ((yy >= sup - band) & (yy < sup)) | ((yy >= deep) & (yy < deep + band))
    theta = np.radians(apo_deg - penn)
    u = np.array([np.cos(theta), np.sin(theta)])
    fasc = np.zeros((H, W), bool)
    half = fill * 0.5 * vthick * np.cos(np.radians(apo_deg)) / np.sin(np.radians(penn))
    for k in range(n_fasc):
        cx = W * (0.15 + 0.7 * k / max(n_fasc - 1, 1))
        cy = top + vthick / 2 + m * (cx - W / 2)
        along = (xx - cx) * u[0] + (yy - cy) * u[1]
        across = -(xx - cx) * u[1] + (yy - cy) * u[0]
        fasc |= (np.abs(across) <= half_width) & (np.abs(along) <= half)
    return apo.astype(np.uint8), (fasc & (yy > sup) & (yy < deep)).astype(np.uint8)


def _specs(**kw):
    apo = {"aponeurosis": "apo"}
    both = {"aponeurosis": "apo", "fascicles": "fasc"}
    return {"thickness": DeriveConfig(measure="thickness", inputs=apo, **kw.get("thickness", {})),
            "pennation": DeriveConfig(measure="pennation_angle", inputs=both),
            "fascicle_length": DeriveConfig(measure="fascicle_length", inputs=both)}


def _resize(mask, size, thin=False):
    import cv2

    if thin:  # area-average then threshold keeps thin lines connected (how the muscle data set was stored)
        return (cv2.resize(mask.astype(np.float32), size[::-1], interpolation=cv2.INTER_AREA) > 0.2).astype(np.uint8)
    return cv2.resize(mask, size[::-1], interpolation=cv2.INTER_NEAREST)


@pytest.mark.parametrize("apo_deg,penn", [(0.0, 15.0), (5.0, 20.0), (-8.0, 27.0)])
def test_known_geometry_at_the_original_size(apo_deg, penn):
    apo, fasc = muscle(300, 600, apo_deg=apo_deg, penn=penn)
    specs = _specs()
    specs["perpendicular"] = DeriveConfig(measure="thickness", inputs={"aponeurosis": "apo"}, distance="perpendicular")
    r = measure_images(specs, {"apo": [apo], "fasc": [fasc]})
    a = np.radians(apo_deg)
    assert r.values["thickness"][0] == pytest.approx(120.0, abs=1.0)            # vertical distance
    assert r.values["perpendicular"][0] == pytest.approx(120.0 * np.cos(a), abs=1.0)
    assert abs(r.values["pennation"][0] - penn) < 1.0
    expected_length = 120.0 * np.cos(a) / np.sin(np.radians(penn))
    assert r.values["fascicle_length"][0] == pytest.approx(expected_length, rel=0.02)
    assert all(v[0] is None for v in r.reasons.values())
    assert np.all(np.isnan(r.mm["thickness"]))                                      # no spacing given


@pytest.mark.parametrize("model_size", [(128, 128), (96, 192), (160, 64)])
def test_masks_at_the_model_size_map_back_to_a_non_square_original(model_size):
    H, W = 300, 600
    apo, fasc = muscle(H, W, apo_deg=5.0, penn=20.0)
    small = {"apo": [_resize(apo, model_size)], "fasc": [_resize(fasc, model_size, thin=True)]}
    r = measure_images(_specs(), small, sizes=[(H, W)], spacing=[0.1])
    a = np.radians(5.0)
    assert r.values["thickness"][0] == pytest.approx(120.0, abs=H / model_size[0])    # one model pixel
    assert abs(r.values["pennation"][0] - 20.0) < 1.0
    assert r.values["fascicle_length"][0] == pytest.approx(120 * np.cos(a) / np.sin(np.radians(20)), rel=0.03)
    assert r.mm["thickness"][0] == pytest.approx(0.1 * r.values["thickness"][0])
    assert r.mm["fascicle_length"][0] == pytest.approx(0.1 * r.values["fascicle_length"][0])
    # without the original size the values are in the model grid's pixels: the mapping is what makes them right
    r0 = measure_images(_specs(), small)
    assert r0.values["thickness"][0] == pytest.approx(120.0 * model_size[0] / H, abs=1.0)
    row = r.columns(0)
    assert set(row) >= {"thickness_px", "thickness_mm", "pennation_deg", "fascicle_length_px", "thickness_note"}


def test_anisotropic_spacing_measures_in_millimetres():
    H, W = 300, 600
    apo, fasc = muscle(H, W, apo_deg=5.0, penn=20.0)
    row_mm, col_mm = 0.2, 0.1
    r = measure_images(_specs(), {"apo": [apo], "fasc": [fasc]}, sizes=[(H, W)], spacing=[(row_mm, col_mm)])
    assert r.mm["thickness"][0] == pytest.approx(120.0 * row_mm, rel=0.01)
    # angles are physical: directions scaled by the spacing
    fas = np.radians(5.0 - 20.0)
    d_apo = np.array([col_mm, np.tan(np.radians(5.0)) * row_mm])
    d_fas = np.array([np.cos(fas) * col_mm, np.sin(fas) * row_mm])
    cosang = abs(d_apo @ d_fas) / np.linalg.norm(d_apo) / np.linalg.norm(d_fas)
    assert abs(r.values["pennation"][0] - np.degrees(np.arccos(cosang))) < 1.0
    assert abs(np.degrees(np.arccos(cosang)) - 20.0) > 5          # a real difference from the pixel-frame angle


def test_central_region_of_converging_aponeuroses():
    """Aponeuroses that converge: the thickness is the mean over the central region only."""
    H, W = 200, 400
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    sup = 40 + 0.0 * xx
    deep = 160 - 0.1 * xx                       # vertical distance 120 - 0.1 x: 100 at the centre (x = 200)
    apo = (((yy >= sup - 8) & (yy < sup)) | ((yy >= deep) & (yy < deep + 8))).astype(np.uint8)
    for region in (0.2, 0.5, 1.0):
        spec = {"t": DeriveConfig(measure="thickness", inputs={"aponeurosis": "apo"}, region=region)}
        r = measure_images(spec, {"apo": [apo]})
        assert r.values["t"][0] == pytest.approx(100.0, abs=0.6)   # linear: the mean is the centre value
    # a quadratic fit follows a curved deep aponeurosis
    deep2 = 150 + 0.0006 * (xx - 200) ** 2
    apo2 = (((yy >= sup - 8) & (yy < sup)) | ((yy >= deep2) & (yy < deep2 + 8))).astype(np.uint8)
    xs = np.linspace(150, 250, 101)
    expected = np.mean(150 + 0.0006 * (xs - 200) ** 2 - 40)
    spec = {"t": DeriveConfig(measure="thickness", inputs={"aponeurosis": "apo"}, region=0.25, fit_degree=2)}
    assert measure_images(spec, {"apo": [apo2]}).values["t"][0] == pytest.approx(expected, abs=0.8)


def test_aponeurosis_drawn_in_pieces_and_a_deeper_third_band():
    H, W = 240, 480
    apo, _ = muscle(H, W, apo_deg=0.0, top=40, vthick=100)
    apo[:, 200:230] = 0                                             # both bands broken in two pieces
    yy = np.arange(H)[:, None] + np.zeros((1, W))
    apo[(yy >= 200) & (yy < 208)] = 1                               # a third, deeper aponeurosis
    a = find_aponeuroses(apo)
    assert a.ok and np.polyval(a.superficial, 240) == pytest.approx(40, abs=1)
    assert np.polyval(a.deep, 240) == pytest.approx(140, abs=1)


@pytest.mark.parametrize("case,reason", [
    ("empty", "no aponeurosis in the mask"),
    ("one", "one aponeurosis only"),
    ("short", "no aponeurosis spans"),
    ("no_fascicles", "no fascicle in the mask"),
    ("flat_fascicles", "no fascicle line meets both aponeuroses"),
    ("nearly_flat_fascicles", "fascicle lines nearly parallel to the aponeuroses"),
])
def test_unusable_masks_give_nan_and_a_reason(case, reason):
    H, W = 200, 400
    apo, fasc = muscle(H, W, top=40, vthick=100, apo_deg=0.0)
    if case == "empty":
        apo[:] = 0
    elif case == "one":
        apo[100:] = 0
    elif case == "short":
        apo[:, 40:] = 0
    elif case == "no_fascicles":
        fasc[:] = 0
    elif case == "flat_fascicles":
        fasc[:] = 0
        fasc[90:92, 100:300] = 1                                    # parallel to the aponeuroses
    elif case == "nearly_flat_fascicles":                           # 1.7 degrees: 100 px / sin = 3370 px > 3 W
        fasc[:] = 0
        cols = np.arange(60, 340)
        fasc[(90 + 0.03 * (cols - 60)).astype(int), cols] = 1
        fasc[(91 + 0.03 * (cols - 60)).astype(int), cols] = 1
    r = measure_images(_specs(), {"apo": [apo], "fasc": [fasc]}, sizes=[(H, W)], spacing=[0.1])
    names = ["thickness", "pennation", "fascicle_length"] if case in ("empty", "one", "short") \
        else ["fascicle_length"] if case in ("flat_fascicles", "nearly_flat_fascicles") \
        else ["pennation", "fascicle_length"]
    for name in names:
        assert np.isnan(r.values[name][0]) and reason in r.reasons[name][0], (name, r.reasons[name][0])
        assert r.columns(0)[f"{name}_note"].startswith(reason)


def test_noise_masks_never_crash():
    rng = np.random.default_rng(0)
    maps = {"apo": list(rng.random((6, 64, 96)) > 0.7), "fasc": list(rng.random((6, 64, 96)) > 0.9)}
    r = measure_images(_specs(), maps, sizes=[(100, 150)] * 6, spacing=[None, 0.1, float("nan"), (0.1, 0.2), 0, 1])
    for name, v in r.values.items():
        assert v.shape == (6,)
        assert all(np.isfinite(v[i]) or r.reasons[name][i] for i in range(6))


def test_drawing_marks_the_lines_on_an_image_of_another_size():
    H, W = 300, 600
    apo, fasc = muscle(H, W)
    r = measure_images(_specs(), {"apo": [apo], "fasc": [fasc]}, sizes=[(H, W)])
    img = np.zeros((100, 200, 3), np.uint8)
    out = draw_measurements(img, r.drawings[0], original_size=(H, W))
    assert out.shape == img.shape and out.any()
    o = out.astype(int)
    yellow = (o[..., 0] > 120) & (o[..., 1] > 100) & (o[..., 2] < 40)
    # apo_deg 5: the superficial edge at x = 150 is y = 60 + tan(5°)(150 - 300) = 46.9 -> (50, 15.6) at 1/3 scale
    rows = np.flatnonzero(yellow[:, 50])
    assert rows.size and abs(rows.min() - 15.6) <= 1.5


# ------------------------------------------------------------------------------------------------- recipe


def _recipe(derive, **extra):
    return parse_recipe({"name": "t", "modality": "ultrasound", "data": {"synthetic": {"n": 24}},
                         "tasks": {"apo": {"type": "segmentation", "classes": ["aponeurosis"]},
                                   "fasc": {"type": "segmentation", "classes": ["fascicle"]},
                                   "dx": {"type": "classification", "classes": ["a", "b"]}},
                         "derive": derive, **extra})


def test_measurements_are_derive_entries_checked_at_load():
    r = _recipe({"thickness": {"measure": "thickness", "from": {"aponeurosis": "apo"}, "region": 0.6},
                 "pennation": {"measure": "pennation_angle", "from": {"aponeurosis": "apo", "fascicles": "fasc"}},
                 "refer": 'dx == "b"'},
                pixel_spacing={"mm": 0.08, "column": "spacing_mm"})
    assert list(r.derive_measurements()) == ["thickness", "pennation"]
    assert list(r.derive_rules()) == ["refer"]
    assert r.derive["thickness"].inputs == {"aponeurosis": "apo"} and r.pixel_spacing.mm == 0.08
    import yaml

    from umsrep.recipe import dump_recipe

    again = parse_recipe(yaml.safe_load(dump_recipe(r)))                 # the dumped recipe loads again
    assert again.derive["pennation"].inputs == r.derive["pennation"].inputs


@pytest.mark.parametrize("entry,message", [
    ({"measure": "thicknes", "from": {"aponeurosis": "apo"}},
     r"derive\.m\.measure: unknown measurement 'thicknes'; expected one of: fascicle_length, pennation_angle"),
    ({"measure": "pennation_angle", "from": {"aponeurosis": "apo"}},
     r"derive\.m\.from: pennation_angle needs `fascicles: <segmentation task>`"),
    ({"measure": "thickness", "from": {"aponeurosis": "apox"}},
     r"derive\.m\.from\.aponeurosis: unknown task 'apox'"),
    ({"measure": "thickness", "from": {"aponeurosis": "dx"}},
     r"derive\.m\.from\.aponeurosis: 'dx' is a classification task"),
    ({"measure": "thickness", "from": {"aponeurosis": "apo", "fascicles": "fasc"}},
     r"derive\.m\.from\.fascicles: thickness reads no 'fascicles'"),
    ({"measure": "thickness", "from": {"aponeurosis": "apo"}, "angle_window": 5},
     r"derive\.m\.angle_window: not used by thickness"),
    ({"measure": "thickness", "from": {"aponeurosis": "apo"}, "region": 1.5},
     r"derive\.m\.region: Input should be less than or equal to 1"),
    ({"rule": 'dx == "a"', "from": {"aponeurosis": "apo"}}, r"derive\.m: from is for measurements"),
    ({"description": "nothing"}, r"derive\.m: give either `rule`"),
])
def test_a_malformed_measurement_is_refused_with_one_line(entry, message):
    with pytest.raises(RecipeError, match=message) as e:
        _recipe({"m": entry})
    assert "\n" not in str(e.value)


def test_evaluation_compares_predicted_with_true_masks_on_the_original_grid():
    """evaluate_measurements with a stand-in for the heads: predictions = true masks with the deep aponeurosis
    moved 2 model pixels down -> thickness bias of 2 model pixels in original pixels, and in mm."""
    import cv2

    from umsrep.data.dataset import LoadedData
    from umsrep.data.prepare import Source, TaskData
    from umsrep.evaluate.measurements import evaluate_measurements

    H, W, size, n = 150, 300, 64, 8
    apo, fasc = zip(*[muscle(H, W, top=30 + 2 * i, vthick=80, apo_deg=3.0, penn=22.0) for i in range(n)])
    small_apo = np.stack([cv2.resize(a, (size, size), interpolation=cv2.INTER_NEAREST) for a in apo])
    small_fasc = np.stack([_resize(f, (size, size), thin=True) for f in fasc])
    data = LoadedData(names=[f"im{i}" for i in range(n)], files=[f"im{i}.png" for i in range(n)],
                      images=np.zeros((n, size, size, 1), np.float32), masks=None, has_mask=np.ones(n, bool),
                      labels=[None] * n, groups=[None] * n, sizes=np.array([(H, W)] * n))
    split = {"train": np.arange(0, 4), "val": np.arange(4, 5), "test": np.arange(5, 8)}
    r = _recipe({"thickness": {"measure": "thickness", "from": {"aponeurosis": "apo"}},
                 "pennation": {"measure": "pennation_angle", "from": {"aponeurosis": "apo", "fascicles": "fasc"}}},
                pixel_spacing={"mm": 0.1})
    src = Source("k", r.data, data, split)
    tasks = {"apo": TaskData("apo", "segmentation", ["aponeurosis"], src, dict(split), small_apo),
             "fasc": TaskData("fasc", "segmentation", ["fascicle"], src, dict(split), small_fasc)}

    def labels(task, source, rows):
        maps = tasks[task].targets[rows].copy()
        if task == "apo":
            for m in maps:
                lower = np.zeros_like(m)
                lower[size // 2:] = m[size // 2:]
                m[size // 2:] = 0
                m[size // 2 + 2:] |= lower[size // 2:-2]
        return maps

    m = evaluate_measurements(None, r, tasks, labels=labels, log=lambda s: None)
    t = m["thickness"]["by_data"][0]
    assert t["truth"] == {"apo": "true masks"} and t["test"]["px"]["n"] == 3
    assert t["test"]["px"]["bias"] == pytest.approx(2 * H / size, abs=0.3)
    assert t["test"]["px"]["mae_pct"] == pytest.approx(100 * 2 * H / size / 80, rel=0.15)
    assert t["test"]["mm"]["bias"] == pytest.approx(0.1 * t["test"]["px"]["bias"])
    assert t["test"]["px"]["loa_low"] <= t["test"]["px"]["bias"] <= t["test"]["px"]["loa_high"]
    p = m["pennation"]["by_data"][0]["test"]
    assert p["deg"]["mae"] < 1.0 and "mm" not in p and len(p["per_image"]["true"]) == 3
    from umsrep.evaluate.agreement import bland_altman_figure

    fig = bland_altman_figure(t["test"]["per_image"]["pred"], t["test"]["per_image"]["true"], "thickness")
    assert len(fig.axes[0].lines) == 3                      # bias and the two limits of agreement
    from umsrep.evaluate.html import build_html

    page = build_html({"run": {"name": "m"}, "measurements": m}, "name: m\n", "# m\n")
    section = page.split('id="measurement-agreement"', 1)[1]
    assert section.count("<img") == len(m) and "thickness: measured on the predicted minus on the true" in section
    from umsrep.evaluate.report import render_markdown

    md = render_markdown({"run": {"name": "m"}, "measurements": m}).split("## Measurements", 1)[1]
    row = next(line for line in md.splitlines() if line.startswith("| thickness |") and "| test |" in line)
    assert f"{t['test']['px']['mae']:.2f} px" in row and f"{t['test']['px']['mae_pct']:.1f} %" in row


def test_tasks_labelled_on_different_data_sets():
    """Aponeuroses labelled on one set (8 images), fascicles on another (5 images; DL_Track's layout): on the
    fascicle set the aponeurosis truth is the predicted mask (said in `truth`), and nothing indexes a task's
    targets with the other set's rows (it did: IndexError)."""
    import cv2

    from umsrep.data.dataset import LoadedData
    from umsrep.data.prepare import Source, TaskData
    from umsrep.evaluate.measurements import evaluate_measurements

    H, W, size = 150, 300, 64
    r = _recipe({"pennation": {"measure": "pennation_angle", "from": {"aponeurosis": "apo", "fascicles": "fasc"}}})

    def source(key, n):
        apo, fasc = zip(*[muscle(H, W, top=30 + 2 * i, vthick=80, apo_deg=3.0, penn=22.0) for i in range(n)])
        data = LoadedData(names=[f"{key}{i}" for i in range(n)], files=[f"{key}{i}.png" for i in range(n)],
                          images=np.zeros((n, size, size, 1), np.float32), masks=None, has_mask=np.ones(n, bool),
                          labels=[None] * n, groups=[None] * n, sizes=np.array([(H, W)] * n))
        split = {"train": np.arange(0, n - 3), "val": np.arange(n - 3, n - 2), "test": np.arange(n - 2, n)}
        apo = np.stack([cv2.resize(a, (size, size), interpolation=cv2.INTER_NEAREST) for a in apo])
        return Source(key, r.data, data, split), split, apo, np.stack([_resize(f, (size, size), thin=True)
                                                                      for f in fasc])

    src_a, split_a, apo_a, _ = source("a", 8)
    src_f, split_f, apo_f, fasc_f = source("f", 5)
    tasks = {"apo": TaskData("apo", "segmentation", ["aponeurosis"], src_a, dict(split_a), apo_a),
             "fasc": TaskData("fasc", "segmentation", ["fascicle"], src_f, dict(split_f), fasc_f)}
    by_source = {("apo", "a"): apo_a, ("apo", "f"): apo_f, ("fasc", "f"): fasc_f, ("fasc", "a"): apo_a * 0}

    def labels(task, src, rows):
        return by_source[task, src.key][rows]

    m = evaluate_measurements(None, r, tasks, labels=labels, log=lambda s: None)["pennation"]["by_data"]
    on_f = next(b for b in m if b["tasks"] == ["fasc"])
    assert on_f["truth"] == {"apo": "predicted (no true masks here)", "fasc": "true masks"}
    assert on_f["test"]["deg"]["n"] == 2 and on_f["test"]["deg"]["mae"] < 1e-6


def test_predict_writes_measurement_columns(tiny_run, tmp_path):
    """`umsrep predict` with a measurement added to the tiny run's recipe: px/mm/note columns for every input
    (the tiny lesion head draws no aponeuroses: NaN with the reason), overlays still written."""
    import csv
    import shutil

    import cv2
    import yaml

    from umsrep.cli import main
    from umsrep.rundir import RunDir

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    raw = yaml.safe_load((run / RunDir.RECIPE).read_text())
    raw["derive"]["thick"] = {"measure": "thickness", "from": {"aponeurosis": "lesion"}}
    raw["pixel_spacing"] = {"mm": 0.2}
    (run / RunDir.RECIPE).write_text(yaml.safe_dump(raw))
    img = tmp_path / "wide.png"
    cv2.imwrite(str(img), (np.random.default_rng(0).random((40, 90)) * 255).astype(np.uint8))
    out = tmp_path / "pred"
    assert main(["predict", str(run), str(img), "--out", str(out)]) == 0
    with open(out / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {"thick_px", "thick_mm", "thick_note"} <= set(rows[0]) and rows[0]["refer"] in ("True", "False")
    assert rows[0]["thick_note"] or float(rows[0]["thick_mm"]) == pytest.approx(0.2 * float(rows[0]["thick_px"]))
    assert cv2.imread(rows[0]["overlay"]) is not None


def test_evaluate_and_predict_remeasure_with_set_and_refuse_training_fields(tiny_run, tmp_path, capsys):
    """`--set derive.*` on evaluate / predict: a finished run measured with a measurement its recipe did not
    declare (recorded in evaluation.json `evaluated.set` and in predictions.json), the run's recipe and
    metrics.json left as they were; a field that changes the model is refused with one line, writing nothing."""
    import json
    import shutil

    import cv2

    from umsrep.cli import main
    from umsrep.rundir import RunDir

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "evaluation.json").unlink(missing_ok=True)
    before = {f: (run / f).read_bytes() for f in (RunDir.RECIPE, RunDir.METRICS)}
    assert "thick" not in json.loads(before[RunDir.METRICS]).get("measurements", {})
    assert main(["evaluate", str(run), "--set", "tasks.lesion.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert "--set tasks.lesion.epochs" in err and "derive.*" in err and len(err.strip().splitlines()) == 1
    assert not (run / "evaluation.json").exists()
    thick = "derive.thick={measure: thickness, from: {aponeurosis: lesion}, region: 0.3}"
    assert main(["evaluate", str(run), "--set", thick]) == 0
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["measurements"]["thick"]["kind"] == "thickness" and {"val", "test"} <= set(
        ev["measurements"]["thick"]["by_data"][0])
    assert ev["evaluated"]["set"] == [thick]
    assert {f: (run / f).read_bytes() for f in before} == before

    img = tmp_path / "a.png"
    cv2.imwrite(str(img), (np.random.default_rng(0).random((40, 90)) * 255).astype(np.uint8))
    assert main(["predict", str(run), str(img), "--out", str(tmp_path / "bad"), "--set", "seed=3"]) == 2
    assert "--set seed" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["predict", str(run), str(img), "--out", str(tmp_path / "p"), "--set", thick]) == 0
    assert "thick_px" in (tmp_path / "p" / "predictions.csv").read_text().splitlines()[0]
    assert json.loads((tmp_path / "p" / "predictions.json").read_text())["set"] == [thick]


def test_fit_evaluates_measurements_from_the_prediction_files(tiny_recipe_file, tmp_path, monkeypatch):
    """A recipe with a measurement: evaluation reads the val/test masks from the prediction files it wrote (the
    model is not run again for them) and reports the measurement for both splits."""
    import json

    from umsrep.cli import main
    from umsrep.evaluate import measurements

    calls = []
    real = measurements._Labels.__call__

    def counting(self, task, source, rows):
        calls.append(task)
        return real(self, task, source, rows)

    monkeypatch.setattr(measurements._Labels, "__call__", counting)
    out = tmp_path / "run"
    assert main(["fit", str(tiny_recipe_file), "--out", str(out), "--set", "output.html=false",
                 "--set", "derive.thick={measure: thickness, from: {aponeurosis: lesion}}",
                 "--set", "tasks.lesion.epochs=1", "--set", "tasks.diagnosis.epochs=1",
                 "--set", "representation.epochs=1"]) == 0
    m = json.loads((out / "metrics.json").read_text())["measurements"]["thick"]
    assert {"val", "test"} <= set(m["by_data"][0])
    assert calls == []  # every val/test mask came from predictions/<approach>/<split>.npz


def test_agreement_by_group_counts_each_recording_once():
    """One recording with many images and a large error must not dominate: by_group averages per group first,
    and the MAE's interval resamples groups (by hand on a small example)."""
    from umsrep.evaluate.agreement import agreement

    true = np.full(12, 100.0)
    pred = np.r_[np.full(9, 120.0), 101.0, 102.0, np.nan]          # recording a: 9 images, error 20; b, c: 1, 2
    groups = ["a"] * 9 + ["b", "c", "c"]
    a = agreement(pred, true, "px", seed=0, groups=groups)
    assert a["mae"] == pytest.approx((9 * 20 + 1 + 2) / 11)
    assert a["by_group"] == {"n": 3, "largest": 9, "mae": pytest.approx((20 + 1 + 2) / 3),
                             "mae_pct": pytest.approx((20 + 1 + 2) / 3)}
    assert a["ci95_over"] == "group" and a["n_missing_pred"] == 1
    assert "by_group" not in agreement(pred, true, "px", seed=0)
