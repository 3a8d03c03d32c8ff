"""The machine's measured float32 GEMM throughput (GFLOP/s, all cores): our physical limit.

    python bench/peak.py [--n 2048] [--repeats 5]

Square matrix products of size n, numpy (its BLAS) and TensorFlow (oneDNN/Eigen), 2·n³ FLOPs each; the median
of the repeats. Writes bench/results/peak.json.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import median_time, save


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    n = a.n
    flops = 2.0 * n ** 3
    rng = np.random.default_rng(0)
    x, y = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    t_np = median_time(lambda: x @ y, a.repeats)

    import tensorflow as tf

    tx, ty = tf.constant(x), tf.constant(y)
    mm = tf.function(lambda p, q: tf.matmul(p, q))
    t_tf = median_time(lambda: mm(tx, ty).numpy(), a.repeats)
    txb, tyb = tf.cast(tx, tf.bfloat16), tf.cast(ty, tf.bfloat16)
    t_bf = median_time(lambda: mm(txb, tyb).numpy(), a.repeats)
    res = {"n": n, "repeats": a.repeats,
           "numpy_fp32_gflops": flops / t_np / 1e9, "tensorflow_fp32_gflops": flops / t_tf / 1e9,
           "tensorflow_bf16_gflops": flops / t_bf / 1e9}
    res["peak_fp32_gflops"] = max(res["numpy_fp32_gflops"], res["tensorflow_fp32_gflops"])
    for k, v in res.items():
        print(f"{k:28s} {v:10.1f}" if isinstance(v, float) else f"{k:28s} {v}")
    save("peak", res)


if __name__ == "__main__":
    main()
