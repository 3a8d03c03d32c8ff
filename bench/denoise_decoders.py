"""Which denoising decoder helps at every noise level? (the comparison that chose the U-Net decoder, issue #13)

``python bench/denoise_decoders.py synthetic|busi EPOCHS paper,res,unet,unet1,unet_res``: one encoder (3x3 stride-2
conv + BN + ReLU levels) with four decoders, trained with Adam + cosine on noisy -> clean, test PSNR / SSIM per noise
level printed next to the noisy input's: ``paper`` the skip-less symmetric decoder, ``res`` the same with residual
output (input - predicted noise), ``unet`` skip connections + the image at full resolution (two convs per encoder
level), ``unet1`` one conv per level, ``unet_res`` U-Net with residual output. Plain Keras, outside the engine.
The run of 2026-12-02 (shared 2-core machine; the BUSI ``unet`` case was stopped once ``unet1`` had decided):
bench/results/denoise_decoders_2026-12-02.txt and bench/results/denoise_decoders_synthetic_2026-12-02.json.
"""
import glob
import json
import sys
import time

import cv2
import keras
import numpy as np
import tensorflow as tf
from keras import layers

from umsrep.data.noise import NoiseLevel, apply_noise, random_noise
from umsrep.evaluate.metrics import psnr, ssim
from umsrep.models.blocks.conv import conv_bn_relu

which = sys.argv[1]          # synthetic | busi
epochs = int(sys.argv[2])
variants = sys.argv[3].split(",")
rng = np.random.default_rng(0)
if which == "synthetic":
    from umsrep.data.synthetic import make_ultrasound_dataset
    root = make_ultrasound_dataset("/tmp/qs_data", n=240, size=64, seed=0, per_patient=2)
    files, size, filters = sorted(glob.glob(f"{root}/images/*.png")), 64, [16, 32, 64, 128]
else:
    from umsrep.paths import data_root

    files, size, filters = sorted(glob.glob(f"{data_root()}/busi/images/*.png")), 128, [32, 64, 128, 256]
X = np.stack([cv2.resize(cv2.imread(f, 0), (size, size), interpolation=cv2.INTER_AREA)
              for f in files]).astype("float32")[..., None] / 255
idx = rng.permutation(len(X))
n_te = len(X) // 5
te, tr = X[idx[:n_te]], X[idx[n_te:]]
mean, std = float(tr.mean()), float(tr.std())
levels = [NoiseLevel("gaussian", .05), NoiseLevel("gaussian", .1), NoiseLevel("poisson", 30), NoiseLevel("speckle", .2)]

def build(kind, mom=0.9):
    inp = keras.Input((size, size, 1))
    x0 = layers.Normalization(mean=mean, variance=std ** 2)(inp)
    x, pyr = x0, []
    for i, f in enumerate(filters):
        x = conv_bn_relu(x, f, strides=2, name=f"e{i}", bn_momentum=mom)
        if "unet" in kind and "unet1" not in kind:
            x = conv_bn_relu(x, f, name=f"e{i}b", bn_momentum=mom)
        pyr.append(x)
    skips = "unet" in kind
    x = pyr[-1]
    for k, lv in enumerate(range(len(filters) - 2, -2, -1)):
        x = layers.UpSampling2D(2)(x)
        if skips:
            x = layers.Concatenate()([x, pyr[lv] if lv >= 0 else x0])
        f = filters[lv] if lv >= 0 else filters[0]
        x = conv_bn_relu(x, f, name=f"d{k}", bn_momentum=mom)
        if skips:
            x = conv_bn_relu(x, f, name=f"d{k}b", bn_momentum=mom)
    if "res" in kind:
        noise = layers.Conv2D(1, 3, padding="same")(x)
        out = layers.Subtract()([inp, noise])
    else:
        out = layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x)
    return keras.Model(inp, out)

def ds():
    d = tf.data.Dataset.from_tensor_slices(tr).shuffle(len(tr), seed=1).repeat()
    d = d.enumerate().map(lambda i, x: (random_noise(x, levels, tf.stack([tf.constant(5, tf.int64), i])), x))
    return d.batch(16).prefetch(2)

noisy_te = {lv.name: np.stack([apply_noise(x, lv, [9, j]).numpy() for j, x in enumerate(te)]) for lv in levels}
res = {"noisy": {k: [float(np.mean(psnr(te, v))), float(np.mean(ssim(te, v)))] for k, v in noisy_te.items()}}
print(which, "noisy", res["noisy"], flush=True)
for kind in variants:
    keras.utils.set_random_seed(0)
    m = build(kind)
    m.compile(keras.optimizers.Adam(1e-3), "mse", jit_compile=False)
    t = time.time()
    steps = len(tr) // 16
    m.fit(ds(), epochs=epochs, steps_per_epoch=steps, verbose=0,
          callbacks=[keras.callbacks.LearningRateScheduler(lambda e: 1e-3 * 0.5 * (1 + np.cos(np.pi * e / epochs)))])
    r = {}
    for k, v in noisy_te.items():
        out = np.clip(m.predict(v, verbose=0), 0, 1)
        r[k] = [round(float(np.mean(psnr(te, out))), 2), round(float(np.mean(ssim(te, out))), 3)]
    res[kind] = r
    print(which, kind, m.count_params(), f"{time.time()-t:.0f}s", r, flush=True)
json.dump(res, open(f"bench/results/denoise_decoders_{which}.json", "w"), indent=1)
