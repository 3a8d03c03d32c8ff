"""The input pipeline alone vs the model's consumption rate — the pipeline must never be the bottleneck.

    python bench/pipeline.py [--data DIR] [--size 256] [--n 200] [--batch 16]

(1) disk -> arrays: read PNG (or DICOM) files, decode, resize (OpenCV bicubic), scale to [0, 1] — umsrep's
readers, images/s; (2) the training stream over those arrays: per-epoch permutation, gather, per-image random
noise (Gaussian / Poisson / speckle), batching, prefetch — umsrep's tf.data pipeline, images/s; (2b) the same
stream with ``data.augment: strong`` (``--preset``) before the noise, and a segmentation stream (image + mask)
with it; (3) the model's consumption: training steps of the ~787k-parameter denoising autoencoder (encoder +
decoder) at that size and batch, run by umsrep's engine on the same stream, images/s. Reported: the ratios
(1)/(3), (2)/(3) and (2b)/(3) — the target is >= 5 — and the augmentation's cost per training step. Without
--data the embedded synthetic ultrasound set is generated at --size into a temporary folder.
Writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import save


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", help="a folder with images/ (default: synthetic)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--train-steps", type=int, default=12)
    ap.add_argument("--preset", default="strong", help="data.augment preset of the augmented streams")
    a = ap.parse_args()

    import numpy as np
    import tensorflow as tf

    from umsrep.data import pipeline
    from umsrep.data.dataset import load_dataset
    from umsrep.data.noise import NoiseLevel, random_noise
    from umsrep.data.synthetic import make_ultrasound_dataset
    from umsrep.models import ENCODERS, HEADS
    from umsrep.models.losses import LOSSES
    from umsrep.models.pyramid import attach_one, pyramid_spec
    from umsrep.recipe import OptimizerConfig
    from umsrep.train.engine import SingleTask, TaskStream, make_optimizer
    from umsrep.transforms import AugmentConfig, augmentation

    load_before = os.getloadavg()[0]  # > cores: other processes shared the machine, the rates are low
    root = a.data or make_ultrasound_dataset(tempfile.mkdtemp(), n=a.n, size=a.size, seed=0)
    t0 = time.perf_counter()
    data = load_dataset(root, "images", "masks" if (Path(root) / "masks").is_dir() else None, None,
                        image_size=(a.size, a.size), channels=1)
    read_ips = len(data) / (time.perf_counter() - t0)
    x = data.images.astype(np.float32)

    levels = [NoiseLevel("gaussian", 0.05), NoiseLevel("gaussian", 0.1), NoiseLevel("poisson", 30.0),
              NoiseLevel("speckle", 0.2)]

    def add_noise(img, y, seed):
        return random_noise(img, levels, seed), y

    def denoise_target(img, y, seed):  # fit's representation stage: the target is the (augmented) clean image
        return random_noise(img, levels, seed), img

    steps = max(20, 4 * len(x) // a.batch)

    cpu_ms = {}  # process CPU time per image: what a stage costs whatever else runs on the machine

    def rate(ds, name):
        it = iter(ds)
        for _ in range(3):
            next(it)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            next(it)
        cpu_ms[name] = 1000 * (time.process_time() - c0) / (steps * a.batch)
        return steps * a.batch / (time.perf_counter() - t0)

    ds = pipeline.train_dataset(x, x, batch_size=a.batch, seed=0, map_fn=add_noise)
    stream_ips = rate(ds, "stream")
    cfg = AugmentConfig.model_validate(a.preset)
    aug_ips = rate(pipeline.train_dataset(x, x, batch_size=a.batch, seed=0,
                                          map_fn=augmentation(cfg, denoise_target)), "augmented_denoising_stream")
    masks = (np.random.default_rng(0).random((len(x), a.size, a.size)) > 0.5).astype(np.int32)
    if data.masks is not None:
        masks = (np.maximum(data.masks, 0) > 0).astype(np.int32)
    seg_ips = rate(pipeline.train_dataset(x, masks, batch_size=a.batch, seed=0, map_fn=augmentation(cfg)),
                   "augmented_segmentation_stream")

    enc = ENCODERS.get("denoising_autoencoder").build((a.size, a.size, 1), mean=float(x.mean()), std=float(x.std()))
    model = attach_one(enc, HEADS.get("denoise").build(pyramid_spec(enc), (a.size, a.size), name="denoise", channels=1))
    stream = TaskStream("representation", model, LOSSES.get("mse")(), ds, a.train_steps)
    trainer = SingleTask("representation", stream, model.trainable_variables,
                         make_optimizer(OptimizerConfig(name="rmsprop", learning_rate=1e-3)))
    trainer.train_epoch()  # trace + warm up
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train_epoch()
    model_ips = a.train_steps * a.batch / (time.perf_counter() - t0)
    cpu_ms["model_training"] = 1000 * (time.process_time() - c0) / (a.train_steps * a.batch)
    res = {"data": str(root), "images": len(data), "size": a.size, "batch": a.batch,
           "read_decode_resize_images_per_s": read_ips, "train_stream_images_per_s": stream_ips,
           "model_training_images_per_s": model_ips, "model_parameters": int(model.count_params()),
           "read_over_model": read_ips / model_ips, "stream_over_model": stream_ips / model_ips,
           "augment_preset": a.preset, "augment": cfg.summary(),
           "augmented_denoising_stream_images_per_s": aug_ips,
           "augmented_segmentation_stream_images_per_s": seg_ips,
           "augmented_stream_over_model": min(aug_ips, seg_ips) / model_ips,

           "model_ms_per_step": 1000 * a.batch / model_ips,
           # CPU time per training step spent augmenting (the stream runs in parallel with the model)
           "augment_cpu_ms_per_step": a.batch * (cpu_ms["augmented_denoising_stream"] - cpu_ms["stream"]),
           **{f"{k}_cpu_ms_per_image": v for k, v in cpu_ms.items()},
           # CPU-time ratio: how many times the model's CPU cost the augmented stream could serve (robust to a
           # shared machine; the model's step includes its own input stream)
           "augmented_stream_over_model_cpu": cpu_ms["model_training"] / max(
               cpu_ms["augmented_denoising_stream"], cpu_ms["augmented_segmentation_stream"]),
           "target_ratio": 5.0, "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    for k, v in res.items():
        print(f"{k:48s} {v:10.2f}" if isinstance(v, float) else f"{k:48s} {v}")
    tf.keras.backend.clear_session()
    save("pipeline", res)


if __name__ == "__main__":
    main()
