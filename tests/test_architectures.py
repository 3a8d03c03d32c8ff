"""The seed architectures: blocks (shapes and defining equations), pinned parameter counts, and every recipe's
architecture through `umsrep fit` on tiny synthetic data (build, train, save, reload)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import yaml

from umsrep.cli import main
from umsrep.models.blocks.attention import CoordinateAttention, ResidualAttention, SoftThreshold
from umsrep.models.blocks.conv import aspp
from umsrep.models.pyramid import attach, pyramid_spec
from umsrep.recipe import load_recipe
from umsrep.train.fit import build_encoder, build_head

RNG = np.random.default_rng(0)


def test_coordinate_attention_is_input_times_two_maps_in_0_1():
    layer = CoordinateAttention(reduction=2)
    x = RNG.normal(size=(2, 6, 5, 4)).astype("float32")
    y = np.asarray(layer(x))
    a_h, a_w = (np.asarray(a) for a in layer.attention_maps(x))
    assert y.shape == x.shape and a_h.shape == (2, 6, 1, 4) and a_w.shape == (2, 1, 5, 4)
    assert (a_h > 0).all() and (a_h < 1).all() and (a_w > 0).all() and (a_w < 1).all()
    np.testing.assert_allclose(y, x * a_h * a_w, rtol=1e-5, atol=1e-6)
    # the H map depends only on the row, the W map only on the column
    x2 = x.copy()
    x2[:, 0] += 3.0
    b_h, b_w = (np.asarray(a) for a in layer.attention_maps(x2))
    assert not np.allclose(b_h[:, 0], a_h[:, 0]) and np.allclose(b_h[:, 1:], a_h[:, 1:], atol=1e-6)


def test_soft_threshold_zeroes_small_values_and_shrinks_the_rest_by_tau():
    layer = SoftThreshold(reduction=2)
    x = RNG.normal(size=(3, 4, 4, 8)).astype("float32")
    y = np.asarray(layer(x))
    tau = np.asarray(layer.thresholds(x))
    assert tau.shape == (3, 1, 1, 8) and (tau > 0).all()
    assert (tau < np.abs(x).mean(axis=(1, 2), keepdims=True)).all()        # α in (0, 1)
    small = np.abs(x) <= tau
    assert small.any() and (~small).any()
    assert (y[small] == 0).all()
    np.testing.assert_allclose(np.abs(y[~small]), (np.abs(x) - tau)[~small], rtol=1e-5, atol=1e-6)
    assert (np.sign(y[~small]) == np.sign(x[~small])).all()


def test_residual_attention_is_one_plus_mask_times_trunk():
    layer = ResidualAttention(6, mask_filters=4)
    x = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
    y = np.asarray(layer(x))
    t, m = (np.asarray(a) for a in layer.branches(x))
    assert y.shape == t.shape == m.shape == (2, 8, 8, 6)
    assert (m > 0).all() and (m < 1).all()
    np.testing.assert_allclose(y, (1 + m) * t, rtol=1e-5, atol=1e-6)


def test_aspp_branches_have_the_configured_dilation_rates():
    inp = keras.Input((16, 16, 8))
    model = keras.Model(inp, aspp(inp, 12, rates=(1, 3, 7), name="a"))
    assert model.output.shape == (None, 16, 16, 12)
    assert model.get_layer("a_r1_conv").kernel_size == (1, 1)
    assert [model.get_layer(f"a_r{r}_conv").dilation_rate for r in (3, 7)] == [(3, 3), (7, 7)]
    assert model.get_layer("a_pool_up").output.shape == (None, 16, 16, 12)   # image pooling, upsampled back


# parameters of each recipe's model at its own input size: a change here is a change of architecture
PINNED = {"mmanet_busi": (493_744, {"lesion": 154_505, "diagnosis": 320_611}),
          "deeplab_busi": (600_528, {"lesion": 691_329}),
          "lightweight_busi": (220_965, {"diagnosis": 8_451}),
          "dcm_acdc": (405_328, {"myocardium": 341_873, "dcm": 437_922})}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_recipe_architectures_have_pinned_parameter_counts(name):
    from tests.conftest import REPO_ROOT

    r = load_recipe(REPO_ROOT / "recipes" / f"{name}.yaml")
    enc = build_encoder(r, 0.0, 1.0)
    heads = {n: build_head(n, t, pyramid_spec(enc), tuple(r.data.image_size), r.representation.kind)
             for n, t in r.tasks.items()}
    model = attach(enc, heads)
    assert (enc.count_params(), {n: h.count_params() for n, h in heads.items()}) == PINNED[name]
    x = np.zeros((1, *r.data.image_size, 1), "float32")
    out = model(x)
    for n, t in r.tasks.items():
        want = (1, *r.data.image_size, 1) if t.type == "segmentation" else (1, len(t.classes))
        assert tuple(out[n].shape) == want


def test_mmanet_ablation_switches_remove_their_parts():
    from tests.conftest import REPO_ROOT

    base = yaml.safe_load((REPO_ROOT / "recipes" / "mmanet_busi.yaml").read_text())
    from umsrep.recipe import parse_recipe

    def layer_names(**sets):
        raw = json.loads(json.dumps(base))
        raw["data"]["root"] = "/nonexistent"
        raw["representation"]["aspp"] = sets.get("aspp", True)
        raw["tasks"]["diagnosis"]["head"].update(attention=sets.get("ca", True), connection=sets.get("conn", True))
        r = parse_recipe(raw)
        enc = build_encoder(r, 0.0, 1.0)
        head = build_head("diagnosis", r.tasks["diagnosis"], pyramid_spec(enc), (128, 128), "mmanet")
        return {ly.name for ly in enc.layers} | {ly.name for ly in head.layers}

    full = layer_names()
    assert {"enc2_aspp_fuse_conv", "diagnosis_ca", "diagnosis_connection"} <= full
    assert "enc2_aspp_fuse_conv" not in layer_names(aspp=False)
    assert "diagnosis_ca" not in layer_names(ca=False)
    assert "diagnosis_connection" not in layer_names(conn=False)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_each_architecture_fits_saves_and_reloads(name, tmp_path):
    from tests.conftest import REPO_ROOT

    out = tmp_path / "run"
    sets = ["data.root=null", "data.synthetic={kind: ultrasound, n: 36, size: 64, seed: 1, per_patient: 2}",
            "data.image_size=64", "data.labels=labels.csv", "data.group_by=patient", "data.masks=masks",
            "strategy.epochs=1", "output.tensorboard=false", "output.html=false", "modality=ultrasound"]
    raw = yaml.safe_load((REPO_ROOT / "recipes" / f"{name}.yaml").read_text())
    for t, cfg in raw["tasks"].items():   # the synthetic set has one lesion class and benign/malignant/normal labels
        if cfg["type"] == "segmentation":
            sets += [f"tasks.{t}.mask_classes=null"]
        elif "label_map" in cfg:
            sets += [f"tasks.{t}.label_map={{benign: DCM, malignant: other, normal: other}}"]
    args = ["fit", str(REPO_ROOT / "recipes" / f"{name}.yaml"), "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["parameters"]["flops_per_image"] > 0 and "representation" not in m["stages"]
    model = keras.models.load_model(out / "model.keras")
    x = np.random.default_rng(1).random((2, 64, 64, 1)).astype("float32")
    again = keras.models.load_model(out / "model.keras")
    for k, v in model(x).items():
        np.testing.assert_allclose(np.asarray(v), np.asarray(again(x)[k]), atol=1e-6)
    if name == "deeplab_busi":
        assert "without_postprocess" in m["tasks"]["lesion"]["test"]


def test_gaussian_lowpass_layer_keeps_constants_and_smooths_noise():
    from umsrep.models.layers import GaussianLowpass

    layer = GaussianLowpass(2.0)
    flat = np.full((1, 32, 32, 1), 0.3, "float32")
    np.testing.assert_allclose(np.asarray(layer(flat)), flat, atol=1e-6)       # borders too (normalised)
    noise = np.random.default_rng(2).normal(0.5, 0.1, (1, 64, 64, 1)).astype("float32")
    smoothed = np.asarray(layer(noise))[0, 16:-16, 16:-16, 0]
    # white noise through a Gaussian of σ = 2: variance / (4πσ²) ≈ variance / 50
    expected = 0.1 ** 2 / (4 * np.pi * 2.0 ** 2)
    assert expected / 2 < smoothed.var() < expected * 2


def test_untrained_representation_needs_a_strategy_that_trains_it():
    from umsrep.errors import RecipeError
    from umsrep.recipe import parse_recipe

    raw = {"name": "t", "modality": "us", "data": {"synthetic": {"n": 24}}, "representation": {"kind": "deeplab"},
           "tasks": {"lesion": {"type": "segmentation", "classes": ["lesion"]}}}
    with pytest.raises(RecipeError, match="strategy.kind: independent trains heads on a frozen encoder"):
        parse_recipe(raw)
    assert parse_recipe({**raw, "strategy": {"kind": "joint"}}).representation.training == "none"
    assert parse_recipe({**raw, "representation": {"kind": "deeplab", "train": "denoising"}}).representation \
        .training == "denoising"
