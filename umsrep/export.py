"""``umsrep export RUN_DIR --format savedmodel|onnx|tflite --out PATH``: the inference model, checked.

- ``savedmodel``: Keras 3 ``model.export(format="tf_saved_model")``; serving signature ``serve(image)`` ->
  ``{head: output}``, any batch size.
- ``onnx``: Keras 3 ``model.export(format="onnx")`` (needs ``pip install umsrep[export]``: tf2onnx, onnx,
  onnxruntime); outputs named after the heads, any batch size.
- ``tflite``: the model traced at batch 1, its variables frozen to constants, converted with the TFLite
  converter (builtin ops only); outputs in the heads' alphabetical order (listed in the verification file).

Every export is verified before the command succeeds: the exported model and the Keras model run on the same
sample images (``--samples`` files/folders, preprocessed like the run's training images, else 4 seeded random
images) and the largest absolute difference per output must stay within the tolerance (1e-4; TFLite 1e-3).
The result goes to ``<PATH>.verification.json``. An existing PATH is never overwritten unless ``--overwrite`` is
given, and then only once the new export is made and verified: the export is written beside PATH under a
temporary name and moved into place at the end, so a failed export leaves the old one as it was.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from umsrep.errors import RunDirError, UmsrepError
from umsrep.io import load_keras, path_text, write_bytes, write_json

FORMATS = ("savedmodel", "onnx", "tflite")
TOLERANCE = {"savedmodel": 1e-4, "onnx": 1e-4, "tflite": 1e-3}


class ExportError(UmsrepError):
    """The export could not be made or does not reproduce the Keras model."""


def _samples(meta, samples, n=4, seed=0):
    pre = meta["preprocessing"]
    size, channels = tuple(pre["image_size"]), int(pre["channels"])
    if samples:
        from umsrep.data.readers import read_image, resize_image
        from umsrep.predict import collect_inputs

        files = collect_inputs(samples)
        return np.stack([resize_image(read_image(f, channels), size) for f in files]).astype(np.float32)
    return np.random.default_rng(seed).random((n, *size, channels)).astype(np.float32)


def _run_savedmodel(path, x):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # keep a reference: its variables live as long as it does
    out = loaded.serve(tf.constant(x))
    return {k: np.asarray(v) for k, v in out.items()}


def _run_onnx(path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x})))


def _tflite_bytes(model, shape):
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda image: model(image, training=False),
                     input_signature=[tf.TensorSpec((1, *shape), tf.float32, name="image")])
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()


def _tflite_interpreter(path):
    """LiteRT's interpreter (``ai-edge-litert``, the ``export`` extra); TensorFlow's ``tf.lite.Interpreter``, which
    TensorFlow marks for deletion, only when LiteRT is not installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=str(path))


def _run_tflite(path, x, names):
    interp = _tflite_interpreter(path)
    interp.allocate_tensors()
    inp, outs = interp.get_input_details()[0], interp.get_output_details()
    got = {n: [] for n in names}
    for i in range(len(x)):
        interp.set_tensor(inp["index"], x[i:i + 1])
        interp.invoke()
        for n, d in zip(names, outs):
            got[n].append(interp.get_tensor(d["index"]))
    return {n: np.concatenate(v) for n, v in got.items()}


def export(run_dir, fmt, out, samples=None, overwrite=False, log=print) -> dict:
    from umsrep.rundir import RunDir

    if fmt not in FORMATS:
        raise ExportError(f"--format: {fmt!r} is not one of {list(FORMATS)}")
    out = Path(out)
    verification = Path(f"{out}.verification.json")
    if out.exists() and not overwrite:
        raise RunDirError(f"{path_text(out)}: exists; choose a new --out or give --overwrite (an export is never "
                          f"overwritten silently)")
    if out.is_dir() and fmt != "savedmodel" or out.is_file() and fmt == "savedmodel":
        raise RunDirError(f"{path_text(out)}: is a {'folder' if out.is_dir() else 'file'}; a {fmt} export cannot "
                          f"replace it")
    run = RunDir.open(run_dir)
    run.require_model()
    meta = run.read_json(RunDir.RUN)
    x = _samples(meta, samples)
    model = load_keras(run.model_path)
    ref = {k: np.asarray(v) for k, v in model(x, training=False).items()}
    names = sorted(ref)  # tf.nest flattens dict outputs in key order
    if fmt == "onnx":
        try:
            import onnxruntime  # noqa: F401  (checked before anything is written)
            import tf2onnx  # noqa: F401
        except ImportError:
            raise ExportError("--format onnx needs tf2onnx, onnx and onnxruntime: pip install 'umsrep[export]'") \
                from None
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        report = _export_into(model, fmt, work / out.name, x, ref, names, samples, run)
        report["path"] = str(out)
        if report["ok"] or not out.exists():  # a failed verification keeps its export for inspection
            _replace(work / out.name, out, work)
            write_json(verification, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    diff = report["max_abs_difference"]
    if not report["ok"]:
        worst = max(diff, key=diff.get)
        raise ExportError(f"{path_text(out)}: output {worst!r} differs from the Keras model by {diff[worst]:.2e} "
                          f"(tolerance {TOLERANCE[fmt]:.0e}); see {path_text(verification)}")
    log(f"exported {fmt} to {out} ({report['size_bytes'] / 1e6:.2f} MB); max |difference| vs Keras on "
        f"{len(x)} images: " + ", ".join(f"{k} {v:.1e}" for k, v in diff.items()))
    return report


def _export_into(model, fmt, path, x, ref, names, samples, run) -> dict:
    t0 = time.perf_counter()
    if fmt == "savedmodel":
        model.export(str(path), format="tf_saved_model", verbose=False)
        got = _run_savedmodel(path, x)
    elif fmt == "onnx":
        model.export(str(path), format="onnx", verbose=False)
        got = _run_onnx(path, x)
    else:
        write_bytes(path, _tflite_bytes(model, x.shape[1:]))
        got = _run_tflite(path, x, names)
    seconds = time.perf_counter() - t0
    if set(got) != set(ref):
        raise ExportError(f"{path_text(path)}: exported outputs {sorted(got)} are not the model's {names}")
    diff = {k: float(np.max(np.abs(got[k].astype(np.float64) - ref[k]))) for k in names}
    return {"run": str(run.path), "format": fmt, "path": str(path), "outputs": names,
            "samples": int(len(x)), "sample_source": "files" if samples else "random (seed 0)",
            "max_abs_difference": diff, "tolerance": TOLERANCE[fmt], "export_time_s": round(seconds, 2),
            "size_bytes": _size(path), "ok": all(d <= TOLERANCE[fmt] for d in diff.values())}


def _replace(new: Path, out: Path, work: Path) -> None:
    """Move ``new`` to ``out``; an existing ``out`` is moved into ``work`` (deleted with it) only just before."""
    if out.exists():
        out.rename(work / ".previous")
    new.rename(out)


def _size(path):
    p = Path(path)
    return p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
