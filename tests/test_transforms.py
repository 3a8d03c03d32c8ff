"""Augmentation (umsrep.transforms): image and masks move together, intensity leaves masks alone, stateless
per-sample randomness (same key, same output; resume-safe streams), training split only, recipe validation."""

import copy
import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from umsrep.data import pipeline  # noqa: E402
from umsrep.errors import RecipeError  # noqa: E402
from umsrep.recipe import dump_recipe, parse_recipe  # noqa: E402
from umsrep.transforms import (  # noqa
    TRANSFORMS,
    Augmentation,
    AugmentConfig,
    IntensityTransform,
    SpatialTransform,
    augmentation,  # noqa: E402
)

SPATIAL = [n for n in TRANSFORMS.names() if issubclass(TRANSFORMS.get(n), SpatialTransform)]
INTENSITY = [n for n in TRANSFORMS.names() if issubclass(TRANSFORMS.get(n), IntensityTransform)]
# settings strong enough that every draw visibly moves the content
STRONG = {"rotate": {"degrees": [20, 40]}, "scale": {"zoom": [1.2, 1.4]}, "translate": {"fraction": 0.15},
          "crop": {"size": [0.6, 0.7]}, "elastic": {"magnitude": 0.04}}


def _scene(size=64, seed=0):
    """Smooth blobs on a dark background, and the mask made by thresholding them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    img = np.full((size, size), 0.1, np.float32)
    for _ in range(4):
        cy, cx, r = rng.uniform(10, size - 10), rng.uniform(10, size - 10), rng.uniform(5, 11)
        img += 0.7 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r ** 2))
    img = np.clip(img, 0, 1)[..., None]
    return img, (img[..., 0] > 0.45).astype(np.int32)


def _one(name, p=1.0, **kw):
    return Augmentation({name: TRANSFORMS.get(name)(p=p, **{**STRONG.get(name, {}), **kw})})


def _run(aug, img, y, key=(7, 1)):
    a, b = aug(tf.constant(img), tf.nest.map_structure(tf.constant, y), tf.constant(key, tf.int64))
    return a.numpy(), tf.nest.map_structure(lambda t: t.numpy(), b)


def _boundary(mask):
    """Pixels within one pixel of a label change."""
    m = np.pad(mask, 1, mode="edge")
    out = np.zeros(mask.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out |= m[1 + dy:1 + dy + mask.shape[0], 1 + dx:1 + dx + mask.shape[1]] != mask
    return out


@pytest.mark.parametrize("name", SPATIAL)
def test_spatial_transform_moves_image_and_mask_together(name):
    img, mask = _scene()
    for key in [(1, 0), (1, 1), (2, 5)]:
        a, m = _run(_one(name), img, mask, key)
        assert m.dtype == np.int32 and set(np.unique(m)) <= {0, 1}  # nearest: labels, never blends
        assert 0 <= a.min() and a.max() <= 1
        assert (m != mask).mean() > 0.01, f"{name} did not move the mask"
        thresholded = (a[..., 0] > 0.45).astype(np.int32)
        off = thresholded != m
        assert off.mean() < 0.02, f"{name}: mask and image disagree on {off.mean():.1%} of the pixels"
        assert not np.any(off & ~_boundary(m) & ~_boundary(thresholded)), f"{name}: disagreement off the edges"


def test_flips_are_exact_mirrors():
    img, mask = _scene()
    a, m = _run(_one("flip_h"), img, mask)
    np.testing.assert_array_equal(a, img[:, ::-1])
    np.testing.assert_array_equal(m, mask[:, ::-1])
    a, m = _run(_one("flip_v"), img, mask)
    np.testing.assert_array_equal(a, img[::-1])
    np.testing.assert_array_equal(m, mask[::-1])


@pytest.mark.parametrize("name", INTENSITY)
def test_intensity_transform_changes_the_image_only(name):
    img, mask = _scene()
    targets = {"lesion": mask, "diagnosis": np.int32(2)}
    a, out = _run(_one(name), img, targets)
    np.testing.assert_array_equal(out["lesion"], mask)
    assert out["diagnosis"] == 2
    assert np.abs(a - img).max() > 1e-3, f"{name} did not change the image"
    assert a.dtype == np.float32 and a.shape == img.shape and 0 <= a.min() and a.max() <= 1


def test_labels_and_non_mask_targets_pass_through_a_spatial_warp():
    img, mask = _scene()
    aug = Augmentation(AugmentConfig.model_validate({"preset": "strong", "rotate": {"p": 1.0}}).transforms())
    a, out = _run(aug, img, {"lesion": mask, "diagnosis": np.int32(1), "clean": img})
    assert out["diagnosis"] == 1
    np.testing.assert_array_equal(out["clean"], img)   # a float image target is not a mask: untouched
    assert (out["lesion"] != mask).any()


def test_same_key_same_output_other_counter_differs():
    img, mask = _scene()
    aug = Augmentation(AugmentConfig.model_validate({"preset": "strong", "elastic": {"p": 0.5}}).transforms())
    a1, m1 = _run(aug, img, mask, (3, 10))
    a2, m2 = _run(aug, img, mask, (3, 10))
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(m1, m2)
    graph = tf.function(aug)                                # in tf.data the same function runs as a graph
    a3, m3 = graph(tf.constant(img), tf.constant(mask), tf.constant([3, 10], tf.int64))
    np.testing.assert_allclose(a3.numpy(), a1, atol=1e-6)
    np.testing.assert_array_equal(m3.numpy(), m1)
    others = [_run(aug, img, mask, (3, k))[0] for k in range(11, 16)] + [_run(aug, img, mask, (4, 10))[0]]
    assert all(np.abs(o - a1).max() > 1e-3 for o in others)


def test_a_transform_draw_does_not_depend_on_the_others():
    img, mask = _scene()
    only = _run(_one("flip_h", p=0.5), img, mask, (5, 3))
    with_gamma_off = Augmentation({"flip_h": TRANSFORMS.get("flip_h")(p=0.5),
                                   "gamma": TRANSFORMS.get("gamma")(p=0.0)})
    np.testing.assert_array_equal(_run(with_gamma_off, img, mask, (5, 3))[0], only[0])


def test_probability_is_respected():
    img, mask = _scene()
    aug = _one("flip_h", p=0.3)
    flipped = [not np.array_equal(_run(aug, img, mask, (0, k))[1], mask) for k in range(200)]
    assert 0.2 < np.mean(flipped) < 0.4


def _stream(cfg, x, y, then=None, seed=3):
    return pipeline.train_dataset(x, y, batch_size=4, seed=seed, map_fn=augmentation(cfg, then))


def _batches(ds, k):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b, _ in zip(iter(ds), range(k))]


def test_augmented_stream_is_the_same_after_a_resume():
    x = np.stack([_scene(32, s)[0] for s in range(10)])
    y = np.stack([_scene(32, s)[1] for s in range(10)])
    cfg = AugmentConfig.model_validate({"preset": "strong", "elastic": {"p": 0.3}})
    first = _batches(_stream(cfg, x, y), 8)
    again = _batches(_stream(cfg, x, y), 8)                  # a new process builds the stream again
    resumed = _batches(_stream(cfg, x, y).skip(5), 3)        # fit --resume skips the consumed batches
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    for a, b in zip(first[5:], resumed):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    plain = _batches(_stream(None, x, y), 8)
    assert any(np.abs(a[0] - p[0]).max() > 1e-3 for a, p in zip(first, plain))
    # epochs differ: the same image gets another augmentation in the next epoch (sample counter, not index)
    assert not np.array_equal(np.concatenate([b[0] for b in first[:2]]),
                              np.concatenate([b[0] for b in _batches(_stream(cfg, x, y).skip(3), 2)]))


def test_without_augmentation_the_stream_is_unchanged():
    assert augmentation(AugmentConfig(), None) is None
    then = object()
    assert augmentation(AugmentConfig.model_validate("none"), then) is then
    assert augmentation(AugmentConfig.model_validate({"preset": "strong", **{n: None for n in TRANSFORMS.names()}}),
                        then) is then


def test_denoising_target_is_the_augmented_clean_image():
    x = np.stack([_scene(32, s)[0] for s in range(4)])
    cfg = AugmentConfig.model_validate({"preset": "none", "rotate": {"p": 1.0, "degrees": 30}, "gamma": {"p": 1.0}})

    def add_noise(img, target, seed):  # as fit's representation stage: noisy input, clean (augmented) target
        return img + 0.5, img

    (noisy, clean), = _batches(_stream(cfg, x, x, add_noise), 1)
    np.testing.assert_allclose(noisy, clean + 0.5, atol=1e-6)
    assert np.abs(np.sort(clean.ravel()) - np.sort(x.ravel())).max() > 1e-3  # the target was augmented


def test_fit_augments_the_training_split_only():
    from umsrep.recipe import TrainConfig
    from umsrep.train.fit import _stream as fit_stream

    x = np.stack([_scene(32, s)[0] for s in range(8)])
    y = np.stack([_scene(32, s)[1] for s in range(8)])
    cfg = AugmentConfig.model_validate({"flip_h": {"p": 1.0}})
    s = fit_stream("t", None, None, TrainConfig(batch_size=8), x, y, x, y, 0, augment=cfg)
    (xt, yt), = _batches(s.train_ds, 1)
    (xv, yv), = _batches(s.val_ds, 1)
    np.testing.assert_array_equal(xv, x)   # validation: in order, untouched
    np.testing.assert_array_equal(yv, y)
    order = [int(np.argmin([np.abs(xt[i, :, ::-1] - xi).mean() for xi in x])) for i in range(8)]
    assert sorted(order) == list(range(8))  # training: a permutation of the images, each one mirrored
    for i, k in enumerate(order):
        np.testing.assert_array_equal(xt[i], x[k][:, ::-1])
        np.testing.assert_array_equal(yt[i], y[k][:, ::-1])


# ------------------------------------------------------------------------------------------- recipe
BASE = {"name": "t", "modality": "us", "data": {"synthetic": {}},
        "tasks": {"lesion": {"type": "segmentation", "classes": ["lesion"]}}}


def _recipe(augment=None, task_augment=None):
    r = copy.deepcopy(BASE)
    if augment is not None:
        r["data"]["augment"] = augment
    if task_augment is not None:
        r["tasks"]["lesion"]["data"] = {"augment": task_augment}
    return parse_recipe(r)


def test_presets_and_overrides():
    assert not _recipe().data.augment.active                      # default: none, existing recipes unchanged
    strong = _recipe("strong").data.augment.transforms()
    assert {"flip_h", "rotate", "scale", "gamma", "brightness", "contrast", "blur", "noise"} <= set(strong)
    assert "elastic" not in strong and strong["rotate"].degrees == (-30, 30)
    t = _recipe({"preset": "strong", "rotate": {"p": 0.5, "degrees": 20}, "elastic": {"p": 0.2},
                 "flip_v": None, "gamma": {"p": 0}}).data.augment.transforms()
    assert t["rotate"].p == 0.5 and t["rotate"].degrees == (-20, 20)
    assert t["elastic"].p == 0.2 and "flip_v" not in t and "gamma" not in t
    assert t["scale"] == strong["scale"]
    # a partial override keeps the preset's other settings
    assert _recipe({"preset": "strong", "rotate": {"p": 1}}).data.augment.transforms()["rotate"].degrees == (-30, 30)
    light = _recipe(None, "light")
    assert light.task_data("lesion").augment.active and not light.data.augment.active


def test_dumped_recipe_reloads_to_the_same_augmentation():
    r = _recipe({"preset": "strong", "rotate": {"degrees": 20}, "flip_v": None})
    import yaml

    again = parse_recipe(yaml.safe_load(dump_recipe(r)))
    assert again.data.augment.transforms() == r.data.augment.transforms()
    assert "flip_v" not in again.data.augment.transforms()
    assert json.dumps(again.model_dump(mode="json")) == json.dumps(r.model_dump(mode="json"))


@pytest.mark.parametrize("augment,expected", [
    ({"rotat": {}}, "data.augment: unknown transform 'rotat'; expected preset or one of: blur, brightness"),
    ({"rotate": {"degrees": "a lot"}}, "data.augment.rotate.degrees: "),
    ({"rotate": {"degrees": 400}}, "data.augment.rotate.degrees: range [-400, 400] must lie within [-180, 180]"),
    ({"scale": {"zoom": [1.3, 0.9]}}, "data.augment.scale.zoom: [min, max] needs min <= max"),
    ({"gamma": {"p": 1.5}}, "data.augment.gamma.p: "),
    ({"blur": {"radius": 2}}, "data.augment.blur.radius: unknown field"),
    ("medium", "data.augment.preset: "),
])
def test_bad_augment_settings_name_the_field(augment, expected):
    with pytest.raises(RecipeError) as e:
        _recipe(augment)
    assert str(e.value).startswith("recipe: " + expected), str(e.value)
    assert "\n" not in str(e.value)


def test_bad_task_augment_names_the_task():
    with pytest.raises(RecipeError, match=r"tasks\.lesion\.data: augment\.elastic\.grid"):
        _recipe(None, {"elastic": {"grid": 1}})


def test_recipe_import_needs_no_tensorflow():
    import subprocess
    import sys

    code = "import sys, umsrep.recipe, umsrep.transforms; assert 'tensorflow' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ------------------------------------------------------------------------------------------- fit
def test_tiny_fit_with_light_augmentation(tiny_recipe_file, tmp_path):
    from umsrep.cli import main

    out = tmp_path / "run"
    args = ["--set", "data.augment=light", "--set", "representation.epochs=1", "--set", "tasks.lesion.epochs=1",
            "--set", "tasks.diagnosis.epochs=1", "--set", "output.tensorboard=false"]
    assert main(["fit", str(tiny_recipe_file), "--out", str(out), *args]) == 0
    assert (out / "model.keras").is_file()
    page = (out / "report.html").read_text()
    assert "Augmented training samples" in page and "lesion: light:" in page
    assert "preset: light" in (out / "recipe.yaml").read_text()


def test_fit_resume_with_augmentation_is_bit_identical(tiny_recipe_file, tmp_path, monkeypatch):
    from tests.test_resume import _interrupt_after, _weights
    from umsrep.cli import main

    args = ["--set", "data.augment={preset: strong, elastic: {p: 0.3}}", "--set", "representation.epochs=2",
            "--set", "tasks.lesion.epochs=1", "--set", "tasks.diagnosis.epochs=1",
            "--set", "output.tensorboard=false", "--set", "output.html=false"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["fit", str(tiny_recipe_file), "--out", str(a), *args]) == 0
    calls = _interrupt_after(monkeypatch, 1)  # after the first epoch of the (augmented) representation stage
    assert main(["fit", str(tiny_recipe_file), "--out", str(b), *args]) == 130
    monkeypatch.undo()
    assert calls == ["representation"]
    assert main(["fit", "--resume", str(b)]) == 0
    for x, y in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(x, y)
