"""Training throughput of umsrep's engine vs a plain Keras `fit` of the same model, and the fraction of the
machine's GEMM peak it achieves.

    python bench/train_throughput.py [--size 256] [--batch 16] [--steps 10] [--repeats 3]

Models (random weights; speed does not depend on them): the denoising autoencoder (encoder + decoder, ~787k
parameters), the segmentation head trained on a frozen shared encoder (the `independent` stage), and MMA-Net
(seg + cls, trained jointly) at the recipe widths. For each: images/s of (a) umsrep's engine (`SingleTask` /
`Joint`, its `tf.function` step through `strategy.run`) and (b) `model.fit` with the same optimizer, loss and
tf.data stream, interleaved (a, b, a, b, ...) and the median of the repeats reported; achieved GFLOP/s =
images/s × 3 × forward FLOPs (forward + backward ≈ 3× forward), as a fraction of bench/results/peak.json.
PyTorch is not part of this benchmark yet. Writes bench/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _common import RESULTS, save


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from umsrep.models.encoders import ENCODERS
    from umsrep.models.flops import count_flops
    from umsrep.models.heads import HEADS, attach, attach_one, pyramid_spec
    from umsrep.models.losses import build_loss, LOSSES
    from umsrep.recipe import LossConfig, OptimizerConfig, WeightingConfig
    from umsrep.train.engine import Joint, SingleTask, TaskStream, make_optimizer
    from umsrep.train.weighting import make_weighting

    size, bs = a.size, a.batch
    rng = np.random.default_rng(0)
    x = rng.random((64, size, size, 1)).astype(np.float32)
    mask = (rng.random((64, size, size)) > 0.7).astype(np.int32)
    label = rng.integers(0, 3, 64).astype(np.int32)
    peak = None
    if (RESULTS / "peak.json").is_file():
        peak = json.loads((RESULTS / "peak.json").read_text())["peak_fp32_gflops"]

    def ds(y):
        return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(bs).prefetch(tf.data.AUTOTUNE)

    def opt():
        return make_optimizer(OptimizerConfig(name="adam", learning_rate=1e-4))

    results = {}

    def bench(name, model, engine_step, keras_model, keras_loss, kds):
        """Interleaved timing of ``engine_step`` and ``keras_model.fit`` on ``kds``; FLOPs from ``model``."""
        keras_model.compile(optimizer=opt(), loss=keras_loss)
        engine_step()
        keras_model.fit(kds, steps_per_epoch=a.steps, epochs=1, verbose=0)
        eng, ker = [], []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            engine_step()
            eng.append(a.steps * bs / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            keras_model.fit(kds, steps_per_epoch=a.steps, epochs=1, verbose=0)
            ker.append(a.steps * bs / (time.perf_counter() - t0))
        flops = count_flops(model)
        e, k = statistics.median(eng), statistics.median(ker)
        r = {"parameters": int(model.count_params()), "forward_gflops_per_image": flops / 1e9,
             "umsrep_images_per_s": e, "keras_fit_images_per_s": k, "umsrep_over_keras_fit": e / k,
             "umsrep_achieved_gflops": e * 3 * flops / 1e9}
        if peak:
            r["umsrep_fraction_of_peak"] = r["umsrep_achieved_gflops"] / peak
        results[name] = r
        print(name, {kk: round(v, 3) if isinstance(v, float) else v for kk, v in r.items()})

    # 1. denoising autoencoder
    enc = ENCODERS.get("denoising_autoencoder")((size, size, 1))
    dae = attach_one(enc, HEADS.get("denoise")(pyramid_spec(enc), (size, size), channels=1))
    mse = LOSSES.get("mse")()
    st = SingleTask("dae", TaskStream("dae", dae, mse, ds(x), a.steps), dae.trainable_variables, opt())
    dae_k = keras.models.clone_model(dae)
    bench("denoising_autoencoder", dae, st.train_epoch, dae_k, "mse", ds(x))

    # 2. segmentation head on the frozen shared encoder (independent strategy)
    seg_head = HEADS.get("segmentation")(pyramid_spec(enc), (size, size), name="lesion", n_classes=1)
    seg = attach_one(enc, seg_head)
    seg_loss = build_loss("segmentation", LossConfig())

    def keras_seg_loss(y_true, y_pred):  # Keras fit gets (N, H, W, 1) masks so it does not squeeze y_pred
        return seg_loss(tf.squeeze(tf.cast(y_true, tf.int32), -1), y_pred)

    st = SingleTask("lesion", TaskStream("lesion", seg, seg_loss, ds(mask), a.steps), seg_head.trainable_variables,
                    opt())
    enc2 = keras.models.clone_model(enc)
    enc2.trainable = False
    seg_k = attach_one(enc2, keras.models.clone_model(seg_head))
    bench("segmentation_head_frozen_encoder", seg, st.train_epoch, seg_k, keras_seg_loss, ds(mask[..., None]))

    # 3. MMA-Net, joint (lesion + diagnosis)
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
    full = attach(menc, heads)
    streams = [TaskStream("lesion", attach_one(menc, heads["lesion"]), seg_loss, ds(mask), a.steps,
                          head_variables=heads["lesion"].trainable_variables),
               TaskStream("diagnosis", attach_one(menc, heads["diagnosis"]), build_loss("classification", LossConfig()),
                          ds(label), a.steps, head_variables=heads["diagnosis"].trainable_variables)]
    w = make_weighting(WeightingConfig(), ["lesion", "diagnosis"])
    jt = Joint("joint", streams, menc.trainable_variables, opt(), w, full)
    full_k = keras.models.clone_model(full)
    multi_y = tf.data.Dataset.from_tensor_slices((x, {"lesion": mask[..., None], "diagnosis": label}))
    bench("mmanet_joint", full, jt.train_epoch, full_k,
          {"lesion": keras_seg_loss, "diagnosis": "sparse_categorical_crossentropy"},
          multi_y.repeat().batch(bs).prefetch(tf.data.AUTOTUNE))
    save("train_throughput", {"size": size, "batch": bs, "steps": a.steps, "repeats": a.repeats, "peak_gflops": peak,
                              "models": results})


if __name__ == "__main__":
    main()
