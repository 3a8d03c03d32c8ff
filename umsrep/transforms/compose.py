"""Apply a set of transforms to one sample inside ``tf.data`` (graph mode), statelessly.

``Augmentation(transforms)(image, targets, seed) -> (image, targets)``:

1. per transform, ``stateless_fold_in(seed, salt(name))`` gives its own key; from it, whether the sample gets
   the transform (``uniform < p``) and its random parameters;
2. the affine spatial transforms that are on are multiplied into one matrix and the image is warped once
   (``ImageProjectiveTransformV3``, bilinear), every mask with the same matrix (nearest); with elastic
   deformation on, one dense resampling of the affine + displacement positions instead;
3. the intensity transforms that are on, in order, each clipped to [0, 1].

``targets`` is any nest (a class id, a mask, a dict of them): a leaf is warped as a mask when it is an integer
label map of shape (H, W) - the image's height and width -, and passed through untouched otherwise.
Keras 3 preprocessing layers (RandomFlip, RandomRotation, ...) are not used: they draw from a stateful seed
generator, not from a per-sample key, so a resumed run would not see the same batches.
"""

from __future__ import annotations

from typing import Dict, Optional

from umsrep.transforms.base import IntensityTransform, SpatialTransform, Transform, salt


class Augmentation:
    def __init__(self, transforms: Dict[str, Transform]):
        items = [(n, t) for n, t in transforms.items() if t.p > 0]
        self.spatial = sorted([(n, t) for n, t in items if isinstance(t, SpatialTransform)], key=lambda x: x[1].order)
        self.intensity = sorted([(n, t) for n, t in items if isinstance(t, IntensityTransform)],
                                key=lambda x: x[1].order)

    def __bool__(self):
        return bool(self.spatial or self.intensity)

    @staticmethod
    def _key(seed, name, p):
        import tensorflow as tf

        k = tf.random.experimental.stateless_fold_in(seed, salt(name))
        ks = tf.random.experimental.stateless_split(k, 2)
        return tf.random.stateless_uniform([], seed=ks[0]) < p, ks[1]

    def __call__(self, image, targets, seed):
        import tensorflow as tf

        seed = tf.cast(tf.reshape(seed, [2]), tf.int64)
        image = tf.convert_to_tensor(image)
        if image.dtype != tf.float32:
            image = tf.cast(image, tf.float32)
        h, w = int(image.shape[0]), int(image.shape[1])
        leaves = tf.nest.flatten(targets)
        is_mask = [_is_mask(t, h, w) for t in leaves]
        masks = [t for t, m in zip(leaves, is_mask) if m]
        if self.spatial:
            image, masks = self._spatial(image, masks, seed, h, w)
        for name, t in self.intensity:
            on, key = self._key(seed, name, t.p)
            image = tf.cond(on, lambda t=t, key=key, x=image: tf.clip_by_value(t.apply(x, key), 0.0, 1.0),
                            lambda x=image: x)
        image = tf.ensure_shape(image, [h, w, image.shape[-1]])
        it = iter(masks)
        leaves = [next(it) if m else t for t, m in zip(leaves, is_mask)]
        return image, tf.nest.pack_sequence_as(targets, leaves)

    def _spatial(self, image, masks, seed, h, w):
        import tensorflow as tf

        eye = tf.eye(3, dtype=tf.float32)
        m, disp, affine_on, elastic_on = eye, None, tf.constant(False), tf.constant(False)
        for name, t in self.spatial:
            on, key = self._key(seed, name, t.p)
            mt = t.matrix(h, w, key)
            if mt is not None:
                m = m @ tf.where(on, mt, eye)
                affine_on = affine_on | on
            d = t.displacement(h, w, key)
            if d is not None:
                disp = d if disp is None else disp + d
                elastic_on = elastic_on | on
        c = tf.constant([[1, 0, (w - 1) / 2], [0, 1, (h - 1) / 2], [0, 0, 1]], tf.float32)
        c_inv = tf.constant([[1, 0, -(w - 1) / 2], [0, 1, -(h - 1) / 2], [0, 0, 1]], tf.float32)
        pix = c @ m @ c_inv  # output pixel (x, y, 1) -> input pixel

        def affine():
            flat = tf.reshape(pix, [9])[:8][None]
            return (_projective(image, flat, "BILINEAR"), [_projective(k, flat, "NEAREST") for k in masks])

        def dense():
            ys, xs = tf.meshgrid(tf.range(h, dtype=tf.float32), tf.range(w, dtype=tf.float32), indexing="ij")
            pos = tf.stack([xs - (w - 1) / 2, ys - (h - 1) / 2], -1) + disp  # displaced output positions
            full = tf.einsum("ij,hwj->hwi", m[:2, :2], pos) + m[:2, 2] + [(w - 1) / 2, (h - 1) / 2]
            return (_sample(image, full[..., 0], full[..., 1], nearest=False),
                    [_sample(k, full[..., 0], full[..., 1], nearest=True) for k in masks])

        def identity():
            return image, list(masks)

        if disp is None:
            return tf.cond(affine_on, affine, identity)
        return tf.cond(elastic_on, dense, lambda: tf.cond(affine_on, affine, identity))


def _is_mask(t, h, w) -> bool:
    import tensorflow as tf

    t = tf.convert_to_tensor(t)
    return t.dtype.is_integer and t.shape.rank == 2 and tuple(t.shape) == (h, w)


def _projective(x, flat, interpolation):
    """Warp one (H, W[, C]) tensor with the 8-parameter projective map ``flat`` (1, 8)."""
    import tensorflow as tf

    squeeze = x.shape.rank == 2
    y = x[None, ..., None] if squeeze else x[None]
    out = tf.raw_ops.ImageProjectiveTransformV3(images=y, transforms=flat, output_shape=tf.shape(y)[1:3],
                                               fill_value=tf.constant(0.0, tf.float32),
                                               interpolation=interpolation, fill_mode="CONSTANT")
    return out[0, ..., 0] if squeeze else out[0]


def _sample(x, px, py, nearest):
    """Sample the (H, W[, C]) tensor ``x`` at pixel positions ``(px, py)`` (each (H, W)); 0 outside."""
    import tensorflow as tf

    h, w = x.shape[0], x.shape[1]

    def at(xi, yi):
        ok = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
        idx = tf.stack([tf.clip_by_value(yi, 0, h - 1), tf.clip_by_value(xi, 0, w - 1)], -1)
        v = tf.gather_nd(x, tf.cast(idx, tf.int32))
        okv = tf.cast(ok, v.dtype)
        return v * (okv[..., None] if x.shape.rank == 3 else okv)

    if nearest:
        return at(tf.round(px), tf.round(py))
    x0, y0 = tf.floor(px), tf.floor(py)
    ax, ay = px - x0, py - y0
    if x.shape.rank == 3:
        ax, ay = ax[..., None], ay[..., None]
    return ((1 - ax) * (1 - ay) * at(x0, y0) + ax * (1 - ay) * at(x0 + 1, y0)
            + (1 - ax) * ay * at(x0, y0 + 1) + ax * ay * at(x0 + 1, y0 + 1))


def augmentation(config, then=None):
    """The training map function ``(x, y, seed) -> (x, y)``: ``config``'s transforms (an
    :class:`~umsrep.transforms.config.AugmentConfig`, or None), then ``then`` (e.g. the denoising stage's noise,
    given the augmented image). Without transforms it is ``then`` itself, so an unaugmented pipeline is exactly
    the one without this stage."""
    aug = Augmentation(config.transforms()) if config is not None else None
    if not aug:
        return then

    def fn(x, y, seed):
        x, y = aug(x, y, seed)
        return (x, y) if then is None else then(x, y, seed)

    return fn


def preview(config, images, targets=None, seed: int = 0, draws: int = 3) -> Optional[tuple]:
    """``draws`` augmented versions of each image (and mask): ``(images (n, draws, H, W, C), masks or None)``;
    None without transforms. Sample ``i``, draw ``j`` uses the key ``(seed, i * draws + j)``."""
    import numpy as np
    import tensorflow as tf

    aug = Augmentation(config.transforms()) if config is not None else None
    if not aug:
        return None
    xs, ys = [], []
    for i in range(len(images)):
        for j in range(draws):
            y = targets[i] if targets is not None else np.zeros((), np.int32)
            a, b = aug(tf.constant(images[i]), tf.constant(y), tf.constant([seed, i * draws + j], tf.int64))
            xs.append(np.asarray(a))
            ys.append(np.asarray(b))
    x = np.stack(xs).reshape(len(images), draws, *xs[0].shape)
    y = np.stack(ys).reshape(len(images), draws, *ys[0].shape) if targets is not None else None
    return x, y


def preview_sets(recipe, tasks, rep_source, n: int = 4, draws: int = 3) -> list:
    """Augmented training samples for report.html: per data source and augmentation (segmentation tasks first,
    so masks are shown), ``(title, images, masks or None, augmented images, augmented masks or None)``; empty
    when the run has no augmentation."""
    jobs = sorted(((name, recipe.task_data(name).augment, td.source, *td.arrays("train"), td.type)
                   for name, td in tasks.items()), key=lambda j: j[-1] != "segmentation")
    x_rep = rep_source.data.images[rep_source.split["train"]]
    jobs.append(("representation", recipe.data.augment, rep_source, x_rep, None, "image"))
    out, seen = [], set()
    for name, cfg, source, x, y, kind in jobs:
        key = (id(source), repr(cfg.model_dump()))
        if key in seen or not cfg.active:
            continue
        seen.add(key)
        y = y[:n] if kind == "segmentation" else None
        aug = preview(cfg, x[:n], y, seed=recipe.seed, draws=draws)
        out.append((f"{name}: {cfg.summary()}", x[:n], y, *aug))
    return out


def write_previews(path, previews) -> None:
    """Save :func:`preview_sets`' output as one compressed ``.npz`` (nothing when there is no augmentation)."""
    import io

    import numpy as np

    from umsrep.io import write_bytes

    if not previews:
        return
    arrays = {"titles": np.asarray([p[0] for p in previews])}
    for i, (_, x, y, xa, ya) in enumerate(previews):
        arrays.update({f"{i}.x": x, f"{i}.xa": xa})
        arrays.update({f"{i}.y": y} if y is not None else {})
        arrays.update({f"{i}.ya": ya} if ya is not None else {})
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: (v.astype(np.float16) if v.dtype.kind == "f" else v) for k, v in arrays.items()})
    write_bytes(path, buf.getvalue())


def read_previews(path) -> list:
    """The previews :func:`write_previews` saved, as ``(title, x, y, xa, ya)`` tuples; [] when there are none."""
    from pathlib import Path

    import numpy as np

    if not Path(path).is_file():
        return []
    with np.load(path, allow_pickle=False) as z:
        def get(i, k):
            return z[f"{i}.{k}"].astype(np.float32) if f"{i}.{k}" in z.files else None

        return [(str(title), get(i, "x"), get(i, "y"), get(i, "xa"), get(i, "ya"))
                for i, title in enumerate(z["titles"])]
