"""The files evaluation hands over: what one model predicted for one split, ``<folder>/<split>.npz``.

In a run directory the folder is ``predictions/<approach>/`` (the strategy, every compared strategy, ``baseline``).
They are written once by :func:`umsrep.evaluate.evaluate.evaluate_model`, the only step that runs a model; the
metrics (:mod:`umsrep.evaluate.scores`), the derived decisions, ``report.md`` and ``report.html`` read them, so
``umsrep report`` needs neither the model nor TensorFlow. Compressed; label maps uint8, figure images uint8 or
float16. Keys are ``<task>.<field>``; the rows of a task are every image of the task's data set in the split
(labelled or not), in split order:

- ``<task>.names`` / ``.files`` (str): file stem and path; ``<task>.groups`` (str, the ``group_by`` value, "" for
  none; only when the data set is grouped); ``<task>.source`` (the data set's key); ``<task>.has_truth`` (bool);
  ``<task>.origins`` (str, pooled data only: the data set of each image, ``data.pool``)
- classification: ``<task>.probs`` float32 (n, K) and ``<task>.truth`` int16 class ids (-1: no label)
- segmentation: ``<task>.labels`` uint8 label maps after the task's post-processing, ``<task>.labels_raw`` without
  it (only when the task has one), ``<task>.truth`` uint8 (0 where no mask). Maps of different sizes (``umsrep
  evaluate --data`` scores at each image's own size) are stored ragged as ``<key>.flat`` + ``<key>.shapes``.
- Grad-CAM (classification, test split): ``<task>.cam_mass`` float64, the fraction of the true-class map's mass
  inside the mask of ``<task>.cam_mask_task`` (NaN: not computed), ``<task>.cam_layer``; ``<task>.cam_error`` when
  the model has no Grad-CAM layout
- ``denoise.levels`` (L,) and ``denoise.psnr`` / ``.ssim`` / ``.ms_ssim`` float64 (L, 2, n): per noise level,
  noisy input vs denoised output, per clean image of the representation data set
- figure examples (test split): ``<task>.ex_images`` uint8, ``.ex_truth`` / ``.ex_labels`` (segmentation),
  ``.ex_cam`` float16, ``.ex_class``, ``.ex_probs`` (classification); ``denoise.ex_clean`` / ``.ex_noisy`` /
  ``.ex_denoised`` float16
- ``rep_source`` (key of the representation data set), ``predict_time_s``
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from umsrep.errors import RunDirError
from umsrep.io import write_bytes

DIR = "predictions"


def approach_dir(run_path, approach) -> Path:
    return Path(run_path) / DIR / approach


def to_uint8(images) -> np.ndarray:
    return np.round(np.clip(np.asarray(images, np.float32), 0, 1) * 255).astype(np.uint8)


def write_split(path, arrays: dict) -> Path:
    """Write one split's arrays (lists of 2-D maps of different sizes are stored ragged) atomically."""
    flat = {}
    for k, v in arrays.items():
        if isinstance(v, list):
            flat[f"{k}.flat"] = np.concatenate([np.asarray(m).ravel() for m in v]) if v else np.zeros(0, np.uint8)
            flat[f"{k}.shapes"] = np.asarray([np.shape(m) for m in v], np.int64).reshape(-1, 2)
        else:
            flat[k] = np.asarray(v)
    buf = io.BytesIO()
    np.savez_compressed(buf, **flat)
    return write_bytes(Path(path), buf.getvalue())


def read_split(path) -> dict:
    """The arrays of :func:`write_split` (ragged maps as lists, 0-d strings as ``str``)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            raw = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise RunDirError(f"{path}: missing (evaluate the run to write its predictions)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise RunDirError(f"{path}: not a predictions file ({type(e).__name__}: {' '.join(str(e).split())})") from None
    out = {}
    for k, v in raw.items():
        if k.endswith(".shapes"):
            continue
        if k.endswith(".flat"):
            key = k[: -len(".flat")]
            shapes = raw[f"{key}.shapes"]
            ends = np.cumsum([int(h) * int(w) for h, w in shapes])
            parts = np.split(v, ends[:-1]) if len(shapes) else []
            out[key] = [p.reshape(int(h), int(w)) for p, (h, w) in zip(parts, shapes)]
        else:
            out[k] = str(v) if v.ndim == 0 and v.dtype.kind == "U" else v
    return out


def read_folder(folder, splits=None) -> dict:
    """``{split: arrays}`` of every ``<split>.npz`` in ``folder`` (or of ``splits``)."""
    folder = Path(folder)
    names = splits if splits is not None else sorted(p.stem for p in folder.glob("*.npz"))
    return {s: read_split(folder / f"{s}.npz") for s in names}


def rows(maps, keep):
    """``maps[keep]`` for a stacked array or a list of maps."""
    if isinstance(maps, list):
        return [m for m, k in zip(maps, keep) if k]
    return maps[np.asarray(keep, bool)]
