"""The spectral Doppler simulator (umsrep.data.doppler), its data set writer, the recipe and a tiny fit."""

import csv
import json
import time
from collections import Counter

import cv2
import numpy as np
import pytest

from umsrep.data.doppler import DEGRADATIONS, FLOWS, make_doppler_dataset, render_doppler
from umsrep.errors import RecipeError

from .conftest import REPO_ROOT

RECIPE = REPO_ROOT / "recipes" / "doppler.yaml"


def _rows(root):
    with open(root / "labels.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


# ----------------------------------------------------------------------------- single images


@pytest.mark.parametrize("flow", FLOWS)
def test_mask_matches_envelope(flow):
    for seed in range(8):
        img, mask, info = render_doppler(seed, flow, "good", 64)
        assert img.shape == mask.shape == (64, 64) and img.dtype == np.float32
        assert 0.0 <= img.min() and img.max() <= 1.0
        assert set(np.unique(mask)) <= {0, 1}
        b, (c0, c1), px = info["baseline_row"], info["columns"], info["cm_s_per_px"]
        assert not mask[:, :c0].any() and not mask[:, c1:].any()  # the tick strip is never flow
        assert not info["beyond_scale"].any()  # a good image fits its scale
        for c in range(c0, c1):
            rows = np.flatnonzero(mask[:, c])
            v, env = info["velocity"][c], info["envelope_rows"][c]
            assert env == pytest.approx(b - v / px)
            if abs(v) < px:  # no flow (or less than a pixel): at most the first row off the baseline
                assert len(rows) <= 1
                continue
            assert np.all(np.diff(rows) == 1), (flow, seed, c)  # one run of rows ...
            if v > 0:  # ... starting next to the baseline, on the side of the flow direction
                assert rows.max() == b - 1 and abs(rows.min() - env) <= 1, (flow, seed, c, rows.min(), env)
            else:
                assert rows.min() == b + 1 and abs(rows.max() - env) <= 1, (flow, seed, c, rows.max(), env)
        # the mask is where the spectrum is bright
        spec, m = img[:, c0:c1], mask[:, c0:c1] > 0
        m[b] = False
        assert spec[m].mean() > 3 * spec[~m].mean()


def test_flow_directions_and_velocity_ranges():
    peaks = {f: [] for f in FLOWS}
    for seed in range(10):
        for flow in FLOWS:
            _, mask, info = render_doppler(seed, flow, "good", 64)
            v = info["velocity"][slice(*info["columns"])]
            b = info["baseline_row"]
            peaks[flow].append(abs(info["peak_cm_s"]))
            above, below = mask[:b].sum(), mask[b + 1:].sum()
            if flow == "MV":  # diastolic inflow toward the transducer only
                assert v.min() >= 0 and 40 <= v.max() <= 135 and below == 0 and above > 0
            elif flow == "TR":  # systolic jet away from the transducer, far faster
                assert v.min() <= -180 and v.max() < 70 and below > 3 * above
                assert info["peak_cm_s"] < 0
            else:  # tissue Doppler: s' above, e' / a' below, a few cm/s on a small scale
                assert v.max() > 4 and v.min() < -3 and np.abs(v).max() <= 20
                assert above > 0 and below > 0 and info["scale_cm_s"] < 60
    assert min(peaks["TR"]) > max(peaks["MV"]) > max(peaks["MA"])


def test_heart_rate_sets_the_number_of_beats():
    for seed in range(12):
        _, _, info = render_doppler(seed, "TR", "good", 128)
        v = info["velocity"][slice(*info["columns"])]
        jet = (v < 0.5 * v.min()).astype(int)
        runs = int(np.sum(np.diff(jet) == 1) + jet[0])  # systolic jets seen
        # a window of n_beats cardiac cycles shows floor(n_beats) jets, give or take partial ones at the edges
        full = int(info["n_beats"])
        assert full - 1 <= runs <= full + 2, (seed, runs, info["n_beats"], info["hr_bpm"])
        assert info["n_beats"] == pytest.approx(info["sweep_s"] * info["hr_bpm"] / 60)
        assert 50 <= info["hr_bpm"] <= 110


def _pair(seed, flow, degradation):
    good = render_doppler(seed, flow, "good", 64)
    low = render_doppler(seed, flow, "low", 64, degradations=(degradation,))
    np.testing.assert_array_equal(good[2]["velocity"], low[2]["velocity"])  # same heart, other display
    assert low[2]["degradations"] == [degradation] and low[2]["quality"] == "low"
    return good, low


@pytest.mark.parametrize("flow", ["MV", "TR"])
def test_aliasing_wraps_to_the_other_side(flow):
    (gimg, gmask, g), (img, mask, info) = _pair(3, flow, "aliasing")
    b, (c0, c1) = info["baseline_row"], info["columns"]
    cols = np.flatnonzero(info["beyond_scale"])
    assert len(cols) > 0 and not g["beyond_scale"].any()
    if flow == "MV":  # positive flow beyond the top edge reappears at the bottom, below the baseline
        assert not gmask[b + 1:].any()
        wrapped = mask[b + 1:, cols]
        assert wrapped.any() and mask[-1, cols].all() and mask[:b, cols].all()
        rows = np.arange(b + 1, 64)
    else:  # negative jet beyond the bottom edge reappears at the top
        wrapped = mask[:b, cols]
        assert wrapped.any() and mask[0, cols].all() and mask[b + 1:, cols].all()
        rows = np.arange(0, b)
    # the wrapped signal is drawn: bright where the wrapped mask is, dark in the same rows elsewhere
    sub, msub = img[rows][:, c0:c1], mask[rows][:, c0:c1] > 0
    assert sub[msub].mean() > 3 * sub[~msub].mean()


def test_clipping_cuts_at_the_edge_and_saturates():
    (gimg, gmask, g), (img, mask, info) = _pair(4, "MV", "clipping")
    b = info["baseline_row"]
    cols = np.flatnonzero(info["beyond_scale"])
    assert len(cols) > 0 and mask[0, cols].all() and not mask[b + 1:].any()  # cut, not wrapped
    assert (img[mask > 0] >= 0.98).mean() > (gimg[gmask > 0] >= 0.98).mean() + 0.2


def test_weak_signal_and_clutter_degrade_the_image():
    (gimg, gmask, _), (img, mask, _) = _pair(5, "MV", "weak")
    np.testing.assert_array_equal(mask, gmask)  # same flow, same scale: same ground truth
    assert img[mask > 0].mean() < 0.7 * gimg[gmask > 0].mean()
    (gimg, gmask, g), (img, mask, info) = _pair(5, "TR", "clutter")
    b, (c0, c1) = info["baseline_row"], info["columns"]
    quiet = [c for c in range(c0, c1) if info["velocity"][c] == 0]  # columns without flow
    assert quiet
    band = np.r_[b - 2:b, b + 1:b + 3]
    assert img[np.ix_(band, quiet)].mean() > gimg[np.ix_(band, quiet)].mean() + 0.2
    np.testing.assert_array_equal(mask, gmask)  # clutter is not flow


def test_render_checks_arguments():
    with pytest.raises(ValueError, match="flow"):
        render_doppler(0, "AV")
    with pytest.raises(ValueError, match="no degradations"):
        render_doppler(0, "MV", "good", degradations=("weak",))
    with pytest.raises(ValueError, match="exclude"):
        render_doppler(0, "MV", "low", degradations=("clipping", "aliasing"))
    img, _, info = render_doppler(np.random.default_rng(9), "MA", "low", 32)
    assert img.shape == (32, 32) and 1 <= len(info["degradations"]) <= 2
    assert set(info["degradations"]) <= set(DEGRADATIONS)


# ----------------------------------------------------------------------------- data set


@pytest.mark.parametrize("n,expected", [(30, {"MV": (10, 4), "MA": (10, 4), "TR": (10, 4)}),
                                        (32, {"MV": (11, 4), "MA": (11, 4), "TR": (10, 4)})])
def test_dataset_balanced(tmp_path, n, expected):
    root = make_doppler_dataset(tmp_path / "d", n=n, size=32, seed=1, low_quality=0.4)
    rows = _rows(root)
    assert list(rows[0]) == ["filename", "flow", "quality", "label", "flow_quality"]
    assert len(rows) == n and len({r["filename"] for r in rows}) == n
    got = {f: (sum(r["flow"] == f for r in rows), sum(r["flow"] == f and r["quality"] == "low" for r in rows))
           for f in FLOWS}
    assert got == expected
    for r in rows:
        assert r["label"] == r["flow"] and r["flow_quality"] == f"{r['flow']}_{r['quality']}"
        assert r["filename"].startswith(r["flow"] + "_") and r["quality"] in ("good", "low")
        img = cv2.imread(str(root / "images" / r["filename"]), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(root / "masks" / r["filename"]), cv2.IMREAD_UNCHANGED)
        assert img.shape == mask.shape == (32, 32) and img.dtype == mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255} and mask.any()
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["params"] == {"n": n, "size": 32, "seed": 1, "low_quality": 0.4, "flows": list(FLOWS)}
    assert sum(manifest["degradations"].values()) >= sum(low for _, low in expected.values())


def test_dataset_flows_and_no_low_quality(tmp_path):
    root = make_doppler_dataset(tmp_path / "d", n=13, size=32, seed=0, low_quality=0.0, flows=("TR", "MV"))
    rows = _rows(root)
    assert Counter(r["flow"] for r in rows) == {"TR": 7, "MV": 6}
    assert {r["quality"] for r in rows} == {"good"}
    for bad in ({"low_quality": 1.5}, {"flows": ("MV", "XX")}, {"flows": ()}, {"n": 0}, {"seed": -1}):
        with pytest.raises(RecipeError):
            make_doppler_dataset(tmp_path / "bad", **{"n": 6, "size": 32, **bad})


def test_dataset_deterministic_and_cached(tmp_path):
    a = make_doppler_dataset(tmp_path / "a", n=12, size=48, seed=3)
    b = make_doppler_dataset(tmp_path / "b", n=12, size=48, seed=3)
    c = make_doppler_dataset(tmp_path / "c", n=12, size=48, seed=4)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert fa == fb  # same seed: identical bytes
    imgs = [k for k in fa if k.startswith("images/")]
    assert len(imgs) == 12 and sum(fa[k] != fc[k] for k in imgs) == 12  # another seed: other images
    # a second call with the same parameters rewrites nothing; other parameters regenerate, dropping stale files
    stamp = {p: p.stat().st_mtime_ns for p in a.rglob("*.png")}
    time.sleep(0.01)
    make_doppler_dataset(a, n=12, size=48, seed=3)
    assert stamp == {p: p.stat().st_mtime_ns for p in a.rglob("*.png")}
    make_doppler_dataset(a, n=6, size=48, seed=3)
    assert len(list((a / "images").iterdir())) == 6 and len(_rows(a)) == 6


# ----------------------------------------------------------------------------- recipe and a tiny fit


def test_recipe_validates(monkeypatch):
    from umsrep.recipe import SyntheticConfig, load_recipe

    monkeypatch.delenv("UMSREP_DATA", raising=False)
    r = load_recipe(RECIPE)
    s = r.data.synthetic
    assert (s.kind, s.n, s.size, s.low_quality) == ("doppler", 600, 128, 0.3)
    assert r.modality == "doppler" and r.representation.kind == "supervised" and r.representation.task == "flow"
    assert r.tasks["flow"].classes == ["MV", "MA", "TR"] and r.tasks["quality"].classes == ["good", "low"]
    assert r.tasks["envelope"].type == "segmentation" and r.tasks["envelope"].classes == ["envelope"]
    assert set(r.derive_rules()) == {"measure_tr", "exclude_tr"}
    # the label maps cover every flow_quality value the generator writes
    values = {f"{f}_{q}" for f in FLOWS for q in ("good", "low")}
    assert set(r.tasks["flow"].label_map) == set(r.tasks["quality"].label_map) == values
    assert SyntheticConfig().kind == "ultrasound" and SyntheticConfig().low_quality == 0.3
    with pytest.raises(RecipeError, match="low_quality"):
        load_recipe(RECIPE, ["data.synthetic.low_quality=1.5"])
    with pytest.raises(RecipeError, match="kind"):
        load_recipe(RECIPE, ["data.synthetic.kind=echo"])


def test_prepare_generates_doppler_source(tmp_path):
    from umsrep.data.prepare import prepare
    from umsrep.recipe import load_recipe

    r = load_recipe(RECIPE, ["data.synthetic.n=24", "data.synthetic.size=32", "data.image_size=32"])
    rep, tasks, sources = prepare(r, tmp_path, log=lambda *_: None)
    assert len(sources) == 1 and rep.config.synthetic.kind == "doppler"
    assert (tmp_path / "doppler_data" / "labels.csv").is_file() and not (tmp_path / "data").exists()
    rows = {r_["filename"][:-4]: r_ for r_ in _rows(tmp_path / "doppler_data")}  # by stem, as the loader pairs
    for name in ("flow", "quality"):
        td = tasks[name]
        assert td.source is rep
        for i in np.flatnonzero(td.targets >= 0):
            assert td.classes[td.targets[i]] == rows[rep.data.names[i]][name]


def test_fit_and_predict_end_to_end(tmp_path):
    from umsrep.cli import main

    out = tmp_path / "run"
    sets = ["data.synthetic.n=48", "data.synthetic.size=32", "data.image_size=32", "representation.epochs=1",
            "tasks.flow.epochs=1", "tasks.envelope.epochs=1", "tasks.quality.epochs=1", "strategy.epochs=1",
            "output.html=false", "output.tensorboard=false"]
    assert main(["fit", str(RECIPE), "--out", str(out)] + [a for s in sets for a in ("--set", s)]) == 0
    for f in ("model.keras", "metrics.json", "report.md", "doppler_data/labels.csv"):
        assert (out / f).is_file(), f
    m = json.loads((out / "metrics.json").read_text())
    for name, key in (("flow", "mcc"), ("quality", "mcc"), ("envelope", "dice")):
        test = m["tasks"][name]["test"]
        assert test["n"] > 0 and 0 <= test["accuracy" if name != "envelope" else "dice"] <= 1 and key in test
    assert m["stages"]["representation"]["task"] == "flow" and m["run"]["strategy"] == "alternating"
    assert "independent" in json.dumps(m.get("comparison"))  # the frozen-encoder heads, compared
    for d in ("measure_tr", "exclude_tr"):
        assert m["derive"][d]["test"]["n_with_truth"] > 0 and "accuracy" in m["derive"][d]["test"]

    pred = tmp_path / "pred"
    imgs = sorted((out / "doppler_data" / "images").iterdir())[:3]
    assert main(["predict", str(out)] + [str(p) for p in imgs] + ["--out", str(pred)]) == 0
    with open(pred / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    for r in rows:
        assert r["flow"] in FLOWS and r["quality"] in ("good", "low") and r["measure_tr"] in ("True", "False")
        assert (pred / "masks" / f"{imgs[0].stem}_envelope.png").is_file()
