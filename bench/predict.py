"""`umsrep predict` throughput at 256², its peak memory, and `umsrep --help` wall time.

    python bench/predict.py [--n 200 1000] [--repeats 3]

Makes a small run at 256² (the embedded synthetic ultrasound set, denoising-autoencoder encoder + lesion
segmentation + diagnosis heads; 1 training step per stage — speed does not depend on the weights), then:
(1) the model alone: forward passes of the saved model over n preprocessed images (batch 16), images/s, and of
the autoencoder-based segmentation model alone (encoder + lesion decoder; batch 16 and 32);
(2) `umsrep predict RUN FOLDER --out DIR` as a user runs it, end to end in a fresh process (Python and
TensorFlow start-up, model load, reading the PNGs, writing masks and CSV/JSON), images/s with everything
included, for each --n (the fixed start-up cost weighs less on more images), in three output settings: masks +
CSV only (`--no-overlays --no-denoised`), + overlays (`--no-denoised`), and everything (the default: + denoised
images); with the peak RSS of that process and, for reference, the same command on one image (start-up, model
load and the first batch: the fixed cost in each figure);
(3) `umsrep --help` wall time. Medians of the repeats (peak RSS: the largest).
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

from _common import median_time, run_measured, save

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
    ap.add_argument("--n", type=int, nargs="+", default=[200, 1000], help="images per end-to-end run")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    cmd = [sys.executable, "-m", "umsrep"]
    tmp = Path(tempfile.mkdtemp())
    n_max = max(a.n)
    (tmp / "r.yaml").write_text(RECIPE.format(n=n_max))
    subprocess.run([*cmd, "fit", str(tmp / "r.yaml"), "--out", str(tmp / "run")], check=True,
                   capture_output=True)
    images = sorted((tmp / "run" / "data" / "images").glob("*.png"))[:n_max]

    import keras
    import numpy as np
    import tensorflow as tf

    from umsrep.data import pipeline

    model = keras.models.load_model(tmp / "run" / "model.keras")
    x = np.random.default_rng(0).random((min(a.n), 256, 256, 1)).astype(np.float32)
    fn = tf.function(lambda b: model(b, training=False), reduce_retracing=True)
    t_model = median_time(lambda: pipeline.predict(fn, x, 16), a.repeats)
    # the autoencoder-based segmentation model alone (encoder + lesion decoder), as the target names it
    from umsrep.models.pyramid import attach_one

    seg = attach_one(model.get_layer("encoder"), model.get_layer("head_lesion"))
    seg_fn = tf.function(lambda b: seg(b, training=False), reduce_retracing=True)
    t_seg = {bs: median_time(lambda: pipeline.predict(seg_fn, x, bs), a.repeats) for bs in (16, 32)}

    outputs = {"masks_csv": ["--no-overlays", "--no-denoised"], "overlays": ["--no-denoised"], "all": []}
    folders = {}
    for n in sorted(set(a.n) | {1}):         # 1 image: start-up, model load and the first batch
        folders[n] = tmp / f"in{n}"
        folders[n].mkdir()
        for im in images[:n]:
            shutil.copy(im, folders[n] / im.name)

    def cli(folder, flags):
        out = tmp / "pred"
        shutil.rmtree(out, ignore_errors=True)
        with open(tmp / "predict.log", "w") as log:
            sec, rc, rss = run_measured([*cmd, "predict", str(tmp / "run"), str(folder), "--out", str(out), *flags],
                                        stdout=log, stderr=subprocess.STDOUT)
        if rc != 0:
            raise SystemExit(f"umsrep predict failed ({rc}):\n{(tmp / 'predict.log').read_text()[-2000:]}")
        return sec, rss

    end_to_end = {}
    cases = [(n, label, flags) for n in sorted(set(a.n)) for label, flags in outputs.items()]
    for n, label, flags in [*cases, (1, "masks_csv", outputs["masks_csv"])]:
        cli(folders[n], flags)                                  # warm-up (file cache)
        runs = [cli(folders[n], flags) for _ in range(a.repeats)]
        sec, rss = statistics.median(r[0] for r in runs), max(r[1] for r in runs)
        end_to_end.setdefault(str(n), {})[label] = {"flags": flags, "images": n, "seconds": sec,
                                                    "images_per_s": n / sec, "peak_rss_mb": rss}
        print(f"predict end to end, {n:5d} images, {label:9s}: {n / sec:7.1f} images/s ({sec:.2f} s), "
              f"peak RSS {rss:.0f} MiB", flush=True)
    n_ref = min(a.n)
    t_cli = end_to_end[str(n_ref)]["all"]["seconds"]
    helps = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([*cmd, "--help"], check=True, capture_output=True)
        helps.append(time.perf_counter() - t0)
    res = {"images": n_ref, "size": 256, "model_parameters": int(model.count_params()),
           "model_only_images_per_s": n_ref / t_model,
           "segmentation_model_parameters": int(seg.count_params()),
           **{f"segmentation_only_batch{bs}_images_per_s": n_ref / t for bs, t in t_seg.items()},
           "cli_end_to_end_images_per_s": n_ref / t_cli, "cli_end_to_end_s": t_cli,
           "cli_end_to_end": end_to_end,
           "help_wall_time_s": statistics.median(helps),
           "targets": {"predict_masks_csv_images_per_s": 50, "predict_overlays_images_per_s": 35, "help_s": 1.0}}
    for k, v in res.items():
        print(f"{k:30s} {v:10.3f}" if isinstance(v, float) else f"{k:30s} {v}")
    save("predict", res)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
