"""The PyTorch cases of bench/train_throughput.py, in a process of their own.

TensorFlow and PyTorch are never loaded into one process: PyPI's default Linux wheel of PyTorch brings triton,
and triton loaded next to TensorFlow crashed the benchmark with a segmentation fault (whatever the torch build,
as long as triton was installed). train_throughput.py starts this script once per run and drives it over a pipe,
one JSON object per line, so that the TensorFlow and PyTorch cases stay interleaved exactly as before
(umsrep, keras_fit, torch..., umsrep, keras_fit, torch..., ...) while each framework has a process to itself:

    first reply        {"torch": version, "threads": n}   or {"error": "..."} if PyTorch is not importable
    setup  (a model)   {"cmd": "setup", "kind": "dae" | "seg" | "unet", "data": NPZ, "steps": n, "batch": b,
                        "cases": {name: [bf16, channels_last]}}  ->  {"cases": [built], "errors": {case: msg}}
    run    (one case)  {"cmd": "run", "case": name}  ->  {"seconds": t, "loss": l}   (timed here: no pipe in it)
    twin   (checks)    {"cmd": "twin", "kind": ..., "reference": NPZ | null}  ->  {"parameters": {...},
                        "max_output_difference": e | null}
    quit               {"cmd": "quit"}

The twins (bench/torch_models.py, :data:`TWINS`): ``dae`` the denoising autoencoder (encoder + U-Net decoder, MSE
against the clean image), ``seg`` the frozen encoder + symmetric one-class head, ``unet`` the encoder + U-Net
one-class head, both trained (``seg`` and ``unet``: dice_ce against the masks). NPZ ``data``: the image pool ``x``
(N, H, W, 1) and the masks ``mask`` (N, H, W), the same arrays as the Keras cases train on. The ``reference`` of
the twin check (the Keras model's weights, inputs and outputs): see
:func:`torch_models.check_unet_against_reference` (``dae``, ``unet``) and
:func:`torch_models.check_symmetric_against_reference` (``seg``). Replies go to this process's original stdout;
anything else printed here (by PyTorch too) goes to stderr.

    python bench/torch_worker.py [--threads N]      (started by train_throughput.py, not by hand)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

#: kind -> (the twin's builder, its output check against the Keras model), names in torch_models
TWINS = {"dae": ("denoising_autoencoder", "check_unet_against_reference"),
         "seg": ("frozen_encoder_segmenter", "check_symmetric_against_reference"),
         "unet": ("unet_segmenter", "check_unet_against_reference")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's own choice)")
    a = ap.parse_args()
    replies = os.fdopen(os.dup(1), "w", buffering=1)   # the pipe to train_throughput.py ...
    os.dup2(2, 1)                                       # ... and every other print goes to stderr

    def reply(**msg):
        replies.write(json.dumps(msg) + "\n")
        replies.flush()

    try:
        import numpy as np
        import torch
        import torch_models as tm
        from _common import self_peak_rss_mb
    except ImportError as e:
        reply(error=str(e))
        return
    if a.threads:
        torch.set_num_threads(a.threads)
    reply(torch=torch.__version__, threads=torch.get_num_threads())
    runs = {}
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg["cmd"]
        if cmd == "quit":
            break
        if cmd == "setup":
            runs.clear()
            errors = {}
            data = np.load(msg["data"])
            for case, (bf16, cl) in msg["cases"].items():
                try:
                    runs[case] = runner(msg["kind"], data, msg["steps"], msg["batch"], bf16, cl)
                except Exception as e:         # one failing case must not lose the others
                    errors[case] = f"{type(e).__name__}: {e}"
            reply(cases=list(runs), errors=errors)
        elif cmd == "run":
            try:
                t0 = time.perf_counter()
                loss = runs[msg["case"]]()
                reply(seconds=time.perf_counter() - t0, loss=loss, peak_rss_mb=self_peak_rss_mb())
            except Exception as e:
                reply(error=f"{type(e).__name__}: {e}")
        elif cmd == "twin":
            try:
                make, check = TWINS[msg["kind"]]
                module = getattr(tm, make)()
                err = None
                if msg.get("reference"):
                    err = getattr(tm, check)(dict(np.load(msg["reference"])))
                reply(parameters=tm.count(module), max_output_difference=err)
            except Exception as e:
                reply(error=f"{type(e).__name__}: {e}")
        else:
            reply(error=f"unknown command {cmd!r}")


def runner(kind, data, steps, bs, bf16, channels_last):
    """``steps`` training steps of the PyTorch twin of ``kind`` per call (batches cycling through the pool)."""
    import numpy as np
    import torch
    import torch_models as tm

    x = data["x"]
    if kind not in TWINS:
        raise ValueError(f"no PyTorch twin of {kind!r}")
    make = getattr(tm, TWINS[kind][0])
    if kind == "dae":                   # reconstruct the (clean) input
        loss_fn, y = tm.mse_loss, x.transpose(0, 3, 1, 2).copy()
    else:                               # seg: frozen encoder; unet: encoder trained too (the joint strategy's)
        loss_fn, y = tm.dice_ce_loss, (data["mask"][:, None] > 0).astype(np.float32)
    n_pool = len(x)
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    module = make().to(memory_format=fmt)
    module.train()
    xs = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)
    ys = torch.from_numpy(y).contiguous(memory_format=fmt)
    optim = tm.adam(module.parameters())
    state = {"i": 0}

    def run():
        loss = None
        for _ in range(steps):
            i = state["i"]
            state["i"] = (i + bs) % n_pool
            optim.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = module(xs[i:i + bs])
            loss = loss_fn(ys[i:i + bs], out.float())
            loss.backward()
            optim.step()
        return loss.detach().item()

    return run


if __name__ == "__main__":
    main()
