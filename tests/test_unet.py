"""The U-Net decoder (default segmentation head and denoising decoder), BatchNorm momentum, cosine/poly schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from umsrep.models import ENCODERS, HEADS
from umsrep.models.pyramid import attach, attach_one, head_levels, pyramid_spec
from umsrep.recipe import parse_recipe
from umsrep.registry import SCHEDULES


def _encoder(size=32, filters=(8, 16, 16), convs=1):
    return ENCODERS.get("denoising_autoencoder").build((size, size, 1), filters=list(filters), convs_per_level=convs)


def test_unet_head_reads_every_level_and_the_image():
    enc = _encoder()
    spec = pyramid_spec(enc)
    head = HEADS.get("unet").build(spec, (32, 32), name="seg", n_classes=3)
    names = [t.name.split(":")[0] for t in head.inputs]
    assert names == ["p0", "p1", "p2", "image"]
    assert head_levels(head) == [0, 1, 2]
    model = attach(enc, {"seg": head})
    out = model(np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32))["seg"]
    assert tuple(out.shape) == (2, 32, 32, 4)  # softmax over background + 3 classes
    np.testing.assert_allclose(np.asarray(out).sum(-1), 1.0, rtol=1e-5)


def test_unet_is_the_default_segmentation_head_and_symmetric_is_named():
    base = {"name": "t", "modality": "us", "data": {"root": "x", "image_size": 32},
            "tasks": {"seg": {"type": "segmentation", "classes": ["a"]}}}
    from umsrep.models import resolve_head

    r = parse_recipe(base)
    assert resolve_head(r.tasks["seg"].head, "segmentation", r.representation.kind).kind == "unet"
    base["tasks"]["seg"]["head"] = {"kind": "symmetric"}
    assert parse_recipe(base).tasks["seg"].head.kind == "symmetric"
    base["tasks"]["cls"] = {"type": "classification", "classes": ["a", "b"], "head": {"kind": "unet"}}
    with pytest.raises(Exception, match=r"tasks\.cls\.head"):
        parse_recipe(base)


def test_unet_head_saves_and_loads(tmp_path):
    import keras

    import umsrep  # noqa: F401  (registers the custom layers)

    enc = _encoder(convs=2)
    model = attach(enc, {"seg": HEADS.get("unet").build(pyramid_spec(enc), (32, 32), name="seg", n_classes=1)})
    x = np.random.default_rng(1).random((3, 32, 32, 1), dtype=np.float32)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(again(x)["seg"]), np.asarray(model(x)["seg"]), atol=1e-6)


def test_encoder_convs_per_level_and_bn_momentum():
    one, two = _encoder(convs=1), _encoder(convs=2)
    assert len([ly for ly in two.layers if ly.name.endswith("_conv")]) == 2 * len(
        [ly for ly in one.layers if ly.name.endswith("_conv")])
    moms = {float(ly.momentum) for ly in two.layers if hasattr(ly, "momentum")}
    assert moms == {0.9}


def test_full_resolution_first_level():
    """first_stride: 1 keeps the shallowest level at the input size; every head (U-Net, the paper's symmetric
    decoder, a classifier) builds on that pyramid, and the U-Net's last step then runs no upsampling."""
    from umsrep.models import ENCODERS as E

    enc = E.get("denoising_autoencoder").build((32, 32, 1), filters=[8, 16, 16], first_stride=1)
    assert [s[:2] for s in pyramid_spec(enc)] == [(32, 32), (16, 16), (8, 8)]
    spec = pyramid_spec(enc)
    x = np.random.default_rng(1).random((2, 32, 32, 1), dtype=np.float32)
    heads = {"u": HEADS.get("unet").build(spec, (32, 32), name="u", n_classes=2),
             "s": HEADS.get("symmetric").build(spec, (32, 32), name="s", n_classes=1),
             "c": HEADS.get("classification").build(spec, (32, 32), name="c", n_classes=3)}
    out = attach(enc, heads)(x)
    assert tuple(out["u"].shape) == (2, 32, 32, 3) and tuple(out["s"].shape) == (2, 32, 32, 1)
    assert tuple(out["c"].shape) == (2, 3)
    # three steps (8 -> 16 -> 32 -> 32 with the image): the last one upsamples nothing
    assert [ly.name for ly in heads["u"].layers if ly.name.startswith("u_up")] == ["u_up1", "u_up2"]
    stride2 = E.get("denoising_autoencoder").build((32, 32, 1), filters=[8, 16, 16])
    assert pyramid_spec(stride2)[0][:2] == (16, 16)
    with pytest.raises(Exception, match="first_stride"):
        E.get("denoising_autoencoder").build((32, 32, 1), filters=[8], first_stride=3)


def test_unet_denoiser_beats_its_input():
    """Trained briefly on a small generated set, the U-Net denoiser's output is closer to the clean images than the
    noisy input is, at both noise levels (the paper's skip-less decoder does not manage this: docs/results.md)."""
    import keras
    import tensorflow as tf

    from umsrep.data.noise import NoiseLevel, apply_noise, random_noise
    from umsrep.evaluate.metrics import psnr

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32] / 32.0
    clean = np.stack([0.5 + 0.3 * np.sin(2 * np.pi * (f * xx + g * yy)) * (yy > t)
                      for f, g, t in rng.uniform([0.5, 0.5, 0.1], [2, 2, 0.6], (96, 3))]).astype("float32")[..., None]
    levels = [NoiseLevel("gaussian", 0.1), NoiseLevel("speckle", 0.3)]
    enc = _encoder(filters=(16, 32, 32))
    model = attach_one(enc, HEADS.get("denoise").build(pyramid_spec(enc), (32, 32), name="denoise", channels=1))
    ds = tf.data.Dataset.from_tensor_slices(clean[:80]).repeat().enumerate().map(
        lambda i, x: (random_noise(x, levels, tf.stack([tf.constant(1, tf.int64), i])), x)).batch(16)
    model.compile(keras.optimizers.Adam(2e-3), "mse")
    model.fit(ds, epochs=25, steps_per_epoch=5, verbose=0)
    test = clean[80:]
    for lv in levels:
        noisy = np.stack([apply_noise(x, lv, [7, j]).numpy() for j, x in enumerate(test)])
        out = np.clip(np.asarray(model(noisy, training=False)), 0, 1)
        assert psnr(test, out).mean() > psnr(test, noisy).mean() + 1.0, lv.name


@pytest.mark.parametrize("kind", ["cosine", "poly"])
def test_decay_schedules_warm_up_then_decay_to_min(kind):
    cls = SCHEDULES.get(kind)
    s = cls(cls.Settings(warmup_epochs=2, min_lr=1e-5), initial_lr=1e-3, epochs=12)
    lrs = [s.on_epoch_begin(e, None) for e in range(1, 13)]
    assert lrs[0] == pytest.approx(1e-3 / 3) and lrs[1] == pytest.approx(2e-3 / 3)
    assert lrs[2] == pytest.approx(1e-3)  # first epoch after the warm-up: the full rate
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))  # then never rising
    assert lrs[-1] == pytest.approx(1e-5, abs=1e-9 if kind == "cosine" else 1e-3 * 0.1 ** 0.9)
    assert all(not math.isnan(v) for v in lrs)
    # stateless: a schedule made anew (a resumed run) gives the same rate for the same epoch
    again = cls(cls.Settings(warmup_epochs=2, min_lr=1e-5), initial_lr=1e-3, epochs=12)
    assert again.on_epoch_begin(7, None) == lrs[6]


def test_early_stop_says_when_a_decaying_rate_had_much_left():
    """An early stop while a planned decay (cosine, poly) is still at >= 1/4 of its peak says so (and how to keep it
    running); a constant rate, a plateau schedule (which lowers the rate because progress stalled) or a rate
    already decayed stop silently as before, and min_epochs still holds the stop back. The best epoch's weights
    are restored and kept in the state as before."""
    from types import SimpleNamespace

    from umsrep.settings import EarlyStoppingConfig, TrainConfig
    from umsrep.train.handlers import default_handlers
    from umsrep.train.handlers.early_stopping import EarlyStopping

    cls = SCHEDULES.get("cosine")
    sched = cls(cls.Settings(warmup_epochs=2), initial_lr=1e-3, epochs=80)

    def train(rate, min_epochs=0, planned=True):  # validation improves for 25 epochs, then never (ACDC seed 44)
        logs, restored = [], []
        model = SimpleNamespace(get_weights=lambda: [np.full(2, stage.epoch)], set_weights=restored.append)
        stage = SimpleNamespace(name="joint", stop=False, history=[], log=logs.append, epoch=0,
                                monitored=lambda: 1.0, monitored_metric=lambda: None,
                                trainer=SimpleNamespace(model=model))
        es = EarlyStopping(EarlyStoppingConfig(patience=15, min_epochs=min_epochs), planned_decay=planned)
        for epoch in range(1, 81):
            stage.epoch = epoch
            stage.monitored = (lambda e=epoch: 1.0 / min(e, 25))
            rec = {"epoch": epoch, "lr": rate(epoch)}
            stage.history.append(rec)
            es.on_epoch_end(stage, rec)
            if stage.stop:
                break
        es.on_stage_end(stage)
        assert es.get_state()["best_epoch"] == 25 and restored[0][0][0] == 25  # the best epoch's weights
        return epoch, logs

    cosine = lambda e: sched.on_epoch_begin(e, None)  # noqa: E731
    epoch, logs = train(cosine)
    assert epoch == 40 and len(logs) == 1 and "best epoch 25" in logs[0]
    left = cosine(40) / 1e-3  # about half the peak, 40 epochs into a cosine over 80
    assert 0.4 < left < 0.6 and f"still {left:.0%} of its peak" in logs[0] and "min_epochs" in logs[0]
    assert "peak" not in train(lambda e: 1e-3)[1][0]  # constant rate: nothing to say
    assert "peak" not in train(cosine, planned=False)[1][0]  # a plateau schedule's cut is not a plan cut short
    epoch, logs = train(cosine, min_epochs=70)
    assert epoch == 70 and "peak" not in logs[0]  # held back until the rate had decayed below 1/4
    # the handlers of a stage know which schedules decay by plan
    for kind, planned in [("cosine", True), ("poly", True), ("plateau", False), ("constant", False)]:
        cfg = TrainConfig.model_validate({"lr_schedule": {"kind": kind}, "early_stopping": {"patience": 3}})
        (es,) = [h for h in default_handlers(cfg) if isinstance(h, EarlyStopping)]
        assert es.planned_decay is planned, kind


def test_schedule_fields_are_validated_by_kind():
    base = {"name": "t", "modality": "us", "data": {"root": "x"},
            "tasks": {"seg": {"type": "segmentation", "classes": ["a"], "lr_schedule": {"kind": "cosine",
                                                                                       "patience": 7}}}}
    with pytest.raises(Exception, match=r"tasks\.seg\.lr_schedule\.patience"):
        parse_recipe(base)


def test_representation_extra_data_joins_the_train_splits(tmp_path):
    from umsrep.data.prepare import prepare

    raw = {"name": "t", "modality": "us", "seed": 1,
           "data": {"synthetic": {"n": 24, "size": 16, "seed": 0}, "image_size": 16, "group_by": "patient",
                    "split": {"test": 0.25, "val": 0.25}},
           "representation": {"kind": "denoising_autoencoder", "filters": [4, 8],
                              "extra_data": [{"synthetic": {"n": 36, "size": 16, "seed": 5}}]},
           "tasks": {"lesion": {"type": "segmentation", "classes": ["lesion"]}}}
    r = parse_recipe(raw)
    rep, _, sources = prepare(r, tmp_path, log=lambda *_: None)
    assert len(rep.also) == 1 and len(sources) == 2
    for split in ("train", "val"):
        assert len(rep.representation_images(split)) == len(rep.split[split]) + len(rep.also[0].split[split])
    raw["representation"]["extra_data"] = [{"synthetic": {"n": 36, "size": 16, "seed": 5}, "image_size": 32}]
    with pytest.raises(Exception, match=r"representation\.extra_data\[0\]: image_size"):
        parse_recipe(raw)


def test_flip_tta_averages_the_mirror_prediction_mapped_back():
    import tensorflow as tf

    from umsrep.data.pipeline import with_tta

    w = tf.reshape(tf.range(8, dtype=tf.float32), [1, 1, 8, 1])  # left-right asymmetric weights

    def model(x, training=False):
        return {"seg": x * w, "cls": tf.reduce_sum(x * w, [1, 2, 3])[:, None]}

    x = tf.random.stateless_uniform([2, 4, 8, 1], seed=[1, 2])
    out = with_tta(model, "flip")(x)
    mirrored = model(tf.reverse(x, [2]))
    np.testing.assert_allclose(out["seg"], (x * w + tf.reverse(mirrored["seg"], [2])) / 2, rtol=1e-6)
    np.testing.assert_allclose(out["cls"], (model(x)["cls"] + mirrored["cls"]) / 2, rtol=1e-6)
    assert with_tta(model, "none") is model
    with pytest.raises(ValueError, match="rotate"):
        with_tta(model, "rotate")


def test_evaluate_and_predict_take_flip_tta(tiny_run, tmp_path):
    import json
    import shutil

    from umsrep.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert main(["evaluate", str(run), "--tta", "flip"]) == 0
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["evaluated"]["tta"] == "flip" and 0 <= ev["tasks"]["lesion"]["test"]["dice"] <= 1
    images = run / "data" / "images"
    assert main(["predict", str(run), str(next(images.iterdir())), "--out", str(tmp_path / "p"), "--tta", "flip"]) == 0
    assert (tmp_path / "p" / "predictions.csv").is_file()


def test_tversky_loss_weighs_missed_labels_more_than_unlabelled_predictions():
    from umsrep.models.losses import LOSSES

    y = np.zeros((1, 8, 8), np.int32)
    y[0, 2:4, 2:6] = 1                                        # 8 labelled pixels
    extra = np.zeros((1, 8, 8, 1), np.float32)
    extra[0, 2:4, 2:6] = 1.0
    extra[0, 5:8, 2:6] = 1.0                                  # + 12 predicted, unlabelled (a fascicle nobody drew)
    missed = np.zeros((1, 8, 8, 1), np.float32)
    missed[0, 2:3, 2:6] = 1.0                                 # half of the labelled pixels missed
    tv = LOSSES.get("tversky")("segmentation", smooth=0.0, alpha=0.3, beta=0.7)
    dice = LOSSES.get("dice")("segmentation", smooth=0.0)
    assert float(tv(y, extra)) < float(tv(y, missed))        # Tversky: missing labels costs more
    assert float(dice(y, extra)) > float(dice(y, missed))     # Dice: the unlabelled prediction costs more
    assert float(tv(y, extra)) == pytest.approx(1 - 8 / (8 + 0.3 * 12))
    assert float(LOSSES.get("tversky")("segmentation", smooth=0.0, alpha=0.5, beta=0.5)(y, extra)) == pytest.approx(
        float(dice(y, extra)))                                # alpha = beta = 0.5 is the Dice loss


def test_predict_can_skip_overlays_and_denoised_images(tiny_run, tmp_path):
    from umsrep.cli import main

    images = sorted((tiny_run / "data" / "images").iterdir())[:5]
    assert main(["predict", str(tiny_run), *map(str, images), "--out", str(tmp_path / "p"), "--no-overlays",
                 "--no-denoised"]) == 0
    out = tmp_path / "p"
    assert len(list((out / "masks").iterdir())) == 5 and not (out / "overlays").exists()
    assert not (out / "denoised").exists()
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) == 6 and [r.split(",")[0].rsplit("/", 1)[-1] for r in rows[1:]] == [p.name for p in images]
    # without denoised images the denoising head is not run, and nothing else changes
    assert main(["predict", str(tiny_run), *map(str, images), "--out", str(tmp_path / "all")]) == 0
    assert len(list((tmp_path / "all" / "denoised").iterdir())) == 5

    def values(folder):  # every column but the output paths
        import csv

        with open(folder / "predictions.csv") as fh:
            return [{k: v for k, v in r.items() if k not in ("file", "overlay", "denoised") and not k.endswith("_mask")}
                    for r in csv.DictReader(fh)]

    assert values(out) == values(tmp_path / "all") and len(values(out)[0]) >= 2
    for f in (out / "masks").iterdir():
        assert f.read_bytes() == (tmp_path / "all" / "masks" / f.name).read_bytes()


def test_select_heads_runs_only_the_chosen_heads(tiny_run):
    from umsrep.io import load_keras
    from umsrep.models.pyramid import select_heads

    model = load_keras(tiny_run / "model.keras")
    assert "denoise" in model.output
    kept = [n for n in model.output if n != "denoise"]
    sub = select_heads(model, kept)
    assert list(sub.output) == kept and "head_denoise" not in [layer.name for layer in sub.layers]
    x = np.random.default_rng(0).random((2, *model.input_shape[1:])).astype(np.float32)
    full, part = model(x, training=False), sub(x, training=False)
    for n in kept:
        np.testing.assert_array_equal(np.asarray(full[n]), np.asarray(part[n]))


def test_non_local_means_baseline_estimates_the_noise_and_denoises():
    from umsrep.evaluate.classical import estimate_sigma, nlm_denoise
    from umsrep.evaluate.metrics import psnr

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:64, :64] / 64.0
    clean = (0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy)).astype(np.float32)[None, ..., None].repeat(3, 0)
    noisy = np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1).astype(np.float32)
    assert estimate_sigma(noisy[0, ..., 0]) == pytest.approx(0.08, rel=0.25)
    assert estimate_sigma(clean[0, ..., 0]) < 0.01
    out = nlm_denoise(noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert psnr(clean, out).mean() > psnr(clean, noisy).mean() + 3


def test_denoising_metrics_carry_the_non_local_means_baseline(tiny_run):
    import json

    d = json.loads((tiny_run / "metrics.json").read_text())["tasks"]["denoise"]["test"]
    for level in d.values():
        assert set(level["nlm"]) == {"psnr", "ssim", "ms_ssim"}
    assert "non-local means" in (tiny_run / "report.md").read_text()
