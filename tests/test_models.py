"""Encoders, heads, losses and the training engine on tiny synthetic tensors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from umsrep.errors import RecipeError
from umsrep.models import ENCODERS, HEADS
from umsrep.models.encoder_io import load_encoder, save_encoder
from umsrep.models.layers import Normalize
from umsrep.models.losses import LOSSES, build_loss
from umsrep.models.pyramid import attach, head_levels, pyramid_spec
from umsrep.recipe import LossConfig, parse_recipe


def test_denoising_autoencoder_paper_size():
    enc = ENCODERS.get("denoising_autoencoder").build((256, 256, 1))
    spec = pyramid_spec(enc)
    assert spec == [(128, 128, 32), (64, 64, 64), (32, 32, 128), (16, 16, 256)]
    dec = HEADS.get("denoise").build(spec, (256, 256), name="denoise", channels=1, decoder="symmetric")
    total = enc.count_params() + dec.count_params()
    assert total == 786_881  # pinned: paper ~800k (its symmetric decoder)
    unet = HEADS.get("denoise").build(spec, (256, 256), name="denoise", channels=1)  # the default decoder
    assert enc.count_params() + unet.count_params() == 1_172_417  # pinned: the U-Net decoder of the same encoder
    convs = [l for l in enc.layers if isinstance(l, keras.layers.Conv2D)]
    assert [c.strides for c in convs] == [(2, 2)] * 4 and all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in enc.layers) == 4


def test_supervised_dilated_cnn_paper_size():
    enc = ENCODERS.get("supervised").build((256, 256, 1))
    convs = [l for l in enc.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 6 and [c.dilation_rate[0] for c in convs] == [1, 1, 1, 2, 2, 2]
    assert all(c.padding == "same" for c in convs)
    head = HEADS.get("classification").build(pyramid_spec(enc), (256, 256), name="dx", n_classes=3)
    assert enc.count_params() + head.count_params() == 441_667  # pinned: paper ~460k
    assert any(isinstance(l, keras.layers.Dropout) and l.rate == 0.5 for l in head.layers)


@pytest.mark.parametrize("kind", ["denoising_autoencoder", "supervised"])
def test_heads_attach_and_roundtrip(kind, tmp_path):
    enc = ENCODERS.get(kind).build((32, 32, 1), filters=[4, 8, 8, 8, 8, 8] if kind == "supervised" else [4, 8, 8, 16],
                             mean=0.4, std=0.2)
    spec = pyramid_spec(enc)
    heads = {
        "seg": HEADS.get("segmentation").build(spec, (32, 32), name="seg", n_classes=1),
        "multi": HEADS.get("segmentation").build(spec, (32, 32), name="multi", n_classes=3, skips=True),
        "dx": HEADS.get("classification").build(spec, (32, 32), name="dx", n_classes=4, units=8),
    }
    assert head_levels(heads["multi"]) == list(range(len(spec)))
    assert head_levels(heads["seg"]) == head_levels(heads["dx"]) == [len(spec) - 1]
    model = attach(enc, heads)
    x = np.random.default_rng(0).random((3, 32, 32, 1), np.float32)
    out = model(x, training=False)
    assert out["seg"].shape == (3, 32, 32, 1) and out["multi"].shape == (3, 32, 32, 4) and out["dx"].shape == (3, 4)
    np.testing.assert_allclose(np.sum(out["multi"], -1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.sum(out["dx"], -1), 1.0, atol=1e-5)
    assert 0 <= float(np.min(out["seg"])) and float(np.max(out["seg"])) <= 1
    model.save(tmp_path / "m.keras")
    back = keras.models.load_model(tmp_path / "m.keras")
    out2 = back(x, training=False)
    for k in out:
        np.testing.assert_allclose(out[k], out2[k], atol=1e-6)
    assert not any(isinstance(l, keras.layers.Lambda) for l in back.get_layer("encoder").layers)
    assert back.get_layer("encoder").get_layer("normalize").mean == pytest.approx(0.4)


def test_normalize_modes():
    x = np.random.default_rng(1).random((2, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(Normalize("none")(x), x)
    np.testing.assert_allclose(Normalize("dataset_zscore", 0.5, 0.25)(x), (x - 0.5) / 0.25, rtol=1e-5)
    im = np.asarray(Normalize("image_mean")(x))
    np.testing.assert_allclose(im.mean(axis=(1, 2, 3)), 0, atol=1e-6)
    iz = np.asarray(Normalize("image_zscore")(x))
    np.testing.assert_allclose(iz.std(axis=(1, 2, 3)), 1, atol=1e-4)
    with pytest.raises(ValueError):
        Normalize("bogus")


def test_encoder_save_load_checks_preprocessing(tmp_path):
    recipe = parse_recipe({"name": "t", "modality": "cxr", "data": {"root": "/d", "image_size": 32},
                           "tasks": {"lung": {"type": "segmentation", "classes": ["lung"]}}})
    enc = ENCODERS.get("denoising_autoencoder").build((32, 32, 1), filters=[4, 8, 8, 16])
    pre = {"modality": "cxr", "image_size": [32, 32], "channels": 1, "normalization": "dataset_zscore"}
    save_encoder(enc, tmp_path / "enc", pre)
    back, p = load_encoder(tmp_path / "enc", recipe)
    assert back.count_params() == enc.count_params() and p["modality"] == "cxr"
    other = parse_recipe({"name": "t", "modality": "ultrasound", "data": {"root": "/d", "image_size": 64},
                          "tasks": {"lung": {"type": "segmentation", "classes": ["lung"]}}})
    with pytest.raises(RecipeError, match=r"modality 'cxr' \(recipe: 'ultrasound'\).*image_size \[32, 32\]"):
        load_encoder(tmp_path / "enc", other)
    with pytest.raises(RecipeError, match="holds no encoder.keras"):
        load_encoder(tmp_path, other)


def _seg_case():
    y = np.zeros((1, 4, 4), np.int32)
    y[0, :2, :2] = 1                      # 4 foreground pixels
    p = np.zeros((1, 4, 4, 1), np.float32)
    p[0, 0, :2, 0] = 1.0                  # 2 predicted pixels, both inside
    return y, p


def test_dice_and_jaccard_losses_hand_values():
    y, p = _seg_case()
    dice = float(LOSSES.get("dice")("segmentation", smooth=0.0)(y, p))
    jac = float(LOSSES.get("jaccard")("segmentation", smooth=0.0)(y, p))
    assert dice == pytest.approx(1 - 2 * 2 / 6, abs=1e-6)
    assert jac == pytest.approx(1 - 2 / 4, abs=1e-6)
    assert float(LOSSES.get("dice")("segmentation", smooth=0.0)(y, y[..., None].astype("float32"))) == \
        pytest.approx(0.0, abs=1e-6)


def test_ce_losses_match_keras():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (2, 8, 8)).astype(np.int32)
    p = rng.uniform(0.05, 0.95, (2, 8, 8, 1)).astype(np.float32)
    ours = float(LOSSES.get("ce")("segmentation")(y, p))
    ref = float(keras.losses.BinaryCrossentropy()(y[..., None].astype("float32"), p))
    assert ours == pytest.approx(ref, rel=1e-4)
    yc = rng.integers(0, 3, (16,)).astype(np.int32)
    pc = rng.dirichlet(np.ones(3), 16).astype(np.float32)
    ours = float(LOSSES.get("ce")("classification")(yc, pc))
    ref = float(keras.losses.SparseCategoricalCrossentropy()(yc, pc))
    assert ours == pytest.approx(ref, rel=1e-4)
    # weighted sum: overlap_weight * dice + ce_weight * ce
    y1, p1 = _seg_case()
    cfg = LossConfig(name="dice_ce", overlap_weight=20, ce_weight=1, smooth=0)
    combo = float(build_loss("segmentation", cfg)(y1, p1))
    parts = (20 * float(LOSSES.get("dice")("segmentation", smooth=0)(y1, p1))
             + float(LOSSES.get("ce")("segmentation")(y1, p1)))
    assert combo == pytest.approx(parts, rel=1e-5)
    with pytest.raises(RecipeError, match="segmentation tasks only"):
        LOSSES.get("dice")("classification")


def test_multiclass_dice_ignores_background():
    y = np.array([[[0, 1], [2, 2]]], np.int32)
    perfect = tf.one_hot(y, 3).numpy()
    assert float(LOSSES.get("dice")("segmentation", smooth=0.0)(y, perfect)) == pytest.approx(0.0, abs=1e-6)
    wrong = tf.one_hot(np.array([[[0, 2], [1, 1]]]), 3).numpy()
    assert float(LOSSES.get("dice")("segmentation", smooth=0.0)(y, wrong)) == pytest.approx(1.0, abs=1e-6)


def test_fused_batchnorm_matches_keras_batchnorm():
    """The fused-kernel BatchNorm gives Keras' outputs, moving statistics and gradients, in training and
    inference, and survives a save/load round trip."""
    import tensorflow as tf

    from umsrep.models.blocks.norm import FusedBatchNormalization

    x = tf.constant(np.random.default_rng(0).normal(size=(4, 8, 8, 5)).astype("float32") * 3 + 1)
    ref, fused = keras.layers.BatchNormalization(momentum=0.9), FusedBatchNormalization(momentum=0.9)
    ref.build(x.shape)
    fused.build(x.shape)
    for layer in (ref, fused):
        layer.gamma.assign(np.linspace(0.5, 2.0, 5))
        layer.beta.assign(np.linspace(-1.0, 1.0, 5))
    grads = {}
    for name, layer in (("ref", ref), ("fused", fused)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y ** 3)
        grads[name] = [g.numpy() for g in tape.gradient(loss, [x, layer.gamma, layer.beta])]
        grads[name + "_y"] = y.numpy()
    np.testing.assert_allclose(grads["fused_y"], grads["ref_y"], atol=1e-5)
    for a, b in zip(grads["fused"], grads["ref"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(fused.moving_mean.numpy(), ref.moving_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance.numpy(), ref.moving_variance.numpy(), rtol=1e-5)
    assert not np.allclose(fused.moving_variance.numpy(), 1.0)  # the statistics did move
    np.testing.assert_allclose(fused(x, training=False).numpy(), ref(x, training=False).numpy(), atol=1e-5)


def test_fused_batchnorm_in_saved_models(tmp_path):
    from umsrep.models.blocks.norm import FusedBatchNormalization

    enc = ENCODERS.get("denoising_autoencoder").build((16, 16, 1), filters=[4, 4, 8, 8])
    assert any(isinstance(layer, FusedBatchNormalization) for layer in enc.layers)
    x = np.random.default_rng(1).random((2, 16, 16, 1)).astype("float32")
    enc(x, training=True)  # move the statistics
    enc.save(tmp_path / "e.keras")
    back = keras.models.load_model(tmp_path / "e.keras")
    assert type(back.get_layer("enc1_bn")) is FusedBatchNormalization
    for a, b in zip(enc(x, training=False), back(x, training=False)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_flops_and_parameters_match_a_hand_count():
    from umsrep.models.flops import count_flops, count_parameters

    inp = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", name="conv")(inp)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inp, keras.layers.Dense(3, name="dense")(x))
    model.get_layer("conv").trainable = False
    # conv: 4x4 outputs x 2 channels x (3x3x1) multiply-adds = 288 MACs = 576 FLOPs, + 32 bias additions;
    # dense: 32 inputs x 3 outputs = 96 MACs = 192 FLOPs, + 3 bias additions; ReLU and reshape count nothing
    assert count_flops(model) == 576 + 32 + 192 + 3
    # conv 3x3x1x2 + 2, dense 32x3 + 3
    assert count_parameters(model) == {"trainable": 32 * 3 + 3, "total": 9 * 2 + 2 + 32 * 3 + 3}
    assert count_parameters(model.trainable_weights) == {"trainable": 99, "total": 99}
