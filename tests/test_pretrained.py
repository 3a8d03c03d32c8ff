"""Pretrained encoders: publishing a run's encoder with a card, the registry and CLI, SHA-256 and preprocessing
checks on load, and reuse in a new recipe (frozen and fine-tuned)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tests.conftest import REPO_ROOT, TINY_RECIPE
from umsrep import pretrained
from umsrep.cli import main
from umsrep.errors import RecipeError
from umsrep.recipe import parse_recipe


@pytest.fixture(scope="module")
def registry(tiny_run, tmp_path_factory):
    """A registry folder holding the tiny run's encoder as ``tiny-cdae``."""
    root = tmp_path_factory.mktemp("pretrained")
    assert main(["pretrained", "publish", str(tiny_run), "tiny-cdae", "--dest", str(root)]) == 0
    return root


@pytest.fixture
def use_registry(registry, monkeypatch):
    monkeypatch.setenv("UMSREP_PRETRAINED", str(registry))
    return registry


def _recipe(tmp_path, **rep):
    raw = yaml.safe_load(TINY_RECIPE)
    raw["representation"] = {"kind": "pretrained", "name": "tiny-cdae", **rep}
    raw["tasks"] = {"lesion": {**raw["tasks"]["lesion"], "epochs": 2}}
    raw.pop("derive")
    raw["output"] = {"html": False}
    p = tmp_path / "reuse.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p, raw


def test_publish_writes_a_card_that_matches_the_run(tiny_run, registry):
    folder = registry / "tiny-cdae"
    card = yaml.safe_load((folder / "card.yaml").read_text())
    pre = json.loads((tiny_run / "encoder" / "preprocessing.json").read_text())
    assert card["sha256"] == pretrained.sha256(folder / "encoder.keras")
    assert card["preprocessing"] == pre
    assert card["modality"] == "ultrasound" and card["architecture"]["kind"] == "denoising_autoencoder"
    # the denoising decoder the encoder was trained with travels with it, under the card's SHA-256
    assert (tiny_run / "encoder" / "denoise.keras").is_file()
    assert card["denoiser"]["sha256"] == pretrained.sha256(folder / "denoise.keras")
    assert card["denoiser"]["size_bytes"] == (folder / "denoise.keras").stat().st_size
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert card["parameters"] == metrics["parameters"]["encoder"]
    levels = card["denoising"]["levels"]
    assert set(levels) == {"gaussian_0.1", "speckle_0.2"}
    assert all(v["psnr_denoised"] > 0 and 0 < v["ssim_denoised"] <= 1 for v in levels.values())
    # every number of the card is the run's (noisy, denoised and the classical non-local-means denoiser)
    den = metrics["tasks"]["denoise"][card["denoising"]["split"]]
    assert all("nlm" in den[level] for level in levels)
    assert levels == {level: {f"{k}_{side}": round(den[level][side][k], 4) for side in ("noisy", "denoised", "nlm")
                              for k in ("psnr", "ssim")} for level in levels}
    # a second publish under the same name is refused, nothing overwritten
    before = (folder / "card.yaml").read_bytes()
    assert main(["pretrained", "publish", str(tiny_run), "tiny-cdae", "--dest", str(registry)]) == 2
    assert (folder / "card.yaml").read_bytes() == before


def test_registry_list_and_show(use_registry, capsys):
    assert pretrained.names() == ["tiny-cdae"]
    assert main(["pretrained", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny-cdae" in out and "ultrasound" in out
    assert main(["pretrained", "show", "tiny-cdae"]) == 0
    out = capsys.readouterr().out
    assert "SHA-256 verified" in out and yaml.safe_load(out.split("\n", 1)[1])["name"] == "tiny-cdae"
    assert main(["pretrained", "show", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no pretrained encoder 'nope'" in err and "tiny-cdae" in err


def test_tampered_weights_are_refused(registry, tmp_path, monkeypatch, capsys):
    import shutil

    copy = tmp_path / "reg"
    shutil.copytree(registry, copy)
    monkeypatch.setenv("UMSREP_PRETRAINED", str(copy))
    recipe, _ = _recipe(tmp_path)
    assert main(["validate", str(recipe)]) == 0
    with open(copy / "tiny-cdae" / "encoder.keras", "ab") as f:
        f.write(b"\0")
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "SHA-256" in err and "encoder.keras" in err
    out = tmp_path / "run"
    assert main(["fit", str(recipe), "--out", str(out)]) == 2
    assert not (out / "model.keras").exists()


@pytest.mark.parametrize("change", ["tampered", "unlisted"])
def test_a_changed_or_unlisted_denoiser_is_refused(registry, tmp_path, monkeypatch, capsys, change):
    import shutil

    copy = tmp_path / "reg"
    shutil.copytree(registry, copy)
    monkeypatch.setenv("UMSREP_PRETRAINED", str(copy))
    recipe, _ = _recipe(tmp_path)
    folder = copy / "tiny-cdae"
    if change == "tampered":
        with open(folder / "denoise.keras", "ab") as f:
            f.write(b"\0")
    else:  # a denoiser the card does not vouch for
        card = yaml.safe_load((folder / "card.yaml").read_text())
        card.pop("denoiser")
        (folder / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "denoise.keras" in err
    assert ("SHA-256" in err) if change == "tampered" else ("not listed" in err)


def test_baseline_from_a_pretrained_encoder(use_registry, tmp_path, capsys):
    """``baseline: true`` with a shipped encoder: one model per task, of the architecture the card names, from a
    random init, on the images denoised by the denoiser shipped with the encoder (its pretraining counted on
    neither side, as the encoder's is not); without a shipped denoiser, on the images as they are."""
    import shutil

    import keras

    from umsrep.models.encoder_io import load_denoiser, load_encoder

    recipe, _ = _recipe(tmp_path)
    out = tmp_path / "run"
    assert main(["fit", str(recipe), "--out", str(out), "--set", "baseline=true"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    card = yaml.safe_load((use_registry / "tiny-cdae" / "card.yaml").read_text())
    base = m["comparison"]["approaches"]["baseline"]
    assert set(base["models"]) == {"denoiser", "lesion"}
    # the shipped denoiser's pretraining is counted on neither side (UMS-Rep's time leaves the encoder's out too)
    assert base["models"]["denoiser"]["wall_time_s"] == 0.0
    assert base["models"]["denoiser"]["pretrained_wall_time_s"] == card["training"]["wall_time_s"]
    assert base["wall_time_s"] == pytest.approx(base["models"]["lesion"]["wall_time_s"], abs=0.01)
    shipped, _ = load_encoder(use_registry / "tiny-cdae")
    denoiser = load_denoiser(use_registry / "tiny-cdae")
    x = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 1)).astype("float32")
    model = keras.models.load_model(out / "models" / "baseline_lesion.keras")
    inner = [lay for lay in model.layers if isinstance(lay, keras.Model)]
    den, sep = inner  # the shipped denoiser, then the separate lesion model on its output
    np.testing.assert_allclose(den(x, training=False), denoiser(x, training=False), atol=1e-6)
    enc = sep.get_layer("baseline_lesion_encoder")
    assert enc.count_params() == shipped.count_params()  # the card's architecture, rebuilt ...
    assert not all(np.array_equal(a, b) for a, b in zip(enc.get_weights()[2:], shipped.get_weights()[2:]))
    assert "on denoised images" in capsys.readouterr().out

    # an encoder published without its denoiser: the baseline reads the images as they are, and says so
    plain = tmp_path / "plain"
    shutil.copytree(use_registry / "tiny-cdae", plain)
    (plain / "denoise.keras").unlink()
    card.pop("denoiser")
    (plain / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    out2 = tmp_path / "run2"
    assert main(["fit", str(recipe), "--out", str(out2), "--set", "baseline=true",
                 "--set", f"representation.name={plain}"]) == 0
    base2 = json.loads((out2 / "metrics.json").read_text())["comparison"]["approaches"]["baseline"]
    assert set(base2["models"]) == {"lesion"}
    assert "has no denoising decoder" in capsys.readouterr().out


def test_a_denoiser_for_another_size_is_refused_before_training(use_registry, tmp_path, capsys):
    """The baseline reads the shipped denoiser; one saved for another image size is refused by validate and by
    fit before anything is written, the run folder included (it was refused only when the baseline started, after
    the main model had been trained and saved)."""
    recipe, _ = _recipe(tmp_path)
    sets = ["--set", "data.image_size=48", "--set", "representation.allow_mismatch=true"]
    assert main(["validate", str(recipe), *sets]) == 0  # the encoder is rebuilt for 48x48; no baseline, no denoiser
    capsys.readouterr()
    assert main(["validate", str(recipe), *sets, "--set", "baseline=true"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1 and "denoise.keras" in lines[0] and "48x48" in lines[0]
    out = tmp_path / "run"
    assert main(["fit", str(recipe), "--out", str(out), *sets, "--set", "baseline=true"]) == 2
    assert "denoise.keras" in capsys.readouterr().err
    assert not out.exists()  # no run folder: nothing written, and the same --out works once the size is fixed


def test_preprocessing_mismatch_is_refused_unless_allowed(use_registry, tmp_path, capsys):
    recipe, _ = _recipe(tmp_path)
    assert main(["validate", str(recipe), "--set", "modality=cxr"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "modality 'ultrasound' (recipe: 'cxr')" in err
    assert main(["validate", str(recipe), "--set", "data.image_size=48"]) == 2
    assert "image_size [32, 32] (recipe: [48, 48])" in capsys.readouterr().err
    assert main(["validate", str(recipe), "--set", "modality=cxr",
                 "--set", "representation.allow_mismatch=true"]) == 0
    assert "warning:" in capsys.readouterr().err


def test_encoder_is_rebuilt_for_another_image_size(use_registry, tmp_path):
    """allow_mismatch with another image size: the convolutional encoder is rebuilt to read the recipe's size with
    the shipped weights unchanged, and the run trains end to end at that size."""
    import keras

    from umsrep.models.encoder_io import load_encoder
    from umsrep.recipe import load_recipe

    recipe, _ = _recipe(tmp_path)
    sets = ["--set", "data.image_size=48", "--set", "representation.allow_mismatch=true"]
    shipped, _ = load_encoder(use_registry / "tiny-cdae")
    rebuilt, _ = load_encoder(use_registry / "tiny-cdae", load_recipe(recipe, [s for s in sets if s != "--set"]),
                              warn=lambda m: None)
    assert tuple(shipped.input_shape[1:3]) == (32, 32) and tuple(rebuilt.input_shape[1:3]) == (48, 48)
    assert all(np.array_equal(a, b) for a, b in zip(shipped.get_weights(), rebuilt.get_weights()))
    out = tmp_path / "run"
    assert main(["fit", str(recipe), "--out", str(out), *sets]) == 0
    assert keras.models.load_model(out / "model.keras").input_shape[1:3] == (48, 48)
    # run.json records the size the run reads (it recorded the encoder's 32x32, and predict then fed 32x32 images
    # to a 48x48 model)
    assert json.loads((out / "run.json").read_text())["preprocessing"]["image_size"] == [48, 48]
    import cv2

    images = [tmp_path / f"new{i}.png" for i in range(3)]
    for i, f in enumerate(images):
        cv2.imwrite(str(f), np.random.default_rng(i).integers(0, 255, (40, 60), dtype=np.uint8))
    assert main(["predict", str(out), *map(str, images), "--out", str(tmp_path / "pred")]) == 0
    assert (tmp_path / "pred" / "predictions.csv").read_text().count("\n") == 4


def test_pretrained_schema_errors():
    base = yaml.safe_load(TINY_RECIPE)
    base.pop("derive")

    def refused(rep=None, **top):
        raw = {**base, **top, "representation": rep or base["representation"]}
        with pytest.raises(RecipeError) as e:
            parse_recipe(raw, "r.yaml")
        return str(e.value)

    assert "needs `name`" in refused({"kind": "pretrained"})
    assert "`name` is for kind: pretrained" in refused({**base["representation"], "name": "us-cdae"})
    assert "each head" in refused({"kind": "pretrained", "name": "x", "trainable": True})  # two tasks, independent
    assert "only the independent" in refused({"kind": "pretrained", "name": "x", "trainable": False},
                                             strategy={"kind": "joint"})


def test_baseline_needs_the_cards_architecture(use_registry, tmp_path, capsys):
    import shutil

    folder = tmp_path / "noarch"
    shutil.copytree(use_registry / "tiny-cdae", folder)
    card = yaml.safe_load((folder / "card.yaml").read_text())
    card.pop("architecture")
    (folder / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    recipe, _ = _recipe(tmp_path)
    noarch = ["--set", f"representation.name={folder}"]
    assert main(["validate", str(recipe), *noarch]) == 0  # without the baseline the architecture is not needed
    assert main(["validate", str(recipe), *noarch, "--set", "baseline=true"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "names none (`architecture:`)" in err
    out = tmp_path / "run"
    assert main(["fit", str(recipe), "--out", str(out), *noarch, "--set", "baseline=true"]) == 2
    assert not (out / "model.keras").exists()
    assert main(["validate", str(recipe), "--set", "baseline=true"]) == 0


@pytest.mark.parametrize("trainable", [False, True])
def test_reuse_frozen_and_fine_tuned(use_registry, tiny_run, tmp_path, trainable):
    """The tiny end-to-end reuse run: a new recipe starts from the published encoder; frozen leaves its weights
    exactly as shipped, fine-tuning changes them."""
    import keras

    from umsrep.models.encoder_io import load_encoder

    recipe, _ = _recipe(tmp_path, trainable=trainable)
    out = tmp_path / "run"
    assert main(["fit", str(recipe), "--out", str(out), "--set", "data.split.train_fraction=0.5"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["representation"] == "pretrained tiny-cdae"
    card = yaml.safe_load((use_registry / "tiny-cdae" / "card.yaml").read_text())
    assert metrics["run"]["encoder_sha256"] == card["sha256"]  # which version of the shipped name was loaded
    assert "representation" not in metrics["stages"]  # loaded, not trained
    assert 0 <= metrics["tasks"]["lesion"]["test"]["dice"] <= 1
    half = next(iter(json.loads((out / "splits.json").read_text())["sources"].values()))
    full = next(iter(json.loads((tiny_run / "splits.json").read_text())["sources"].values()))
    assert abs(len(half["train"]) - len(full["train"]) / 2) <= 2 and set(half["train"]) < set(full["train"])
    assert half["val"] == full["val"] and half["test"] == full["test"]  # same data, seed and split as tiny_run
    shipped, _ = load_encoder(use_registry / "tiny-cdae")
    model = keras.models.load_model(out / "model.keras")
    trained = model.get_layer("encoder")
    same = [np.array_equal(a, b) for a, b in zip(shipped.get_weights(), trained.get_weights())]
    assert all(same) is (not trainable)


def test_shipped_encoders_verify_and_load():
    """Every encoder in pretrained/ has a complete card, its weights match the SHA-256 and it loads."""
    from umsrep.models.encoder_io import load_encoder

    root = REPO_ROOT / "pretrained"
    names = sorted(p.name for p in root.iterdir() if (p / "card.yaml").is_file())
    if not names:
        pytest.skip("no encoders shipped in pretrained/")
    for n in names:
        card = pretrained.verify(root / n)
        for key in ("modality", "architecture", "training", "denoising", "parameters", "umsrep_version"):
            assert key in card, f"{n}: card lacks {key}"
        assert card["training"]["license"]
        enc, pre = load_encoder(root / n)
        assert enc.count_params() == card["parameters"]
        assert tuple(enc.input_shape[1:]) == (*pre["image_size"], pre["channels"])
        assert (root / n / "encoder.keras").stat().st_size < 8 * 2 ** 20  # "a few MB"


def test_shipped_recipes_find_their_pretrained_encoders(monkeypatch, capsys):
    """Every shipped recipe with kind: pretrained names a shipped encoder whose card matches the recipe (the
    check `umsrep validate` and `fit` run before anything is written)."""
    monkeypatch.delenv("UMSREP_PRETRAINED", raising=False)
    found = []
    for f in sorted((REPO_ROOT / "recipes").rglob("*.yaml")):
        rep = yaml.safe_load(f.read_text()).get("representation") or {}
        if rep.get("kind") == "pretrained":
            assert main(["validate", str(f)]) == 0, capsys.readouterr().err
            found.append(rep["name"])
    assert {"cxr-cdae", "us-cdae", "cmr-cdae"} <= set(found)
