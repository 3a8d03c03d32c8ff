"""Where one training step of the denoising autoencoder spends its time: TensorFlow (umsrep's engine) float32 and
mixed_bfloat16, and optionally PyTorch (eager, CPU) float32 and bf16 autocast + channels-last.

    python bench/profile_step.py [--size 256] [--batch 16] [--steps 5] [--precisions fp32 bf16] [--torch]
                                 [--top 25] [--logdir DIR] [--out FILE]

TensorFlow: `tf.profiler.experimental` traces ``--steps`` engine steps (after 2 warm-up steps) into
``--logdir`` (default: a temporary folder; open it in TensorBoard's profile plugin for the timeline), and the
trace's XSpace is summarised offline by TensorFlow's own profiler tools (``framework_op_stats``). Each op is
joined by its node name with the traced step graph for its data type, so the tables show what ran in bfloat16
and what stayed in float32. Printed per precision: self time per step by category (convolutions, BatchNorm's
ops, upsampling, casts, layout/transposes, element-wise, optimizer, ...), by op type and data type, and the top
ops by self time. PyTorch: `torch.profiler` over the same number of steps, self CPU time by aten op and the same
categories, in a process of its own (this script again, with ``--torch-process``): TensorFlow and PyTorch are
never loaded into one process (triton, which PyPI's default Linux wheel of PyTorch brings, crashed next to
TensorFlow); its tables print there and its numbers come back in a temporary JSON file. Writes
bench/results/profile_step.json (or ``--out``). Times are host (CPU) self times; with 2 cores, ops running in
parallel add up to more than the wall time.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, save

# category of an op, by keywords of its type (TF) or aten name (PyTorch), first match wins; optimizer by name
CATEGORIES = [
    ("convolution", ("conv", "mkldnn_convolution", "_convolution")),
    ("batchnorm", ("batchnorm", "batch_norm", "fusedbatchnorm")),
    ("upsampling", ("resize", "upsample")),
    ("cast", ("cast", "_to_copy", "aten::to", "copy_")),
    ("layout/transpose", ("transpose", "_mkltotf", "reorder", "contiguous", "permute")),
    ("reduction", ("mean", "sum", "squareddifference", "var", "std", "max")),
    ("elementwise", ("relu", "sigmoid", "mul", "add", "sub", "div", "sqrt", "rsqrt", "square", "neg", "pow",
                     "log", "clip", "maximum", "minimum", "threshold", "mse", "exp")),
    ("variables", ("readvariableop", "assign", "resourcegather", "varhandle")),
    ("shape/other", ("reshape", "expanddims", "squeeze", "shape", "pack", "identity", "stridedslice", "const",
                     "fill", "zeros", "ones", "broadcast", "view", "slice", "empty", "stack", "unsqueeze")),
]


# TF node names carry the Keras layer that made them (gradients included): umsrep's layer name suffixes
LAYER_CATEGORIES = [("batchnorm", re.compile(r"_bn(_\d+)?/")), ("upsampling", re.compile(r"_up\d+(_\d+)?/")),
                    ("convolution", re.compile(r"_(conv|logits)(_\d+)?/"))]


def category(op_type: str, name: str = "") -> str:
    """Optimizer (by name), casts and layout changes (by type), then the Keras layer the op belongs to (by
    name: BatchNorm's, upsampling's and convolution's own ops and their gradients), then the op type."""
    t = op_type.lower()
    n = name.lower()
    if n.startswith(("adam", "optimizer")) or "/adam/" in n or t.startswith(("optimizer.", "aten::_foreach")):
        return "optimizer"
    for cat, keys in CATEGORIES:
        if cat in ("cast", "layout/transpose") and any(k in t for k in keys):
            return cat
    for cat, pattern in LAYER_CATEGORIES:
        if pattern.search(n):
            return cat
    for cat, keys in CATEGORIES:
        if any(k in t for k in keys):
            return cat
    return "other"


def graph_dtypes(concrete_fn) -> dict:
    """Node name -> data type ("bfloat16", "float32", "float32->bfloat16" for casts) of a traced step."""
    import tensorflow as tf

    out = {}

    def dt(attr):
        try:
            return tf.dtypes.as_dtype(attr.type).name
        except (TypeError, ValueError):
            return "?"

    graphs = [concrete_fn.graph.as_graph_def()]
    for gd in graphs:
        nodes = list(gd.node) + [n for f in gd.library.function for n in f.node_def]
        for n in nodes:
            if n.op == "Cast":
                out[n.name] = f"{dt(n.attr['SrcT'])}->{dt(n.attr['DstT'])}"
            elif "T" in n.attr:
                out[n.name] = dt(n.attr["T"])
            elif "dtype" in n.attr:
                out[n.name] = dt(n.attr["dtype"])
    return out


def _lookup(dtypes, name):
    if name in dtypes:
        return dtypes[name]
    base = name.split(":")[0]
    for cand in (base, base.rsplit("/", 1)[0]):
        if cand in dtypes:
            return dtypes[cand]
    return "-"


def tf_op_stats(logdir: Path) -> list:
    """Rows of ``framework_op_stats`` (host ops, IDLE dropped) from the trace under ``logdir``."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    paths = sorted(glob.glob(str(logdir / "**" / "*.xplane.pb"), recursive=True))
    if not paths:
        raise SystemExit(f"no *.xplane.pb under {logdir}: the profiler wrote no trace")
    data, ok = plugin.xspace_to_tools_data(paths[-1:], "framework_op_stats")
    if not ok:
        raise SystemExit(f"TensorFlow could not summarise the trace: {data[:200]!r}")
    table = json.loads(data)
    table = table[0] if isinstance(table, list) else table
    cols = [c["id"] for c in table["cols"]]
    rows = []
    for r in table["rows"]:
        row = dict(zip(cols, [c.get("v") for c in r["c"]]))
        if row.get("type") != "IDLE":
            rows.append(row)
    return rows


def profile_tf(prec, a, logroot) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from umsrep.models import ENCODERS, HEADS
    from umsrep.models.losses import LOSSES
    from umsrep.models.pyramid import attach_one, pyramid_spec
    from umsrep.recipe import OptimizerConfig
    from umsrep.train.engine import SingleTask, TaskStream, make_optimizer

    size, bs = a.size, a.batch
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if prec == "bf16" else "float32")
    try:
        x = np.random.default_rng(0).random((4 * bs, size, size, 1)).astype(np.float32)
        ds = tf.data.Dataset.from_tensor_slices((x, x)).repeat().batch(bs).prefetch(tf.data.AUTOTUNE)
        enc = ENCODERS.get("denoising_autoencoder").build((size, size, 1))
        dae = attach_one(enc, HEADS.get("denoise").build(pyramid_spec(enc), (size, size), name="denoise", channels=1))
        stream = TaskStream("dae", dae, LOSSES.get("mse")(), ds, a.steps)
        st = SingleTask("dae", stream, dae.trainable_variables,
                        make_optimizer(OptimizerConfig(name="adam", learning_rate=1e-4)))
        for _ in range(2):
            st._step(st.next_batch("dae"))
        dtypes = graph_dtypes(st._step.get_concrete_function(st.next_batch("dae")))
        logdir = logroot / f"tf_{prec}"
        batches = [st.next_batch("dae") for _ in range(a.steps)]
        tf.profiler.experimental.start(str(logdir))
        t0 = time.perf_counter()
        for b in batches:
            float(st._step(b))
        wall = time.perf_counter() - t0
        tf.profiler.experimental.stop()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    rows = tf_op_stats(logdir)
    per_step = 1e-3 / a.steps      # us -> ms per step
    ops = [{"name": r["operation"], "type": r["type"], "dtype": _lookup(dtypes, r["operation"]),
            "occurrences": int(r["occurrences"]), "self_ms_per_step": r["total_self_time"] * per_step,
            "category": category(r["type"], r["operation"])} for r in rows]
    return summarise(f"tensorflow {prec}", ops, wall / a.steps, a, logdir=str(logdir))


def profile_torch(bf16, a) -> dict:
    import numpy as np
    import torch
    import torch_models as tm
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    fmt = torch.channels_last if bf16 or a.torch_channels_last else torch.contiguous_format
    m = tm.denoising_autoencoder().to(memory_format=fmt)
    m.train()
    optim = tm.adam(m.parameters())
    x = torch.from_numpy(np.random.default_rng(0).random((a.batch, 1, a.size, a.size)).astype(np.float32))
    x = x.contiguous(memory_format=fmt)

    def step():
        optim.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = m(x)
        loss = tm.mse_loss(x, out.float())
        loss.backward()
        optim.step()
        return loss.detach().item()

    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        wall = time.perf_counter() - t0
    # per aten op, split by whether it ran inside the optimizer (Adam's update, zero_grad) or not
    agg = collections.defaultdict(lambda: [0.0, 0])
    for e in prof.events():
        parent, in_opt = e.cpu_parent, e.name.startswith("Optimizer.")
        while parent is not None and not in_opt:
            in_opt, parent = parent.name.startswith("Optimizer."), parent.cpu_parent
        key = (e.name, in_opt)
        agg[key][0] += e.self_cpu_time_total
        agg[key][1] += 1
    ops = [{"name": f"{name} (optimizer)" if in_opt else name, "type": name, "dtype": "-", "occurrences": n,
            "self_ms_per_step": us * 1e-3 / a.steps, "category": "optimizer" if in_opt else category(name)}
           for (name, in_opt), (us, n) in agg.items()]
    layout = "channels_last" if fmt is torch.channels_last else "nchw"
    return summarise(f"pytorch {'bf16 autocast' if bf16 else 'fp32'} {layout}", ops, wall / a.steps, a)


def summarise(title, ops, wall_per_step, a, **extra) -> dict:
    ops = sorted(ops, key=lambda o: -o["self_ms_per_step"])
    total = sum(o["self_ms_per_step"] for o in ops) or 1.0
    cats = collections.defaultdict(float)
    types = collections.defaultdict(lambda: [0.0, 0])
    for o in ops:
        cats[o["category"]] += o["self_ms_per_step"]
        t = types[(o["type"], o["dtype"])]
        t[0] += o["self_ms_per_step"]
        t[1] += o["occurrences"]
    print(f"\n=== {title}: {1e3 * wall_per_step:.1f} ms per step wall ({a.batch / wall_per_step:.1f} images/s "
          f"while profiled), {total:.1f} ms per step of op self time ===")
    print(f"{'category':18s} {'ms/step':>9s} {'share':>6s}")
    for c, v in sorted(cats.items(), key=lambda kv: -kv[1]):
        print(f"{c:18s} {v:9.2f} {100 * v / total:5.1f}%")
    print(f"\n{'op type':44s} {'dtype':22s} {'calls/step':>10s} {'ms/step':>9s} {'share':>6s}")
    for (t, d), (v, n) in sorted(types.items(), key=lambda kv: -kv[1][0])[: a.top]:
        print(f"{t[:44]:44s} {d[:22]:22s} {n / a.steps:10.1f} {v:9.2f} {100 * v / total:5.1f}%")
    print(f"\ntop {min(a.top, len(ops))} ops by self time")
    for o in ops[: a.top]:
        print(f"{o['name'][-70:]:70s} {o['dtype'][:20]:20s} {o['self_ms_per_step']:8.2f} ms")
    return {"wall_ms_per_step": 1e3 * wall_per_step, "self_ms_per_step": total, "categories": dict(cats),
            "op_types": [{"type": t, "dtype": d, "self_ms_per_step": v, "calls_per_step": n / a.steps}
                         for (t, d), (v, n) in sorted(types.items(), key=lambda kv: -kv[1][0])],
            "top_ops": ops[: a.top], **extra}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    ap.add_argument("--torch", action="store_true", help="also profile the PyTorch twin (bench/torch_models.py)")
    ap.add_argument("--torch-channels-last", action="store_true", help="PyTorch fp32 in channels-last too")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--logdir", help="keep the TensorFlow traces here (default: a temporary folder)")
    ap.add_argument("--out", help="write the JSON here instead of bench/results/profile_step.json")
    ap.add_argument("--torch-process", metavar="FILE", help=argparse.SUPPRESS)  # internal: PyTorch only, to FILE
    a = ap.parse_args()
    if a.torch_process:          # the PyTorch process started by torch_in_own_process: no TensorFlow here
        out = {prec: profile_torch(prec == "bf16", a) for prec in a.precisions}
        Path(a.torch_process).write_text(json.dumps(out, default=str))
        return
    logroot = Path(a.logdir or tempfile.mkdtemp(prefix="umsrep_profile_"))
    res = {"size": a.size, "batch": a.batch, "steps": a.steps, "tensorflow": {}, "pytorch": {}}
    for prec in a.precisions:
        res["tensorflow"][prec] = profile_tf(prec, a, logroot)
    if a.torch:
        res["pytorch"] = torch_in_own_process(a)
    cmp = compare(res)
    if cmp:
        res["comparison_ms_per_step"] = cmp
    print(f"\ntraces: {logroot}")
    if a.out:
        Path(a.out).write_text(json.dumps({"machine": machine(), **res}, indent=2, default=str) + "\n")
        print(f"wrote {a.out}")
    else:
        save("profile_step", res)


def torch_in_own_process(a) -> dict:
    """profile_torch for each precision, in a new process of this script (never next to TensorFlow)."""
    with tempfile.TemporaryDirectory(prefix="umsrep_profile_torch_") as tmp:
        out = Path(tmp) / "pytorch.json"
        cmd = [sys.executable, __file__, "--size", str(a.size), "--batch", str(a.batch), "--steps", str(a.steps),
               "--top", str(a.top), "--precisions", *a.precisions, "--torch-process", str(out)]
        cmd += ["--torch-channels-last"] if a.torch_channels_last else []
        rc = subprocess.run(cmd, check=False).returncode
        if rc != 0 or not out.is_file():
            how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
            print(f"\nPyTorch profile failed in its own process ({how}): only TensorFlow's is saved")
            return {}
        return json.loads(out.read_text())


def compare(res) -> dict:
    """Category self time per step, side by side, for every profiled case."""
    cases = {f"tf_{p}": r for p, r in res["tensorflow"].items()}
    cases.update({f"torch_{p}": r for p, r in res["pytorch"].items()})
    if len(cases) < 2:
        return {}
    cats = sorted({c for r in cases.values() for c in r["categories"]},
                  key=lambda c: -max(r["categories"].get(c, 0.0) for r in cases.values()))
    print("\nself time per step (ms) by category")
    print(f"{'category':18s}" + "".join(f"{k:>14s}" for k in cases))
    table = {}
    for c in cats + ["(op total)", "(wall)"]:
        if c == "(op total)":
            vals = [r["self_ms_per_step"] for r in cases.values()]
        elif c == "(wall)":
            vals = [r["wall_ms_per_step"] for r in cases.values()]
        else:
            vals = [r["categories"].get(c, 0.0) for r in cases.values()]
        table[c] = dict(zip(cases, vals))
        print(f"{c:18s}" + "".join(f"{v:14.2f}" for v in vals))
    return table


if __name__ == "__main__":
    main()
