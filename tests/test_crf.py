"""Dense CRF refinement and ultrasound mask post-processing (umsrep.postprocess)."""

from __future__ import annotations

import numpy as np
import pytest

from umsrep.postprocess.crf import dense_crf, refine_batch
from umsrep.postprocess.ultrasound import (
    clean_label_map,
    clean_mask,
    morphological_opening,
    remove_small_objects,
)


def _edge_example(size: int, seed: int = 0, block: int = 1):
    """Left half dark (0.2), right half bright (0.8); foreground = right half, probabilities 0.7/0.3 + noise.

    ``block > 1`` makes the noise constant over block x block tiles, so that averaging over tiles does not remove it.
    """
    rng = np.random.default_rng(seed)
    truth = np.zeros((size, size), bool)
    truth[:, size // 2:] = True
    image = np.where(truth, 0.8, 0.2).astype(np.float32)
    noise = np.kron(rng.normal(0.0, 0.3, (size // block, size // block)), np.ones((block, block)))
    probs = np.where(truth, 0.7, 0.3) + noise
    return truth, image, np.clip(probs, 0.01, 0.99).astype(np.float32)


def _dice(truth, pred) -> float:
    return 2.0 * float((truth & pred).sum()) / float(truth.sum() + pred.sum())


def test_crf_improves_dice_on_noisy_edge():
    truth, image, fg = _edge_example(64)
    before = _dice(truth, fg >= 0.5)
    assert 0.65 < before < 0.85  # the example is as noisy as intended
    refined = dense_crf(fg, image)
    after = _dice(truth, refined >= 0.5)
    assert after >= before + 0.1
    assert after > 0.95


def test_crf_downsampled_run_still_improves_dice():
    # noise in 4 x 4 tiles = the cells of the 32 x 32 grid: the resizing alone cannot average it away
    truth, image, fg = _edge_example(128, seed=1, block=4)
    before = _dice(truth, fg >= 0.5)
    assert 0.65 < before < 0.85
    refined = dense_crf(fg, image, max_side=32)
    assert refined.shape == fg.shape
    after = _dice(truth, refined >= 0.5)
    assert after >= before + 0.1


def test_crf_uses_the_image_edge():
    # Uninformative probabilities in a band off-centre around the edge (column 24): smoothness alone would put the
    # boundary mid-band (column 19); only the appearance kernel can place it on the intensity edge.
    truth, image, _ = _edge_example(48)
    fg = np.where(truth, 0.9, 0.1).astype(np.float32)
    fg[:, 8:30] = 0.5
    assert _dice(truth, dense_crf(fg, image, iterations=10) >= 0.5) > 0.98
    assert _dice(truth, dense_crf(fg, np.zeros_like(image), iterations=10) >= 0.5) < 0.95


@pytest.mark.parametrize("shape", [(24, 20, 3), (24, 20), (24, 20, 1)])
def test_crf_output_is_a_distribution_of_the_input_shape(shape):
    rng = np.random.default_rng(2)
    if len(shape) == 3 and shape[-1] > 1:
        logits = rng.normal(size=shape)
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    else:
        probs = rng.random(shape)
    image = rng.random((24, 20, 3))
    out = dense_crf(probs, image)
    assert out.shape == shape
    assert np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0
    if len(shape) == 3 and shape[-1] > 1:
        np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    # iterations=0 is softmax(-U), i.e. the input itself (also when the input is larger than max_side)
    for max_side in (64, 8):
        np.testing.assert_allclose(dense_crf(probs, image, iterations=0, max_side=max_side), probs, atol=1e-5)


def test_crf_downsampled_output_is_a_distribution():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(40, 30, 4))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    out = dense_crf(probs, rng.random((40, 30)), max_side=16)
    assert out.shape == probs.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)


def test_refine_batch_matches_per_image_calls():
    truth, image, fg = _edge_example(32)
    batch = np.stack([fg, fg[:, ::-1]])[..., None]
    images = np.stack([image, image[:, ::-1]])
    out = refine_batch(batch, images, iterations=3)
    assert out.shape == batch.shape
    np.testing.assert_allclose(out[1], dense_crf(batch[1], images[1], iterations=3), atol=1e-6)


def test_crf_rejects_mismatched_image():
    with pytest.raises(ValueError):
        dense_crf(np.full((8, 8), 0.5), np.zeros((8, 9)))


def test_remove_small_objects():
    mask = np.zeros((40, 40), np.uint8)
    mask[2, 2:5] = 1  # 3 pixels
    mask[20:25, 20:30] = 1  # 50 pixels
    mask[10, 10] = mask[11, 11] = 1  # two diagonal pixels: one 8-connected component of 2
    out = remove_small_objects(mask, min_size=10)
    assert out.dtype == mask.dtype
    assert out[2, 2:5].sum() == 0 and out[10, 10] == 0
    assert out[20:25, 20:30].sum() == 50 and out.sum() == 50
    assert remove_small_objects(mask, min_size=2)[10:12, 10:12].sum() == 2  # 8-connectivity


def test_morphological_opening():
    mask = np.zeros((40, 40), bool)
    mask[5, 2:38] = True  # 1-pixel-wide line
    mask[15:35, 10:30] = True  # 20 x 20 square
    out = morphological_opening(mask, radius=1)
    assert out.dtype == bool
    assert not out[5].any()
    assert out[15:35, 10:30].sum() >= 0.95 * 400 and out[16:34, 11:29].all()
    assert not out[~mask].any()
    np.testing.assert_array_equal(morphological_opening(mask, radius=0), mask)


def test_clean_mask_and_label_map_keep_class_ids():
    labels = np.zeros((48, 48), np.int32)
    labels[4:20, 4:20] = 1
    labels[26:44, 26:44] = 2
    labels[30, 5:40] = 2  # thin spur of class 2: removed by the opening (where not inside the square)
    labels[40:42, 4:6] = 1  # tiny class-1 blob: removed by the size filter
    out = clean_label_map(labels, min_size=20, radius=1)
    assert out.dtype == labels.dtype
    assert set(np.unique(out)) == {0, 1, 2}
    assert (out[6:18, 6:18] == 1).all() and (out[28:42, 28:42] == 2).all()
    assert (out[40:42, 4:6] == 0).all() and (out[30, 5:24] == 0).all()
    assert np.all((out == 0) | (out == labels))  # pixels are only removed, never relabelled
    np.testing.assert_array_equal(clean_mask(labels == 1, min_size=20, radius=1), out == 1)
