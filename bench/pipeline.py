"""The input pipeline alone vs the model's consumption rate — the pipeline must never be the bottleneck.

    python bench/pipeline.py [--data DIR] [--size 256] [--n 200] [--batch 16]

(1) disk -> arrays: read PNG (or DICOM) files, decode, resize (OpenCV bicubic), scale to [0, 1] — umsrep's
readers, images/s; (2) the training stream over those arrays: per-epoch permutation, gather, per-image random
noise (Gaussian / Poisson / speckle), batching, prefetch — umsrep's tf.data pipeline, images/s; (3) the model's
consumption: training steps of the ~787k-parameter denoising autoencoder (encoder + decoder) at that size and
batch, run by umsrep's engine on the same stream, images/s. Reported: the ratios (1)/(3) and (2)/(3); the target
is >= 5. Without --data the embedded synthetic ultrasound set is generated at --size into a temporary folder.
Writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import save


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", help="a folder with images/ (default: synthetic)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--train-steps", type=int, default=12)
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

    root = a.data or make_ultrasound_dataset(tempfile.mkdtemp(), n=a.n, size=a.size, seed=0)
    t0 = time.perf_counter()
    data = load_dataset(root, "images", None, None, image_size=(a.size, a.size), channels=1)
    read_ips = len(data) / (time.perf_counter() - t0)
    x = data.images.astype(np.float32)

    levels = [NoiseLevel("gaussian", 0.05), NoiseLevel("gaussian", 0.1), NoiseLevel("poisson", 30.0),
              NoiseLevel("speckle", 0.2)]

    def add_noise(img, y, seed):
        return random_noise(img, levels, seed), y

    ds = pipeline.train_dataset(x, x, batch_size=a.batch, seed=0, map_fn=add_noise)
    it = iter(ds)
    for _ in range(3):
        next(it)
    steps = max(20, 4 * len(x) // a.batch)
    t0 = time.perf_counter()
    for _ in range(steps):
        next(it)
    stream_ips = steps * a.batch / (time.perf_counter() - t0)

    enc = ENCODERS.get("denoising_autoencoder").build((a.size, a.size, 1), mean=float(x.mean()), std=float(x.std()))
    model = attach_one(enc, HEADS.get("denoise").build(pyramid_spec(enc), (a.size, a.size), name="denoise", channels=1))
    stream = TaskStream("representation", model, LOSSES.get("mse")(), ds, a.train_steps)
    trainer = SingleTask("representation", stream, model.trainable_variables,
                         make_optimizer(OptimizerConfig(name="rmsprop", learning_rate=1e-3)))
    trainer.train_epoch()  # trace + warm up
    t0 = time.perf_counter()
    trainer.train_epoch()
    model_ips = a.train_steps * a.batch / (time.perf_counter() - t0)
    res = {"data": str(root), "images": len(data), "size": a.size, "batch": a.batch,
           "read_decode_resize_images_per_s": read_ips, "train_stream_images_per_s": stream_ips,
           "model_training_images_per_s": model_ips, "model_parameters": int(model.count_params()),
           "read_over_model": read_ips / model_ips, "stream_over_model": stream_ips / model_ips,
           "target_ratio": 5.0}
    for k, v in res.items():
        print(f"{k:34s} {v:10.1f}" if isinstance(v, float) else f"{k:34s} {v}")
    tf.keras.backend.clear_session()
    save("pipeline", res)


if __name__ == "__main__":
    main()
