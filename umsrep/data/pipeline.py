"""tf.data input pipelines over in-memory arrays.

Training pipelines are endless (``per-epoch stateless permutation -> gather -> map -> batch -> prefetch``) and
are consumed with a fixed ``steps_per_epoch`` (a ``.repeat()``-less pipeline was measured to stall at every
epoch start). Per-sample
randomness (noise) is stateless, keyed by ``(seed, sample counter)``, so a run is reproducible.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def train_dataset(x, y, *, batch_size, seed, map_fn=None, views=1):
    """Infinite shuffled batches of ``(x, y)``; ``map_fn(x, y, seed_pair) -> (x, y)`` runs per sample.

    Epoch ``e`` visits the samples in a stateless permutation keyed by ``(seed, e)``, so every iterator over
    this dataset — the first one, or one made to resume a run (``.skip(k)``) — yields the same stream. (A
    ``shuffle(reshuffle_each_iteration=True)`` keeps its state in the dataset object and gives a second
    iterator a different order.)

    ``views`` > 1: ``x`` and ``y`` hold that many precomputed versions of each sample, view-major (``views * n``
    rows); epoch ``e`` draws view ``e % views`` of every sample, in the epoch's permutation of the ``n`` samples.
    """
    n = len(tf.nest.flatten(x)[0]) // views
    seed64 = tf.cast(seed, tf.int64)
    data = tf.nest.map_structure(tf.convert_to_tensor, (x, y))

    def epoch(e):
        perm = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([seed64, e]))
        return tf.data.Dataset.from_tensor_slices(perm + (e % views) * n)

    ds = tf.data.Dataset.counter(dtype=tf.int64).flat_map(epoch)
    ds = ds.map(lambda j: tf.nest.map_structure(lambda t: tf.gather(t, j), data), num_parallel_calls=AUTOTUNE,
                deterministic=True)
    if map_fn is not None:
        ds = ds.enumerate().map(
            lambda i, xy: map_fn(xy[0], xy[1], tf.stack([seed64, i])),
            num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=n >= batch_size).prefetch(AUTOTUNE)


def eval_dataset(x, y, *, batch_size, map_fn=None, seed=0):
    """One ordered pass over ``(x, y)`` (cached, repeated), consumed for ``steps(n, batch_size)`` steps."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if map_fn is not None:
        ds = ds.enumerate().map(
            lambda i, xy: map_fn(xy[0], xy[1], tf.stack([tf.cast(seed, tf.int64), i])),
            num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).repeat().prefetch(AUTOTUNE)


def steps(n, batch_size):
    return max(1, math.ceil(n / batch_size))


TTA = ("none", "flip")  # test-time augmentation choices of evaluate / predict


def with_tta(model_fn, tta="none"):
    """``model_fn`` with test-time augmentation: ``flip`` averages the outputs on the image and on its mirror image
    (left-right), image-shaped outputs (masks, denoised images) mirrored back; ``none``: ``model_fn`` itself."""
    if tta in (None, "none"):
        return model_fn
    if tta != "flip":
        raise ValueError(f"test-time augmentation {tta!r}: expected one of {list(TTA)}")

    def back(a, b):
        return (a + (tf.reverse(b, [2]) if len(b.shape) == 4 else b)) / 2

    def fn(x, training=False):
        return tf.nest.map_structure(back, model_fn(x, training=training),
                                     model_fn(tf.reverse(x, [2]), training=training))

    return fn


def predict(model_fn, x, batch_size=32):
    """Run ``model_fn`` over ``x`` in batches; returns numpy (or a dict of numpy for dict outputs)."""
    outs = []
    for i in range(0, len(x), batch_size):
        outs.append(model_fn(tf.convert_to_tensor(x[i:i + batch_size])))
    if isinstance(outs[0], dict):
        return {k: np.concatenate([np.asarray(o[k]) for o in outs]) for k in outs[0]}
    return np.concatenate([np.asarray(o) for o in outs])
