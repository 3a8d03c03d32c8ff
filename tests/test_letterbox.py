"""Images that are not square: stretch or letterbox to the model's size, and every output back on the original grid."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from umsrep.data.readers import fit_image, fit_mask, image_to_original, placement, to_original


def _rect_mask(h, w, box):
    m = np.zeros((h, w), np.uint8)
    y0, x0, y1, x1 = box
    m[y0:y1, x0:x1] = 1
    return m


@pytest.mark.parametrize("mode", ["stretch", "letterbox"])
@pytest.mark.parametrize("shape", [(60, 100), (100, 60), (64, 64)])
def test_mask_round_trip_to_the_original_grid(mode, shape):
    h, w = shape
    m = _rect_mask(h, w, (h // 4, w // 5, h // 2 + 10, w // 2 + 20))
    small = fit_mask(m, (64, 64), mode)
    assert small.shape == (64, 64)
    back = to_original(small, (h, w), mode)
    assert back.shape == (h, w)
    inter, union = np.logical_and(back, m).sum(), np.logical_or(back, m).sum()
    assert inter / union > 0.85


def test_letterbox_keeps_the_aspect_ratio_and_pads_with_zeros():
    img = np.ones((60, 120), np.float32)
    out = fit_image(img, (32, 32), "letterbox")
    top, left, ch, cw = placement((60, 120), (32, 32), "letterbox")
    assert (top, left, ch, cw) == (8, 0, 16, 32)
    assert out[:top].max() == 0 and out[top + ch:].max() == 0 and out[top:top + ch].min() > 0.99
    # a circle stays a circle (stretch would make it an ellipse)
    disc = np.zeros((60, 120), np.float32)
    cv2.circle(disc, (60, 30), 20, 1.0, -1)
    fitted = fit_image(disc, (64, 64), "letterbox")[..., 0] > 0.5
    ys, xs = np.nonzero(fitted)
    assert abs((ys.max() - ys.min()) - (xs.max() - xs.min())) <= 1
    assert image_to_original(fit_image(disc, (64, 64), "letterbox"), (60, 120), "letterbox").shape == (60, 120, 1)
    with pytest.raises(ValueError, match="resize mode"):
        placement((60, 120), (32, 32), "crop")


def test_predict_letterboxed_run_writes_masks_and_overlays_at_each_input_size(tiny_run, tmp_path):
    from umsrep.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    meta = json.loads((run / "run.json").read_text())
    meta["preprocessing"]["resize"] = "letterbox"
    (run / "run.json").write_text(json.dumps(meta))
    src = cv2.imread(str(next((run / "data" / "images").iterdir())), cv2.IMREAD_GRAYSCALE)
    inputs = tmp_path / "in"
    inputs.mkdir()
    cv2.imwrite(str(inputs / "wide.png"), cv2.resize(src, (80, 30)))
    cv2.imwrite(str(inputs / "tall.png"), cv2.resize(src, (24, 50)))
    assert main(["predict", str(run), str(inputs), "--out", str(tmp_path / "p")]) == 0
    for name, shape in (("wide", (30, 80)), ("tall", (50, 24))):
        assert cv2.imread(str(tmp_path / "p" / "masks" / f"{name}_lesion.png"), cv2.IMREAD_UNCHANGED).shape == shape
        assert cv2.imread(str(tmp_path / "p" / "overlays" / f"{name}.png")).shape[:2] == shape
        assert cv2.imread(str(tmp_path / "p" / "denoised" / f"{name}.png"), cv2.IMREAD_UNCHANGED).shape[:2] == shape


def test_recipe_resize_is_validated():
    from umsrep.recipe import parse_recipe

    raw = {"name": "t", "modality": "us", "data": {"root": "x", "resize": "crop"},
           "tasks": {"seg": {"type": "segmentation", "classes": ["a"]}}}
    with pytest.raises(Exception, match=r"data\.resize"):
        parse_recipe(raw)
