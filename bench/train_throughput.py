"""Training throughput of umsrep's engine vs a plain Keras `fit` and vs the same network in PyTorch (eager, CPU),
float32 and each framework's fastest setting, and the fraction of the machine's GEMM peak achieved.

    python bench/train_throughput.py [--size 256] [--batch 16] [--steps 10] [--repeats 3]
                                     [--only dae seg unet mmanet] [--precisions fp32 bf16] [--no-torch]

Models (random weights and data; speed does not depend on them):

- ``dae``: the denoising autoencoder as `umsrep` builds it: the encoder + the ``denoise`` head's default U-Net
  decoder (``representation.decoder: unet``: skips from every encoder level and the raw image at full
  resolution, two conv + BN + ReLU per step, one sigmoid channel; ~1.17M parameters), MSE loss;
- ``seg``: the paper's symmetric one-class ``segmentation`` head (skip-less) trained on a frozen shared encoder
  (the `independent` stage, as `umsrep fit` runs it: encoder not trainable, its BatchNorm in inference mode);
- ``unet``: the default segmentation head (``head.kind: unet``, one lesion class) with the encoder fine-tuned
  along with it (trainable, as the ``joint`` strategy of recipes/busi.yaml trains it), loss dice_ce: the same
  layers as ``dae`` (one-channel images), another loss and targets;
- ``mmanet``: MMA-Net (seg + cls, trained jointly) at the recipe widths.

Cases per model, all built fresh, warmed up once, then timed interleaved in one loop (a, b, c, ..., a, b, c,
...) and the median of the repeats reported:

- ``umsrep``: umsrep's engine (`SingleTask` / `Joint`, its `tf.function` step through `strategy.run`);
- ``keras_fit``: `model.fit` with the same optimizer (Adam, lr 1e-4), loss and tf.data stream;
- ``torch_fp32_nchw`` / ``torch_fp32_channels_last`` / ``torch_bf16_channels_last``: the identical network in
  PyTorch eager (bench/torch_models.py; before timing, its parameter counts are checked equal to the Keras
  model's, and its inference outputs with the Keras weights copied in and Keras' padding equal to the Keras
  model's within 1e-4, else the run stops), same loss, Adam lr 1e-4, batch and random data; bf16 =
  `torch.autocast("cpu", torch.bfloat16)`, loss in float32. Not for MMA-Net (no twin).
  PyTorch runs in a process of its own (bench/torch_worker.py, started once, driven over a pipe; it gets the
  same images through a temporary .npz file): TensorFlow and PyTorch are never loaded into one process (triton,
  which PyPI's default Linux wheel of PyTorch brings, crashed next to TensorFlow). The interleaving is the same:
  each PyTorch run is one request to that process, timed there, while this one waits (and the other way round).
  If that process dies, its cases are reported as failed and the TensorFlow cases go on;
- with ``bf16`` in --precisions: ``umsrep_bf16`` and ``keras_fit_bf16``, the models built under
  `keras.mixed_precision.set_global_policy("mixed_bfloat16")` (reset to float32 afterwards).

Achieved GFLOP/s = images/s x 3 x forward FLOPs (forward + backward ~ 3x forward; overstated for the frozen
encoder, which has no backward), as a fraction of bench/results/peak.json's float32 GEMM peak and, for every
case, of its bfloat16 GEMM peak too. Comparisons: float32 vs float32 (umsrep / Keras fit, umsrep / PyTorch
NCHW and channels-last), bf16 vs bf16, and each framework's best case vs the other's. Writes
bench/results/train_throughput.json (the top-level per-model keys keep their float32 meaning; `cases` and
`ratios` hold the rest), with the peak RSS of the TensorFlow process and of the PyTorch process (`peak_rss_mb`;
per model, the peak so far, as a process's peak only grows). Where the time goes in one step: bench/profile_step.py.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, machine, save, self_peak_rss_mb

MODELS = ("dae", "seg", "unet", "mmanet")
NAMES = {"dae": "denoising_autoencoder", "seg": "segmentation_head_frozen_encoder", "unet": "unet_head_joint",
         "mmanet": "mmanet_joint"}
POLICY = {"fp32": "float32", "bf16": "mixed_bfloat16"}
TORCH_CASES = {"torch_fp32_nchw": (False, False), "torch_fp32_channels_last": (False, True),
               "torch_bf16_channels_last": (True, True)}   # name -> (bf16 autocast, channels_last)


class WorkerDied(RuntimeError):
    """The PyTorch process (bench/torch_worker.py) ended or stopped answering."""


class TorchWorker:
    """The PyTorch cases' own process (bench/torch_worker.py), one JSON request and reply per line; its other
    output (PyTorch's messages, a crash's) goes to this process's stderr."""

    def __init__(self, threads=None):
        cmd = [sys.executable, str(Path(__file__).with_name("torch_worker.py"))]
        cmd += ["--threads", str(threads)] if threads else []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._read()

    def ask(self, **msg) -> dict:
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass                              # it has ended: _read says how
        return self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            rc = self.proc.wait()
            how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
            raise WorkerDied(f"the PyTorch process ended ({how})")
        return json.loads(line)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.ask(cmd="quit")
            except WorkerDied:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _start_torch(threads):
    try:
        w = TorchWorker(threads)
    except WorkerDied as e:
        print(f"PyTorch could not be started ({e}): the PyTorch cases are skipped")
        return None
    if "error" in w.info:
        w.close()
        print(f"PyTorch not importable ({w.info['error']}): the PyTorch cases are skipped "
              f"(pip install torch, or .[bench])")
        return None
    return w


def keras_count(model) -> dict:
    import numpy as np

    return {"total": int(model.count_params()),
            "trainable": int(sum(np.prod(v.shape) for v in model.trainable_weights))}


def _reference(keras_model, path, decoder_keys):
    """The Keras model's weights, two images and its outputs, for the PyTorch twin's check in its own process:
    ``mean``, ``std``, ``encoder.{i}.*``, the decoder's conv + BN blocks (``decoder_keys(head name, layer name)``:
    their key, or None), ``logits.*``, ``activation``, ``x``, ``out``."""
    import numpy as np

    enc = keras_model.get_layer("encoder")
    head = next(layer for layer in keras_model.layers if layer.name.startswith("head_"))
    norm = enc.get_layer("normalize")
    ref = {"mean": np.float32(norm.mean), "std": np.float32(norm.std)}

    def conv_bn(model, prefix, key):
        ref[f"{key}.kernel"] = model.get_layer(f"{prefix}_conv").get_weights()[0]
        for k, v in zip(("gamma", "beta", "mean", "var"), model.get_layer(f"{prefix}_bn").get_weights()):
            ref[f"{key}.{k}"] = v

    for i in range(1, len(enc.outputs) + 1):
        conv_bn(enc, f"enc{i}", f"encoder.{i}")
    name = head.name.removeprefix("head_")
    for layer in head.layers:
        key = decoder_keys(name, layer.name)
        if key:
            conv_bn(head, layer.name.removesuffix("_conv"), key)
    ref["logits.kernel"], ref["logits.bias"] = head.get_layer(f"{name}_logits").get_weights()
    ref["activation"] = np.str_(head.get_layer(f"{name}_out").get_config()["activation"])
    ref["x"] = np.random.default_rng(1).random((2, *keras_model.input_shape[1:])).astype(np.float32)
    ref["out"] = np.asarray(keras_model(ref["x"], training=False))
    np.savez(path, **ref)
    return path


def unet_reference(keras_model, path):
    """Encoder + U-Net decoder (the DAE, the ``unet`` case): layout of torch_models.check_unet_against_reference,
    ``decoder.{k}.{j}`` from the layers ``<name>_dec<k><a|b|...>_conv`` (step k from 1, conv j = a, b, ...)."""
    import re

    def keys(name, layer):
        m = re.fullmatch(rf"{re.escape(name)}_dec(\d+)([a-d])_conv", layer)
        return f"decoder.{m[1]}.{'abcd'.index(m[2]) + 1}" if m else None

    return _reference(keras_model, path, keys)


def symmetric_reference(keras_model, path):
    """Encoder + symmetric decoder (the ``seg`` case): layout of torch_models.check_symmetric_against_reference,
    ``decoder.{i}`` from the layers ``<name>_dec<i>_conv``."""
    import re

    def keys(name, layer):
        m = re.fullmatch(rf"{re.escape(name)}_dec(\d+)_conv", layer)
        return f"decoder.{m[1]}" if m else None

    return _reference(keras_model, path, keys)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=MODELS, default=list(MODELS), help="models to time")
    ap.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"],
                    help="Keras dtype policies to time (PyTorch: fp32 runs NCHW and channels-last, bf16 autocast)")
    ap.add_argument("--no-torch", action="store_true", help="TensorFlow cases only")
    ap.add_argument("--torch-threads", type=int, help="torch.set_num_threads (default: PyTorch's own choice)")
    ap.add_argument("--out", help="write the JSON here instead of bench/results/train_throughput.json (smoke runs)")
    a = ap.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from umsrep.models import ENCODERS, HEADS
    from umsrep.models.flops import count_flops
    from umsrep.models.losses import LOSSES, build_loss
    from umsrep.models.pyramid import attach, attach_one, pyramid_spec
    from umsrep.recipe import LossConfig, OptimizerConfig
    from umsrep.train.engine import SingleTask, TaskStream, make_optimizer
    from umsrep.train.strategies.joint import Joint
    from umsrep.train.weighting import make_weighting, weighting_settings

    tw = None if a.no_torch else _start_torch(a.torch_threads)
    if tw is not None:
        print(f"PyTorch {tw.info['torch']}, {tw.info['threads']} threads (own process, pid {tw.proc.pid}); "
              f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    torch_info = None if tw is None else {"version": tw.info["torch"], "threads": tw.info["threads"],
                                          "process": "own process (bench/torch_worker.py), interleaved per run"}
    tmp = tempfile.TemporaryDirectory(prefix="umsrep_bench_")
    size, bs, steps = a.size, a.batch, a.steps
    n_pool = bs * max(1, -(-64 // bs))          # >= 64 images, a whole number of batches
    rng = np.random.default_rng(0)
    x = rng.random((n_pool, size, size, 1)).astype(np.float32)
    mask = (rng.random((n_pool, size, size)) > 0.7).astype(np.int32)
    label = rng.integers(0, 3, n_pool).astype(np.int32)
    pool = Path(tmp.name) / "pool.npz"       # the PyTorch process trains on the same images
    np.savez(pool, x=x, mask=mask)
    peak = peak_bf16 = None
    if (RESULTS / "peak.json").is_file():
        pk = json.loads((RESULTS / "peak.json").read_text())
        peak, peak_bf16 = pk.get("peak_fp32_gflops"), pk.get("tensorflow_bf16_gflops")

    def ds(y):
        return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(bs).prefetch(tf.data.AUTOTUNE)

    def opt():
        return make_optimizer(OptimizerConfig(name="adam", learning_rate=1e-4))

    def fit_runner(model, loss, kds):
        model.compile(optimizer=opt(), loss=loss)
        return lambda: model.fit(kds, steps_per_epoch=steps, epochs=1, verbose=0)

    # ---------------------------------------------------------------------------------------- model builders
    def build_dae():
        enc = ENCODERS.get("denoising_autoencoder").build((size, size, 1))
        head = HEADS.get("denoise").build(pyramid_spec(enc), (size, size), name="denoise", channels=1)
        return enc, head, attach_one(enc, head)

    seg_loss = build_loss("segmentation", LossConfig())

    def keras_seg_loss(y_true, y_pred):  # Keras fit gets (N, H, W, 1) masks so it does not squeeze y_pred
        return seg_loss(tf.squeeze(tf.cast(y_true, tf.int32), -1), y_pred)

    def build_seg():
        enc = build_dae()[0]
        enc.trainable = False             # as `umsrep fit` does for the independent strategy
        head = HEADS.get("segmentation").build(pyramid_spec(enc), (size, size), name="lesion", n_classes=1)
        return enc, head, attach_one(enc, head)

    def dae_umsrep():
        _, _, dae = build_dae()
        st = SingleTask("dae", TaskStream("dae", dae, LOSSES.get("mse")(), ds(x), steps), dae.trainable_variables,
                        opt())
        return st.train_epoch, dae

    def dae_fit():
        dae = build_dae()[2]
        return fit_runner(dae, "mse", ds(x)), dae

    def seg_umsrep():
        _, head, seg = build_seg()
        st = SingleTask("lesion", TaskStream("lesion", seg, seg_loss, ds(mask), steps), head.trainable_variables,
                        opt())
        return st.train_epoch, seg

    def seg_fit():
        seg = build_seg()[2]
        return fit_runner(seg, keras_seg_loss, ds(mask[..., None])), seg

    def build_unet():
        enc = build_dae()[0]
        enc.trainable = True              # fine-tuned with the head, as `umsrep fit` does for the joint strategy
        head = HEADS.get("unet").build(pyramid_spec(enc), (size, size), name="lesion", n_classes=1,
                                       image_channels=1)
        return enc, head, attach_one(enc, head)

    def unet_umsrep():
        model = build_unet()[2]
        st = SingleTask("lesion", TaskStream("lesion", model, seg_loss, ds(mask), steps), model.trainable_variables,
                        opt())
        return st.train_epoch, model

    def unet_fit():
        model = build_unet()[2]
        return fit_runner(model, keras_seg_loss, ds(mask[..., None])), model

    def build_mmanet():
        from umsrep.recipe import parse_recipe
        from umsrep.train.fit import build_encoder, build_head

        r = parse_recipe({"name": "b", "modality": "us", "data": {"synthetic": {"n": 24}, "image_size": size},
                          "representation": {"kind": "mmanet", "filters": [8, 16, 32, 64, 128]},
                          "strategy": {"kind": "joint"},
                          "tasks": {"lesion": {"type": "segmentation", "classes": ["lesion"]},
                                    "diagnosis": {"type": "classification", "classes": ["a", "b", "c"],
                                                  "head": {"units": 64}}}})
        menc = build_encoder(r, 0.0, 1.0)
        heads = {n: build_head(n, t, pyramid_spec(menc), (size, size), "mmanet") for n, t in r.tasks.items()}
        return menc, heads, attach(menc, heads)

    def mma_umsrep():
        menc, heads, full = build_mmanet()
        streams = [TaskStream("lesion", attach_one(menc, heads["lesion"]), seg_loss, ds(mask), steps,
                              head_variables=heads["lesion"].trainable_variables),
                   TaskStream("diagnosis", attach_one(menc, heads["diagnosis"]),
                              build_loss("classification", LossConfig()), ds(label), steps,
                              head_variables=heads["diagnosis"].trainable_variables)]
        w = make_weighting(weighting_settings(), ["lesion", "diagnosis"])
        # both tasks are labelled on the same images: `umsrep fit` gives Joint one shared batch per step
        shared = tf.data.Dataset.from_tensor_slices((x, {"lesion": mask, "diagnosis": label}))
        shared = shared.repeat().batch(bs).prefetch(tf.data.AUTOTUNE)
        return Joint("joint", streams, menc.trainable_variables, opt(), w, full,
                     shared_batches=shared).train_epoch, full

    def mma_fit():
        full = build_mmanet()[2]
        multi_y = tf.data.Dataset.from_tensor_slices((x, {"lesion": mask[..., None], "diagnosis": label}))
        kds = multi_y.repeat().batch(bs).prefetch(tf.data.AUTOTUNE)
        return fit_runner(full, {"lesion": keras_seg_loss, "diagnosis": "sparse_categorical_crossentropy"},
                          kds), full

    # ---------------------------------------------------------------------------------------- PyTorch cases
    def torch_builders(kind):
        """The PyTorch cases of ``kind``, built in the PyTorch process; each entry's run() is one request to it
        and returns the seconds timed there."""
        if tw is None or kind == "mmanet":
            return []
        wanted = {name: flags for name, flags in TORCH_CASES.items()
                  if ("bf16" if flags[0] else "fp32") in a.precisions}
        try:
            got = tw.ask(cmd="setup", kind=kind, data=str(pool), steps=steps, batch=bs, cases=wanted)
        except WorkerDied as e:
            torch_lost(e)
            return []
        for case, err in got["errors"].items():
            print(f"{NAMES[kind]}/{case}: failed, skipped ({err[:200]})")

        def builder(case):
            def run():
                if tw is None:
                    raise WorkerDied("the PyTorch process ended earlier")
                try:
                    r = tw.ask(cmd="run", case=case)
                except WorkerDied as e:
                    torch_lost(e)
                    raise
                if "error" in r:
                    raise RuntimeError(r["error"])
                torch_rss[0] = max(torch_rss[0], r.get("peak_rss_mb", 0.0))
                return r["seconds"]
            return run, None

        return [(c, "pytorch", "bf16" if wanted[c][0] else "fp32", lambda c=c: builder(c)) for c in got["cases"]]

    torch_rss = [0.0]   # the PyTorch process's peak RSS, MiB (reported with each run)

    def peak_rss():     # both processes' peaks so far (a process's peak only grows)
        return {"tensorflow_process": self_peak_rss_mb(), "pytorch_process": torch_rss[0] or None}

    def torch_lost(e):
        nonlocal tw
        print(f"PyTorch cases stopped: {e}; the TensorFlow cases go on")
        tw = None

    def check_twin(kind, keras_model):
        """Parameter counts and outputs (Keras weights copied in) of the PyTorch twin equal the Keras model's."""
        if tw is None or kind == "mmanet":
            return None
        refs = {"dae": unet_reference, "seg": symmetric_reference, "unet": unet_reference}
        ref = refs[kind](keras_model, Path(tmp.name) / f"{kind}_reference.npz") if kind in refs else None
        try:
            r = tw.ask(cmd="twin", kind=kind, reference=str(ref) if ref else None)
        except WorkerDied as e:
            torch_lost(e)
            return None
        if "error" in r:
            raise SystemExit(f"{NAMES[kind]}: checking the PyTorch twin failed: {r['error']}")
        t, k = r["parameters"], keras_count(keras_model)
        print(f"{NAMES[kind]}: parameters Keras {k['total']:,} (trainable {k['trainable']:,}), "
              f"PyTorch {t['total']:,} (trainable {t['trainable']:,})")
        bad = [key for key in ("total", "trainable") if t[key] != k[key]]
        if bad:
            raise SystemExit(f"{NAMES[kind]}: PyTorch and Keras parameter counts differ ({', '.join(bad)}): "
                             f"{t} vs {k}")
        if r["max_output_difference"] is None:
            return t
        err = r["max_output_difference"]
        if err > 1e-4:
            raise SystemExit(f"{NAMES[kind]}: PyTorch twin differs from the Keras model: max |diff| {err:.2e} > 1e-4")
        print(f"{NAMES[kind]}: PyTorch twin (Keras padding, Keras weights) matches the Keras outputs, "
              f"max |diff| {err:.1e}")
        return {**t, "max_output_difference": err}

    tf_builders = {"dae": (dae_umsrep, dae_fit), "seg": (seg_umsrep, seg_fit), "unet": (unet_umsrep, unet_fit),
                   "mmanet": (mma_umsrep, mma_fit)}

    # ---------------------------------------------------------------------------------------- timing
    def set_policy(p):
        keras.mixed_precision.set_global_policy(POLICY.get(p, "float32"))

    results = {}
    for kind in a.only:
        name = NAMES[kind]
        eng, fit = tf_builders[kind]
        builders = []
        for p in a.precisions:
            sfx = "" if p == "fp32" else f"_{p}"
            builders += [(f"umsrep{sfx}", "umsrep", p, eng), (f"keras_fit{sfx}", "keras_fit", p, fit)]
        builders += torch_builders(kind)
        # interleave frameworks: umsrep, keras_fit, torch..., then the bf16 Keras cases
        builders.sort(key=lambda b: (b[2] != "fp32" and b[1] != "pytorch", b[1] != "umsrep", b[1] != "keras_fit"))
        runs, flops_model, errors = {}, None, {}
        for case, framework, prec, build in builders:
            set_policy(prec if framework != "pytorch" else "fp32")
            try:
                run, model = build()
                run()                         # warm-up: tracing, oneDNN primitive creation, first allocations
            except Exception as e:            # one failing case must not lose the others
                errors[case] = f"{type(e).__name__}: {e}"
                print(f"{name}/{case}: failed, skipped ({errors[case][:200]})")
                continue
            finally:
                set_policy("fp32")
            runs[case] = (run, framework, prec)
            if case == "umsrep":
                flops_model = model
        if not runs:
            continue
        if flops_model is None:
            set_policy("fp32")
            flops_model = (tf_builders[kind][0]())[1]
        twin = check_twin(kind, flops_model)
        ips = {c: [] for c in runs}
        for _ in range(a.repeats):
            for case, (run, framework, prec) in list(runs.items()):
                set_policy(prec if framework != "pytorch" else "fp32")
                t0 = time.perf_counter()
                try:
                    seconds = run()
                except Exception as e:
                    if framework != "pytorch":
                        raise
                    errors[case] = f"{type(e).__name__}: {e}"   # the PyTorch process failed: drop its case
                    print(f"{name}/{case}: failed, dropped ({errors[case][:200]})")
                    del runs[case], ips[case]
                    continue
                if framework != "pytorch":
                    seconds = time.perf_counter() - t0
                ips[case].append(steps * bs / seconds)    # PyTorch: timed in its process, no pipe round trip
            set_policy("fp32")
        flops = count_flops(flops_model)
        cases = {}
        for case, (_, framework, prec) in runs.items():
            med = statistics.median(ips[case])
            c = {"framework": framework, "precision": prec, "images_per_s": med, "runs": ips[case],
                 "achieved_gflops": med * 3 * flops / 1e9}
            if peak:
                c["fraction_of_fp32_peak"] = c["achieved_gflops"] / peak
            if peak_bf16:
                c["fraction_of_bf16_peak"] = c["achieved_gflops"] / peak_bf16
            cases[case] = c
        r = {"parameters": int(flops_model.count_params()), "forward_gflops_per_image": flops / 1e9}
        if "umsrep" in cases and "keras_fit" in cases:   # the float32 keys, meaning as before
            e, k = cases["umsrep"]["images_per_s"], cases["keras_fit"]["images_per_s"]
            r.update({"umsrep_images_per_s": e, "keras_fit_images_per_s": k, "umsrep_over_keras_fit": e / k,
                      "umsrep_achieved_gflops": cases["umsrep"]["achieved_gflops"]})
            if peak:
                r["umsrep_fraction_of_peak"] = cases["umsrep"]["fraction_of_fp32_peak"]
        r["ratios"] = ratios(cases)
        r["cases"] = cases
        if twin:
            r["pytorch_twin"] = twin
        if errors:
            r["errors"] = errors
        r["peak_rss_mb_so_far"] = peak_rss()     # the models run in the order of --only
        results[name] = r
        print_model(name, r, peak, peak_bf16)
    res = {"size": size, "batch": bs, "steps": steps, "repeats": a.repeats,
           "peak_gflops": peak, "peak_bf16_gflops": peak_bf16,
           "precisions": a.precisions, "pytorch": torch_info, "models": results,
           "peak_rss_mb": peak_rss()}
    if tw is not None:
        tw.close()
    tmp.cleanup()
    if a.out:
        Path(a.out).write_text(json.dumps({"machine": machine(), **res}, indent=2) + "\n")
        print(f"wrote {a.out}")
    else:
        save("train_throughput", res)


def ratios(cases: dict) -> dict:
    """umsrep vs Keras fit and vs PyTorch, same precision and best vs best (only where both were timed)."""
    ips = {c: v["images_per_s"] for c, v in cases.items()}
    out = {}

    def put(key, num, den):
        if num in ips and den in ips:
            out[key] = ips[num] / ips[den]

    put("umsrep_over_keras_fit_fp32", "umsrep", "keras_fit")
    put("umsrep_over_keras_fit_bf16", "umsrep_bf16", "keras_fit_bf16")
    put("umsrep_fp32_over_torch_fp32_nchw", "umsrep", "torch_fp32_nchw")
    put("umsrep_fp32_over_torch_fp32_channels_last", "umsrep", "torch_fp32_channels_last")
    put("umsrep_bf16_over_torch_bf16_channels_last", "umsrep_bf16", "torch_bf16_channels_last")
    put("umsrep_bf16_over_umsrep_fp32", "umsrep_bf16", "umsrep")
    put("torch_bf16_over_torch_fp32_nchw", "torch_bf16_channels_last", "torch_fp32_nchw")
    ums = {c: v for c, v in ips.items() if c.startswith("umsrep")}
    keras_ = {c: v for c, v in ips.items() if c.startswith(("umsrep", "keras_fit"))}
    tor = {c: v for c, v in ips.items() if c.startswith("torch")}
    if ums and tor:
        bu, bt = max(ums, key=ums.get), max(tor, key=tor.get)
        out.update({"umsrep_best_case": bu, "torch_best_case": bt, "umsrep_best_over_torch_best": ums[bu] / tor[bt]})
    if keras_ and tor:
        bk = max(keras_, key=keras_.get)
        out.update({"tensorflow_best_case": bk, "tensorflow_best_over_torch_best": keras_[bk] / max(tor.values())})
    return out


def print_model(name, r, peak, peak_bf16):
    print(f"\n{name}: {r['parameters']:,} parameters, {r['forward_gflops_per_image']:.3f} forward GFLOPs / image")
    head = f"{'case':28s} {'images/s':>9s} {'GFLOP/s':>8s} {'% fp32 peak':>11s} {'% bf16 peak':>11s}  runs"
    print(head)
    print("-" * len(head))
    for case, c in r["cases"].items():
        f32 = f"{100 * c['fraction_of_fp32_peak']:.0f}" if "fraction_of_fp32_peak" in c else "-"
        b16 = f"{100 * c['fraction_of_bf16_peak']:.0f}" if "fraction_of_bf16_peak" in c else "-"
        runs = " ".join(f"{v:.1f}" for v in c["runs"])
        print(f"{case:28s} {c['images_per_s']:9.2f} {c['achieved_gflops']:8.1f} {f32:>11s} {b16:>11s}  {runs}")
    for k, v in r["ratios"].items():
        print(f"  {k:44s} {v:.3f}" if isinstance(v, float) else f"  {k:44s} {v}")


if __name__ == "__main__":
    main()
