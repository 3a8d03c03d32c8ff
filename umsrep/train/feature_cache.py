"""Frozen features computed once: a head trained on a frozen encoder does not need the encoder at every step.

When the ``independent`` strategy trains a head on a frozen encoder, the encoder's outputs for a training image never
change, so :func:`cached_stream` computes the features the head reads (its pyramid levels, and the image itself for
U-Net heads) once per training and validation image and trains the head on them: same batches (the same stateless
per-epoch permutation, :func:`umsrep.data.pipeline.train_dataset`), same losses and metrics, the encoder's forward
pass gone from every step. With augmentation the features depend on the augmented image, so ``cache_views``
augmented versions of each training image are computed once (view ``v`` of image ``i`` keyed by ``(seed, v * n +
i)``) and epoch ``e`` uses view ``e % cache_views``; without ``cache_views`` an augmented head trains through the
encoder as before. Features are float32 (bit-equal to the encoder's); when they would exceed ``cache_max_gb`` the
head trains through the encoder, with a message saying so.
"""

from __future__ import annotations

import numpy as np


def feature_bytes(head, n_images: int) -> int:
    """float32 bytes of the features ``head`` reads for ``n_images`` images."""
    per = sum(int(np.prod(t.shape[1:])) for t in head.inputs)
    return 4 * per * int(n_images)


def feature_model(encoder, head):
    """image -> the tensors ``head`` reads, in the order of its inputs (a list, or one tensor)."""
    import keras

    from umsrep.models.pyramid import head_inputs

    image = keras.Input(shape=encoder.input_shape[1:], name="image")
    outs = head_inputs(head, encoder(image), image)
    return keras.Model(image, outs if len(outs) > 1 else outs[0], name=f"{head.name}_features")


def compute_features(model, x, batch_size=32):
    """``model`` over ``x`` in inference mode: a tuple of float32 arrays (one per head input) or one array."""
    import tensorflow as tf

    fn = tf.function(lambda b: model(b, training=False), reduce_retracing=True)
    out = []
    for i in range(0, len(x), batch_size):
        r = fn(tf.convert_to_tensor(x[i:i + batch_size]))
        out.append([np.asarray(t, np.float32) for t in (r if isinstance(r, (list, tuple)) else [r])])
    parts = [np.concatenate(p) for p in zip(*out)]
    return tuple(parts) if len(parts) > 1 else parts[0]


def augmented_views(x, y, augment, views: int, seed: int):
    """``views`` augmented versions of every ``(x[i], y[i])``, view-major, keyed by ``(seed, v * n + i)``."""
    import tensorflow as tf

    from umsrep.transforms import augmentation

    fn = augmentation(augment)
    n = len(x)
    xs, ys = [], []
    for v in range(views):
        for i in range(n):
            a, b = fn(tf.constant(x[i]), tf.constant(y[i]), tf.constant([seed, v * n + i], tf.int64))
            xs.append(np.asarray(a, np.float32))
            ys.append(np.asarray(b).astype(y.dtype))
    return np.stack(xs), np.stack(ys)


def cached_stream(stream, encoder, head, task_data, augment, settings, log=print):
    """A :class:`~umsrep.train.engine.TaskStream` training ``head`` alone on precomputed features of the frozen
    ``encoder`` (same batches as ``stream``), or None (with a message) when the cache does not apply."""
    from dataclasses import replace

    from umsrep.data import pipeline

    (x_tr, y_tr), (x_va, y_va) = task_data.arrays("train"), task_data.arrays("val")
    views = 1
    if augment is not None and augment.active:
        if not settings.cache_views:
            log(f"[{stream.name}] augmented training images: the head trains through the frozen encoder "
                f"(strategy.cache_views: N computes N augmented views of each image once instead)")
            return None
        views = settings.cache_views
    need = feature_bytes(head, views * len(x_tr) + len(x_va))
    if need > settings.cache_max_gb * 2 ** 30:
        log(f"[{stream.name}] frozen features would take {need / 2 ** 30:.1f} GB > strategy.cache_max_gb "
            f"{settings.cache_max_gb:g}: the head trains through the encoder at every step")
        return None
    if views > 1 or (augment is not None and augment.active):
        x_tr, y_tr = augmented_views(x_tr, y_tr, augment, views, stream.seed)
    model = feature_model(encoder, head)
    f_tr, f_va = compute_features(model, x_tr), compute_features(model, x_va) if len(x_va) else None
    log(f"[{stream.name}] frozen encoder: features computed once ({views} view(s) of {len(x_tr) // views} training "
        f"+ {len(x_va)} validation images, {need / 2 ** 20:.0f} MB); the head trains on them")
    train_ds = pipeline.train_dataset(f_tr, y_tr, batch_size=stream.batch_size, seed=stream.seed, views=views)
    val_ds = None
    if f_va is not None:
        val_ds = pipeline.eval_dataset(f_va, y_va, batch_size=stream.batch_size, seed=stream.seed + 1)
    return replace(stream, model=head, train_ds=train_ds, val_ds=val_ds)
