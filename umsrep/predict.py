"""``umsrep predict RUN_DIR INPUTS --out DIR``: masks and class probabilities for new images.

Inputs are files or folders (PNG/JPEG/BMP/TIFF/DICOM), preprocessed exactly as in training (the run's image
size and channels; normalization is inside the model). All inputs are read before anything is written, so an
unreadable file stops the command with one line naming it and nothing half-done is left behind.

Writes ``<out>/masks/<image>_<task>.png`` per segmentation task at the input image's own size (the predicted
label map resized with nearest-neighbour; binary: 0/255; multi-class: class id per pixel, 0 = background),
``<out>/overlays/<image>.png`` (the masks in colour over the image, at the model's size),
``<out>/denoised/<image>.png`` when the model has a denoising output, and ``<out>/predictions.csv`` +
``predictions.json`` with predicted classes, probabilities, the recipe's derived decisions (true/false) and its
measurements (``<name>_px`` / ``<name>_mm`` / ``<name>_deg``, ``<name>_note`` when not measurable; in pixels of
each input's original grid, drawn on the overlays).

``umsrep explain`` (:func:`explain`) writes Grad-CAM heat maps and overlays for one classification head.
"""

from __future__ import annotations

import csv
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from umsrep.data.readers import IMAGE_EXTENSIONS, fit_image, image_to_original, read_image, to_original
from umsrep.errors import DataError, RunDirError
from umsrep.io import load_keras, path_text, write_bytes, write_json, write_text


def collect_inputs(inputs):
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise DataError(f"{path_text(p)}: folder holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{path_text(p)}: no such file or folder")
    return files


def _png(arr) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", arr)
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def check_out_folder(out, overwrite=False) -> Path:
    """``--out`` of predict / explain: a new or empty folder, or any folder with ``overwrite`` — never a file, and
    never one whose files would be replaced silently."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{path_text(out)}: --out exists and is not a folder")
    if out.is_dir() and not overwrite and any(out.iterdir()):
        raise RunDirError(f"{path_text(out)}: --out already holds files; choose a new or empty folder, or give "
                          f"--overwrite to replace files of the same names")
    return out


#: threads reading and writing images in predict / explain
WORKERS = max(2, min(8, os.cpu_count() or 2))


def load_run_inputs(run_dir, inputs, log=print, out=None, overwrite=False, keep_originals=False):
    """(run, run.json, model, files, images, original sizes, original images or None) — every input read and fitted
    to the model's size (``data.resize``: stretch or letterbox), the model loaded and ``out`` checked before anything
    is written; the sizes (height, width) map masks and measurements back to each image's own grid."""
    from umsrep.console import progress
    from umsrep.rundir import RunDir

    run = RunDir.open(run_dir)
    run.require_model()
    if out is not None:
        check_out_folder(out, overwrite)
    meta = run.read_json(RunDir.RUN)
    pre = meta.get("preprocessing") or {}
    if "image_size" not in pre or "channels" not in pre:
        raise RunDirError(f"{path_text(run / RunDir.RUN)}: lacks the preprocessing of a trained run")
    size, channels = tuple(pre["image_size"]), int(pre["channels"])
    files = collect_inputs(inputs)
    mode = pre.get("resize", "stretch")

    def read(f):  # OpenCV decodes and resizes without the GIL: a thread per core
        img = read_image(f, channels)
        return fit_image(img, size, mode), img.shape[:2], (img if keep_originals else None)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(read, f) for f in files]
        got = [fut.result() for fut in progress(futures, "reading", log)]  # in input order: first bad file first
    x = np.stack([g[0] for g in got]).astype(np.float32)
    originals = [g[2] for g in got] if keep_originals else None
    return run, meta, load_keras(run.model_path), files, x, [g[1] for g in got], originals


def predict(run_dir, inputs, out, batch_size=16, overwrite=False, log=print, tta="none", overlays=True,
            denoised=True, overrides=None) -> dict:
    """Masks, overlays, denoised images, predictions.csv/.json for ``inputs``; reading and writing run on a thread
    pool (``overlays`` / ``denoised``: False skips those images; without denoised images the denoising head is
    not run at all); ``overrides``: ``--set`` of derive / patient fields (:func:`umsrep.recipe.load_run_recipe`)."""
    import tensorflow as tf

    from umsrep.console import progress
    from umsrep.data import pipeline
    from umsrep.derive.rules import decide
    from umsrep.evaluate.scores import head_values, predict_labels
    from umsrep.recipe import load_run_recipe
    from umsrep.rundir import RunDir

    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    recipe = load_run_recipe(RunDir.open(run_dir) / RunDir.RECIPE, overrides)  # a bad --set: refused first
    run, meta, model, files, x, sizes, originals = load_run_inputs(run_dir, inputs, log, out, overwrite,
                                                                   keep_originals=overlays)
    mode = (meta.get("preprocessing") or {}).get("resize", "stretch")
    if not denoised and isinstance(model.output, dict) and "denoise" in model.output and len(model.output) > 1:
        from umsrep.models.pyramid import select_heads

        model = select_heads(model, [n for n in model.output if n != "denoise"])  # its decoder is not run
    call = pipeline.with_tta(model, tta)
    fn = tf.function(lambda b: call(b, training=False), reduce_retracing=True)
    log(f"predicting {len(files)} images with {run.path.name}" + (f" (test-time augmentation: {tta})"
                                                                  if tta != "none" else ""))
    chunks = [pipeline.predict(fn, x[i:i + batch_size], batch_size)
              for i in progress(range(0, len(x), batch_size), "predicting", log)]
    outs = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    labels = {n: predict_labels(outs[n], t, x) for n, t in recipe.tasks.items() if t.type == "segmentation"}
    decisions = decide(recipe.derive_rules(),  # segmentation post-processing (CRF) runs once, above
                       {n: head_values(outs[n], t, x, labels.get(n)) for n, t in recipe.tasks.items()})
    out = Path(out)
    stems = _unique_stems(files)
    # every output on each input's own pixel grid (letterbox padding cropped, then nearest-neighbour)
    full = {n: [to_original(m.astype(np.uint8), sizes[i], mode) for i, m in enumerate(v)] for n, v in labels.items()}
    measured = _measure(recipe, full, files, stems, sizes)

    def write(i):  # one image's files and its row (PNG encoding and file writes release the GIL)
        f = files[i]
        row = {"file": path_text(f)}
        masks = []
        for name, t in meta["tasks"].items():
            probs = outs[name][i]
            if t["type"] == "classification":
                row[name] = t["classes"][int(np.argmax(probs))]
                row.update({f"{name}_p_{c}": float(p) for c, p in zip(t["classes"], probs)})
            else:
                pred = full[name][i]
                masks.append(pred)
                img = pred * 255 if len(t["classes"]) == 1 else pred
                path = out / "masks" / f"{stems[i]}_{name}.png"
                write_bytes(path, _png(img))
                row[f"{name}_mask"] = path_text(path)
                row[f"{name}_fraction"] = float((pred > 0).mean())
        row.update({d: bool(v[i]) for d, v in decisions.items()})
        if measured is not None:
            row.update(measured.columns(i))
        if masks and overlays:
            path = out / "overlays" / f"{stems[i]}.png"
            overlay = mask_overlay(originals[i], masks)
            if measured is not None:
                from umsrep.derive.measure import draw_measurements

                overlay = draw_measurements(overlay, measured.drawings[i], sizes[i])
            write_bytes(path, _png(overlay[..., ::-1]))
            row["overlay"] = path_text(path)
        if "denoise" in outs and denoised:
            path = out / "denoised" / f"{stems[i]}.png"
            d = np.clip(image_to_original(outs["denoise"][i], sizes[i], mode), 0, 1)
            d = d[..., ::-1] if d.shape[-1] == 3 else d  # RGB -> OpenCV's BGR
            write_bytes(path, _png(np.round(d * 255).astype(np.uint8)))
            row["denoised"] = path_text(path)
        return row

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        rows = list(pool.map(write, range(len(files))))
    _write_table(out, "predictions", rows, {"run": str(run.path), "decisions": {
        k: v.rule for k, v in recipe.derive.items() if v.rule is not None}, "measurements": {
        k: v.measure for k, v in recipe.derive.items() if v.measure is not None},
        **({"set": list(overrides)} if overrides else {})})
    log(f"wrote {out / 'predictions.csv'} ({len(rows)} images)")
    return {"predictions": rows}


def _measure(recipe, labels, files, stems, sizes):
    """The recipe's measurements on the predicted masks, in each input's original pixels (and mm when a spacing
    is known: DICOM PixelSpacing, else ``pixel_spacing.mm``); None without measurements."""
    specs = recipe.derive_measurements()
    if not specs:
        return None
    from umsrep.derive.measure import image_spacings, measure_images

    return measure_images(specs, labels, sizes, image_spacings(files, stems, recipe.pixel_spacing))


# one colour per segmentation class (RGB), cycling
COLOURS = [(255, 64, 64), (64, 200, 64), (64, 128, 255), (255, 200, 0), (200, 64, 255), (0, 220, 220)]


def mask_overlay(image, masks, alpha=0.4) -> np.ndarray:
    """Image in [0, 1] (H, W, 1|3) with every label map's classes blended in colour and outlined -> RGB uint8."""
    import cv2

    img = np.clip(np.asarray(image, np.float32), 0, 1)
    rgb = np.round(255 * (np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img)).astype(np.float32)
    k = 0
    for m in masks:
        for c in range(1, int(m.max()) + 1):
            sel = m == c
            colour = np.asarray(COLOURS[k % len(COLOURS)], np.float32)
            rgb[sel] = (1 - alpha) * rgb[sel] + alpha * colour
            contours, _ = cv2.findContours(sel.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            out = np.ascontiguousarray(rgb.astype(np.uint8))
            cv2.drawContours(out, contours, -1, tuple(int(v) for v in colour), 1)
            rgb = out.astype(np.float32)
            k += 1
    return rgb.astype(np.uint8)


def explain(run_dir, inputs, out, task, layer=None, class_name=None, method="gradcam", batch_size=16,
            overwrite=False, log=print) -> dict:
    """``umsrep explain``: Grad-CAM / Grad-CAM++ heat maps of a classification head for new images."""
    from umsrep.console import progress
    from umsrep.errors import RecipeError
    from umsrep.explain.gradcam import GradCam, colorize, overlay

    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    run, meta, model, files, x, _, _ = load_run_inputs(run_dir, inputs, log, out, overwrite)
    cam = GradCam(model, task, layer=layer, method=method)
    classes = meta["tasks"][task]["classes"]
    if class_name is not None and class_name not in classes:
        raise RecipeError(f"--class: {class_name!r} is not a class of {task!r} {classes}")
    target = None if class_name is None else classes.index(class_name)
    log(f"{method} of {task!r} at {cam.layer} for {len(files)} images")
    out, stems, rows = Path(out), _unique_stems(files), []
    for i in progress(range(0, len(x), batch_size), "explaining", log):
        r = cam(x[i:i + batch_size], target)
        for j, m in enumerate(r.maps):
            k = i + j
            heat, over = out / "heatmaps" / f"{stems[k]}_{task}.png", out / "overlays" / f"{stems[k]}_{task}.png"
            write_bytes(heat, _png(colorize(m)[..., ::-1]))
            write_bytes(over, _png(overlay(x[k], m)[..., ::-1]))
            rows.append({"file": path_text(files[k]), "task": task, "explained_class": classes[r.classes[j]],
                         "probability": float(r.probs[j, r.classes[j]]),
                         "predicted_class": classes[int(np.argmax(r.probs[j]))], "heatmap": path_text(heat),
                         "overlay": path_text(over)})
    _write_table(out, "explanations", rows, {"run": str(run.path), "task": task, "layer": cam.layer,
                                             "method": method})
    log(f"wrote {out / 'explanations.csv'} ({len(rows)} images)")
    return {"explanations": rows, "layer": cam.layer}


def _write_table(out, stem, rows, header):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / f"{stem}.csv", buf.getvalue())
    write_json(out / f"{stem}.json", {**header, stem: rows})


def _unique_stems(files):
    """Output names per input: the file's stem (undecodable bytes written as \\xNN text), numbered when repeated."""
    seen, stems = {}, []
    for f in files:
        s = path_text(Path(f).stem)
        k = seen.get(s, 0)
        seen[s] = k + 1
        stems.append(s if k == 0 else f"{s}_{k}")
    return stems
