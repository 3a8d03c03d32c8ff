"""`umsrep predict` throughput at 256² and `umsrep --help` wall time.

    python bench/predict.py [--n 200] [--repeats 3]

Makes a small run at 256² (the embedded synthetic ultrasound set, denoising-autoencoder encoder + lesion
segmentation + diagnosis heads; 1 training step per stage — speed does not depend on the weights), then:
(1) the model alone: forward passes of the saved model over n preprocessed images (batch 16), images/s, and of
the autoencoder-based segmentation model alone (encoder + lesion decoder; batch 16 and 32);
(2) `umsrep predict RUN FOLDER --out DIR` as a user runs it, end to end in a fresh process (Python and
TensorFlow start-up, model load, reading n PNGs, writing masks, overlays, denoised images and CSV/JSON),
images/s with everything included; (3) `umsrep --help` wall time. Medians of the repeats.
Writes bench/results/predict.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import median_time, save

RECIPE = """
name: bench_predict
seed: 0
modality: ultrasound
data:
  synthetic: {{kind: ultrasound, n: {n}, size: 256, seed: 0, per_patient: 2}}
  image_size: 256
  group_by: patient
representation: {{epochs: 1, steps_per_epoch: 1, batch_size: 4}}
tasks:
  lesion: {{type: segmentation, classes: [lesion], epochs: 1, steps_per_epoch: 1, batch_size: 4}}
  diagnosis: {{type: classification, classes: [benign, malignant, normal], epochs: 1, steps_per_epoch: 1,
              batch_size: 4}}
output: {{tensorboard: false, html: false}}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    cmd = [sys.executable, "-m", "umsrep"]
    tmp = Path(tempfile.mkdtemp())
    (tmp / "r.yaml").write_text(RECIPE.format(n=a.n))
    subprocess.run([*cmd, "fit", str(tmp / "r.yaml"), "--out", str(tmp / "run")], check=True,
                   capture_output=True)
    images = sorted((tmp / "run" / "data" / "images").glob("*.png"))[: a.n]

    import keras
    import numpy as np
    import tensorflow as tf

    from umsrep.data import pipeline

    model = keras.models.load_model(tmp / "run" / "model.keras")
    x = np.random.default_rng(0).random((len(images), 256, 256, 1)).astype(np.float32)
    fn = tf.function(lambda b: model(b, training=False), reduce_retracing=True)
    t_model = median_time(lambda: pipeline.predict(fn, x, 16), a.repeats)
    # the autoencoder-based segmentation model alone (encoder + lesion decoder), as the target names it
    from umsrep.models.pyramid import attach_one

    seg = attach_one(model.get_layer("encoder"), model.get_layer("head_lesion"))
    seg_fn = tf.function(lambda b: seg(b, training=False), reduce_retracing=True)
    t_seg = {bs: median_time(lambda: pipeline.predict(seg_fn, x, bs), a.repeats) for bs in (16, 32)}

    def cli():
        out = tmp / "pred"
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([*cmd, "predict", str(tmp / "run"), str(images[0].parent), "--out", str(out)],
                       check=True, capture_output=True)

    t_cli = median_time(cli, a.repeats, warmup=1)
    helps = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([*cmd, "--help"], check=True, capture_output=True)
        helps.append(time.perf_counter() - t0)
    res = {"images": len(images), "size": 256, "model_parameters": int(model.count_params()),
           "model_only_images_per_s": len(images) / t_model,
           "segmentation_model_parameters": int(seg.count_params()),
           **{f"segmentation_only_batch{bs}_images_per_s": len(images) / t for bs, t in t_seg.items()},
           "cli_end_to_end_images_per_s": len(images) / t_cli, "cli_end_to_end_s": t_cli,
           "help_wall_time_s": statistics.median(helps), "targets": {"predict_images_per_s": 50, "help_s": 1.0}}
    for k, v in res.items():
        print(f"{k:30s} {v:10.3f}" if isinstance(v, float) else f"{k:30s} {v}")
    save("predict", res)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
