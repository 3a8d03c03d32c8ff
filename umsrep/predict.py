"""``umsrep predict RUN_DIR INPUTS --out DIR``: masks and class probabilities for new images.

Inputs are files or folders (PNG/JPEG/BMP/TIFF/DICOM), preprocessed exactly as in training (the run's image
size and channels; normalization is inside the model). All inputs are read before anything is written, so an
unreadable file stops the command with one line naming it and nothing half-done is left behind.

Writes ``<out>/masks/<image>_<task>.png`` per segmentation task (binary: 0/255; multi-class: class id per
pixel, 0 = background), ``<out>/denoised/<image>.png`` when the model has a denoising output, and
``<out>/predictions.csv`` + ``predictions.json`` with predicted classes and probabilities.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from umsrep.data.readers import IMAGE_EXTENSIONS, read_image, resize_image
from umsrep.errors import DataError
from umsrep.io import write_bytes, write_json, write_text


def collect_inputs(inputs):
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise DataError(f"{p}: folder holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    return files


def _png(arr) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", arr)
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def predict(run_dir, inputs, out, batch_size=16, log=print) -> dict:
    import keras
    import tensorflow as tf

    import umsrep.models.layers  # noqa: F401
    from umsrep.data import pipeline
    from umsrep.evaluate.evaluate import task_predictions
    from umsrep.rundir import RunDir

    run = RunDir.open(run_dir)
    run.require_model()
    meta = run.read_json(RunDir.RUN)
    pre = meta["preprocessing"]
    size, channels = tuple(pre["image_size"]), int(pre["channels"])
    files = collect_inputs(inputs)
    x = np.stack([resize_image(read_image(f, channels), size) for f in files]).astype(np.float32)
    model = keras.models.load_model(run.model_path)
    fn = tf.function(lambda b: model(b, training=False), reduce_retracing=True)
    log(f"predicting {len(files)} images with {run.path.name}")
    outs = pipeline.predict(fn, x, batch_size)
    out = Path(out)
    stems = _unique_stems(files)
    rows = []
    for i, f in enumerate(files):
        row = {"file": str(f)}
        for name, t in meta["tasks"].items():
            probs = outs[name][i]
            if t["type"] == "classification":
                row[name] = t["classes"][int(np.argmax(probs))]
                row.update({f"{name}_p_{c}": float(p) for c, p in zip(t["classes"], probs)})
            else:
                pred = task_predictions(probs[None], "segmentation", t["threshold"])[0]
                img = (pred * 255).astype(np.uint8) if len(t["classes"]) == 1 else pred.astype(np.uint8)
                path = out / "masks" / f"{stems[i]}_{name}.png"
                write_bytes(path, _png(img))
                row[f"{name}_mask"] = str(path)
                row[f"{name}_fraction"] = float((pred > 0).mean())
        if "denoise" in outs:
            path = out / "denoised" / f"{stems[i]}.png"
            d = np.clip(outs["denoise"][i], 0, 1)
            d = d[..., ::-1] if d.shape[-1] == 3 else d  # RGB -> OpenCV's BGR
            write_bytes(path, _png(np.round(d * 255).astype(np.uint8)))
            row["denoised"] = str(path)
        rows.append(row)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "predictions.csv", buf.getvalue())
    write_json(out / "predictions.json", {"run": str(run.path), "predictions": rows})
    log(f"wrote {out / 'predictions.csv'} ({len(rows)} images)")
    return {"predictions": rows}


def _unique_stems(files):
    seen, stems = {}, []
    for f in files:
        s = Path(f).stem
        k = seen.get(s, 0)
        seen[s] = k + 1
        stems.append(s if k == 0 else f"{s}_{k}")
    return stems
