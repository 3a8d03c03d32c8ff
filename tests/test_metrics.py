"""Tests for umsrep.evaluate.metrics: hand-computed values and scikit-learn references."""

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from umsrep.evaluate import metrics as M


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- MCC / confusion


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("k", [2, 4])
def test_mcc_matches_sklearn(seed, k):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, size=200)
    # correlated but imperfect predictions
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, k, size=200))
    expected = skm.matthews_corrcoef(y_true, y_pred)
    assert M.mcc(y_true, y_pred) == pytest.approx(expected, abs=1e-12)
    assert M.mcc(y_true, y_pred, n_classes=k + 2) == pytest.approx(expected, abs=1e-12)


def test_mcc_special_cases():
    y = np.array([0, 1, 1, 0, 1, 0])
    assert M.mcc(y, np.zeros_like(y)) == 0.0          # constant prediction -> undefined -> 0
    assert M.mcc(np.ones(5, int), np.ones(5, int)) == 0.0  # single true class
    assert M.mcc(y, y) == pytest.approx(1.0)
    assert M.mcc(y, 1 - y) == pytest.approx(-1.0)
    assert isinstance(M.mcc(y, y), float)


def test_mcc_hand_computed_multiclass():
    # cm = [[1,1,0],[0,2,0],[1,0,1]]: c=4, s=6, t=(2,2,2), p=(2,3,1)
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    num = 4 * 6 - (2 * 2 + 3 * 2 + 1 * 2)
    den = math.sqrt((36 - (4 + 9 + 1)) * (36 - (4 + 4 + 4)))
    assert M.mcc(y_true, y_pred) == pytest.approx(num / den)


def test_confusion_matrix_matches_sklearn():
    rng = np.random.default_rng(7)
    t = rng.integers(0, 5, 100)
    p = rng.integers(0, 5, 100)
    cm = M.confusion_matrix(t, p, 5)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(t, p, labels=range(5)))
    assert np.issubdtype(cm.dtype, np.integer)
    # rows true, columns predicted
    np.testing.assert_array_equal(M.confusion_matrix([0, 0, 1], [1, 1, 1], 2), [[0, 2], [0, 1]])


def test_mcc_and_confusion_validation():
    with pytest.raises(ValueError, match="same length"):
        M.mcc([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="label"):
        M.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="negative"):
        M.confusion_matrix([0, -1], [0, 1], 3)
    with pytest.raises(ValueError, match="integer"):
        M.mcc([0.5, 1.0], [0, 1])


# --------------------------------------------------------------------------- classification

CLS_Y = np.array([0, 0, 1, 1, 2, 2])
# argmax = [0, 1, 1, 1, 2, 0] -> cm [[1,1,0],[0,2,0],[1,0,1]]
CLS_P = np.array([
    [0.7, 0.2, 0.1],
    [0.3, 0.6, 0.1],
    [0.1, 0.8, 0.1],
    [0.2, 0.5, 0.3],
    [0.1, 0.2, 0.7],
    [0.5, 0.1, 0.4],
])


def test_classification_hand_example():
    r = M.classification_metrics(CLS_Y, CLS_P, ["a", "b", "c"])
    assert r["n"] == 6
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert r["accuracy"] == pytest.approx(4 / 6)
    # precision per class: 1/2, 2/3, 1/1
    assert r["precision"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    # recall per class: 1/2, 2/2, 1/2
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["sensitivity"] == pytest.approx(2 / 3)
    # specificity per class: TN/(TN+FP) = 3/4, 3/4, 4/4
    assert r["specificity"] == pytest.approx((0.75 + 0.75 + 1.0) / 3)
    # f1 per class: 2TP/(2TP+FP+FN) = 2/4, 4/5, 2/3
    assert r["f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    pc = r["per_class"]
    assert set(pc) == {"a", "b", "c"}
    assert pc["a"]["precision"] == pytest.approx(0.5)
    assert pc["b"]["recall"] == pytest.approx(1.0)
    assert pc["c"]["specificity"] == pytest.approx(1.0)
    assert pc["a"]["specificity"] == pytest.approx(0.75)
    assert pc["b"]["f1"] == pytest.approx(0.8)
    assert [pc[c]["support"] for c in "abc"] == [2, 2, 2]
    assert r["mcc"] == pytest.approx(skm.matthews_corrcoef(CLS_Y, CLS_P.argmax(1)))
    json.dumps(r)  # JSON-friendly


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_macro_scores_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 80)
    probs = _softmax(rng.normal(size=(80, 4)) + 1.5 * np.eye(4)[y])
    r = M.classification_metrics(y, probs, ["w", "x", "y", "z"])
    pred = probs.argmax(1)
    kw = dict(labels=range(4), average="macro", zero_division=0)
    assert r["precision"] == pytest.approx(skm.precision_score(y, pred, **kw))
    assert r["recall"] == pytest.approx(skm.recall_score(y, pred, **kw))
    assert r["f1"] == pytest.approx(skm.f1_score(y, pred, **kw))
    assert r["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert r["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    for j, name in enumerate(["w", "x", "y", "z"]):
        assert r["per_class"][name]["roc_auc"] == pytest.approx(
            skm.roc_auc_score(y == j, probs[:, j]))


def test_classification_zero_division():
    # class 2 is never predicted and never true: its precision/recall/f1 are 0
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0], [0.3, 0.7, 0.0]])
    r = M.classification_metrics(y, probs, ["a", "b", "c"])
    assert r["per_class"]["c"]["precision"] == 0.0
    assert r["per_class"]["c"]["recall"] == 0.0
    assert r["per_class"]["c"]["f1"] == 0.0
    assert r["per_class"]["c"]["roc_auc"] is None
    assert r["precision"] == pytest.approx(2 / 3)
    # macro AUC over the classes present in y_true (a and b), both perfectly ranked
    assert r["roc_auc"] == pytest.approx(1.0)


def test_binary_roc_auc_matches_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    p1 = np.clip(0.3 * y + 0.7 * rng.random(60), 0, 1)
    probs = np.stack([1 - p1, p1], axis=1)
    r = M.classification_metrics(y, probs, ["neg", "pos"])
    assert r["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1))
    assert r["per_class"]["pos"]["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1))


def test_roc_auc_uses_probabilities_not_labels():
    y = np.array([0, 0, 1, 1])
    p_a = np.array([0.1, 0.6, 0.9, 0.4])    # positives {0.9, 0.4} vs negatives {0.1, 0.6}: 3/4
    p_b = np.array([0.3, 0.55, 0.9, 0.2])   # positives {0.9, 0.2} vs negatives {0.3, 0.55}: 2/4
    probs_a = np.stack([1 - p_a, p_a], 1)
    probs_b = np.stack([1 - p_b, p_b], 1)
    np.testing.assert_array_equal(probs_a.argmax(1), probs_b.argmax(1))
    ra = M.classification_metrics(y, probs_a, ["n", "p"])
    rb = M.classification_metrics(y, probs_b, ["n", "p"])
    assert ra["accuracy"] == rb["accuracy"]
    assert ra["roc_auc"] == pytest.approx(0.75)
    assert rb["roc_auc"] == pytest.approx(0.5)


def test_roc_auc_multiclass_with_absent_class():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 3, 50)  # class 3 absent from y_true
    probs = _softmax(rng.normal(size=(50, 4)))
    r = M.classification_metrics(y, probs, ["a", "b", "c", "d"])
    expected = np.mean([skm.roc_auc_score(y == j, probs[:, j]) for j in range(3)])
    assert r["roc_auc"] == pytest.approx(expected)
    assert r["per_class"]["d"]["roc_auc"] is None


def test_roc_auc_none_for_single_class():
    y = np.zeros(5, dtype=int)
    probs = np.array([[0.8, 0.2], [0.4, 0.6], [0.9, 0.1], [0.7, 0.3], [0.6, 0.4]])
    r = M.classification_metrics(y, probs, ["a", "b"])
    assert r["roc_auc"] is None
    assert r["per_class"]["a"]["roc_auc"] is None
    assert r["per_class"]["b"]["roc_auc"] is None
    assert r["accuracy"] == pytest.approx(0.8)
    json.dumps(r)


def test_classification_validation():
    with pytest.raises(ValueError, match="columns"):
        M.classification_metrics(CLS_Y, CLS_P, ["a", "b"])
    with pytest.raises(ValueError, match="samples"):
        M.classification_metrics(CLS_Y[:5], CLS_P, ["a", "b", "c"])
    with pytest.raises(ValueError, match="2-D"):
        M.classification_metrics(CLS_Y, CLS_P[:, 0], ["a", "b", "c"])
    with pytest.raises(ValueError, match="label"):
        M.classification_metrics(CLS_Y + 1, CLS_P, ["a", "b", "c"])
    with pytest.raises(ValueError, match="at least 2"):
        M.classification_metrics([0, 0], [[1.0], [1.0]], ["a"])


# --------------------------------------------------------------------------- segmentation


def test_segmentation_subset_mask():
    t = np.zeros((1, 4, 4), dtype=int)
    t[0, :2, :2] = 1                      # |A| = 4
    p = np.zeros((1, 4, 4), dtype=int)
    p[0, 0, :2] = 1                       # |B| = 2, inside A
    r = M.segmentation_metrics(t, p, ["lesion"])
    assert r["dice"] == pytest.approx(2 * 2 / 6)
    assert r["iou"] == pytest.approx(0.5)
    assert r["per_class"]["lesion"]["dice"] == pytest.approx(2 / 3)
    assert r["per_class"]["lesion"]["iou"] == pytest.approx(0.5)
    assert r["per_class"]["lesion"]["dice_global"] == pytest.approx(2 / 3)
    assert r["pixel_accuracy"] == pytest.approx(14 / 16)
    assert r["n"] == 1
    json.dumps(r)


def test_segmentation_empty_conventions():
    z = np.zeros((1, 4, 4), dtype=int)
    r = M.segmentation_metrics(z, z, ["x"])
    assert r["dice"] == 1.0 and r["iou"] == 1.0
    assert r["per_class"]["x"]["dice_global"] == 1.0
    assert r["pixel_accuracy"] == 1.0

    nz = z.copy()
    nz[0, 1, 1] = 1
    for a, b in ((z, nz), (nz, z)):
        r = M.segmentation_metrics(a, b, ["x"])
        assert r["dice"] == 0.0 and r["iou"] == 0.0
        assert r["per_class"]["x"]["dice_global"] == 0.0
        assert r["pixel_accuracy"] == pytest.approx(15 / 16)


def test_segmentation_multiclass_multi_image():
    t = np.zeros((2, 4, 4), dtype=int)
    p = np.zeros((2, 4, 4), dtype=int)
    # image 0: class 1 A={(0,0),(0,1)} B={(0,0)}; class 2 A={(3,3)} B={(3,3),(3,2)}
    t[0, 0, 0] = t[0, 0, 1] = 1
    t[0, 3, 3] = 2
    p[0, 0, 0] = 1
    p[0, 3, 3] = p[0, 3, 2] = 2
    # image 1: class 1 identical 2x2 block, class 2 empty in both
    t[1, :2, :2] = 1
    p[1, :2, :2] = 1
    r = M.segmentation_metrics(t, p, ["one", "two"])
    pc = r["per_class"]
    # per image: one -> (2/3, 1), two -> (2/3, 1 [empty/empty])
    assert pc["one"]["dice"] == pytest.approx((2 / 3 + 1) / 2)
    assert pc["one"]["iou"] == pytest.approx((0.5 + 1) / 2)
    assert pc["two"]["dice"] == pytest.approx((2 / 3 + 1) / 2)
    assert pc["two"]["iou"] == pytest.approx(0.75)
    # pooled: one -> 2*5/(6+5) ; two -> 2*1/(1+2)
    assert pc["one"]["dice_global"] == pytest.approx(10 / 11)
    assert pc["two"]["dice_global"] == pytest.approx(2 / 3)
    assert r["dice"] == pytest.approx(5 / 6)
    assert r["iou"] == pytest.approx(0.75)
    assert r["pixel_accuracy"] == pytest.approx(30 / 32)
    assert r["n"] == 2


def test_segmentation_class_confusion_counts_for_both():
    # true class 1 predicted as class 2: both classes score 0, background is right elsewhere
    t = np.zeros((1, 4, 4), dtype=int)
    p = np.zeros((1, 4, 4), dtype=int)
    t[0, 0, 0] = 1
    p[0, 0, 0] = 2
    r = M.segmentation_metrics(t, p, ["a", "b"])
    assert r["per_class"]["a"]["dice"] == 0.0
    assert r["per_class"]["b"]["dice"] == 0.0
    assert r["pixel_accuracy"] == pytest.approx(15 / 16)


def test_dice_pooled_per_group_hand_example():
    """Two patients, two classes: a patient's pixels are summed over its images before the Dice (a small slice
    where a structure is missed costs its pixels, not a whole image's 0); absent in both -> 1.0."""
    t = np.zeros((3, 4, 4), int)
    p = np.zeros((3, 4, 4), int)
    t[0, :2, :] = p[0, :2, :] = 1               # patient a, image 0: class 1, 8 px, all found
    t[1, 0, 0] = 1                              # patient a, image 1: class 1, 1 px, missed (per-image Dice 0)
    t[1, 3, :] = 2                              # class 2: 4 true px, 2 predicted, both right
    p[1, 3, :2] = 2
    t[2, :, 0] = 2                              # patient b: class 2, 4 true, 8 predicted, 4 shared; no class 1
    p[2, :, :2] = 2
    d = M.dice_pooled_per_group(t, p, 2, ["a", "a", "b"])
    assert d.shape == (2, 2)
    assert d[0, 0] == pytest.approx(2 * 8 / (9 + 8))     # pooled over a's two images
    assert d[0, 1] == pytest.approx(2 * 2 / (4 + 2))
    assert d[1, 0] == 1.0                                # class 1 absent from b in truth and prediction
    assert d[1, 1] == pytest.approx(2 * 4 / (4 + 8))
    # one image per group: the per-image Dice
    per_image = M.segmentation_metrics(t, p, ["x", "y"])
    single = M.dice_pooled_per_group(t, p, 2, ["a", "b", "c"])
    assert single.mean() == pytest.approx(per_image["dice"])
    with pytest.raises(ValueError, match="groups has 2 entries for 3 images"):
        M.dice_pooled_per_group(t, p, 2, ["a", "b"])


def test_segmentation_validation():
    a = np.zeros((2, 4, 4), dtype=int)
    with pytest.raises(ValueError, match="same shape"):
        M.segmentation_metrics(a, np.zeros((2, 4, 5), dtype=int), ["x"])
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        M.segmentation_metrics(a[0], a[0], ["x"])
    bad = a.copy()
    bad[0, 0, 0] = 2
    with pytest.raises(ValueError, match="label"):
        M.segmentation_metrics(bad, a, ["x"])


# --------------------------------------------------------------------------- PSNR / SSIM


def test_psnr_formula():
    clean = np.zeros((3, 4, 4))
    test = np.zeros((3, 4, 4))
    test[0] = 0.1                      # MSE 0.01  -> 20 dB
    test[1, :2] = 0.2                  # MSE 0.02  -> 10 log10(1/0.02)
    # test[2] identical -> inf
    v = M.psnr(clean, test)
    assert v.shape == (3,)
    assert v[0] == pytest.approx(20.0)
    assert v[1] == pytest.approx(10 * math.log10(1 / 0.02))
    assert np.isinf(v[2])
    # data_range and channel axis
    c4 = np.zeros((1, 4, 4, 3))
    assert M.psnr(c4, c4 + 25.5, data_range=255.0)[0] == pytest.approx(20.0)


def test_ssim_identical_and_noisy():
    rng = np.random.default_rng(0)
    clean = rng.random((3, 32, 32, 1))
    noisy = np.clip(clean + 0.2 * rng.standard_normal(clean.shape), 0, 1)
    s_id = M.ssim(clean, clean)
    s_noisy = M.ssim(clean, noisy)
    assert s_id.shape == (3,)
    np.testing.assert_allclose(s_id, 1.0, atol=1e-5)
    assert np.all(s_noisy < 0.9)
    # (N, H, W) input gives the same as (N, H, W, 1)
    np.testing.assert_allclose(M.ssim(clean[..., 0], noisy[..., 0]), s_noisy, atol=1e-6)


def test_ssim_constant_images_hand_computed():
    # zero variance: SSIM reduces to the luminance term (2 mu_x mu_y + C1)/(mu_x^2 + mu_y^2 + C1)
    # (tf computes in float32; its round-off in the contrast term is ~2e-4 relative here)
    a = np.full((1, 16, 16), 0.25)
    b = np.full((1, 16, 16), 0.75)
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * 0.25 * 0.75 + c1) / (0.25 ** 2 + 0.75 ** 2 + c1)   # ~0.6
    assert M.ssim(a, b)[0] == pytest.approx(expected, rel=1e-3)


def test_ssim_small_images_reduce_filter():
    rng = np.random.default_rng(1)
    clean = rng.random((2, 8, 8))
    noisy = np.clip(clean + 0.2 * rng.standard_normal(clean.shape), 0, 1)
    np.testing.assert_allclose(M.ssim(clean, clean), 1.0, atol=1e-5)
    assert np.all(M.ssim(clean, noisy) < 1.0)
    assert np.all(M.ms_ssim(clean, noisy) < 1.0)


@pytest.mark.parametrize("side", [64, 256])
def test_ms_ssim_identical_and_noisy(side):
    rng = np.random.default_rng(side)
    clean = rng.random((2, side, side, 1))
    noisy = np.clip(clean + 0.2 * rng.standard_normal(clean.shape), 0, 1)
    v_id = M.ms_ssim(clean, clean)
    v_noisy = M.ms_ssim(clean, noisy)
    assert v_id.shape == (2,)
    np.testing.assert_allclose(v_id, 1.0, atol=1e-5)
    assert np.all(v_noisy < 0.99) and np.all(v_noisy > 0.0)


@pytest.mark.parametrize("side,scales", [(64, 3), (256, 5)])
def test_ms_ssim_constant_images_power_factors(side, scales):
    # constant images: every contrast-structure term is 1, so MS-SSIM = l ** w_last, where
    # w_last is the last used weight after renormalising the leading weights to the total
    # (64: 0.784 expected vs 0.858 without renormalisation; float32 round-off ~2e-4)
    a = np.full((1, side, side), 0.25)
    b = np.full((1, side, side), 0.75)
    c1 = 1e-4
    lum = (2 * 0.25 * 0.75 + c1) / (0.25 ** 2 + 0.75 ** 2 + c1)
    w = np.array(M.MS_SSIM_POWER_FACTORS)
    w_last = w[scales - 1] * w.sum() / w[:scales].sum()
    assert M.ms_ssim(a, b)[0] == pytest.approx(lum ** w_last, rel=1e-3)


def test_image_metric_validation():
    a = np.zeros((2, 16, 16))
    with pytest.raises(ValueError, match="same shape"):
        M.psnr(a, np.zeros((2, 16, 15)))
    with pytest.raises(ValueError, match="same shape"):
        M.ssim(a, np.zeros((3, 16, 16)))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        M.ms_ssim(a[0], a[0])
    with pytest.raises(ValueError, match="data_range"):
        M.psnr(a, a, data_range=0)
    with pytest.raises(ValueError, match="same shape"):
        M.denoising_metrics(a, a, np.zeros((2, 8, 8)))


def test_denoising_metrics():
    rng = np.random.default_rng(5)
    clean = rng.random((2, 32, 32))
    noisy = np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1)
    r = M.denoising_metrics(clean, noisy, clean)
    assert r["n"] == 2
    assert set(r) == {"noisy", "denoised", "n"}
    assert r["noisy"]["psnr"] == pytest.approx(float(np.mean(M.psnr(clean, noisy))))
    assert r["noisy"]["ssim"] == pytest.approx(float(np.mean(M.ssim(clean, noisy))))
    assert r["noisy"]["ms_ssim"] == pytest.approx(float(np.mean(M.ms_ssim(clean, noisy))))
    # identical images: PSNR capped at 100 dB, SSIMs 1
    assert r["denoised"]["psnr"] == pytest.approx(M.PSNR_CAP_DB)
    assert r["denoised"]["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert r["denoised"]["ms_ssim"] == pytest.approx(1.0, abs=1e-5)
    assert r["noisy"]["psnr"] < r["denoised"]["psnr"]
    json.dumps(r)


# --------------------------------------------------------------------------- aggregation
