"""Noise models for the denoising autoencoder, applied on the fly inside ``tf.data``.

Images are float32 in [0, 1] with shape (H, W, C) or (N, H, W, C); the clean image is the target.
Every model uses stateless random ops, so the same ``seed`` (an int pair or a shape-[2] integer tensor)
always gives the same noisy image, in eager mode and in graph mode alike.

* ``gaussian``: ``x + sigma * n``                    (additive, signal-independent)
* ``poisson``:  ``Poisson(x * peak) / peak``          (shot noise; ``peak`` photons at intensity 1.0)
* ``speckle``:  ``x + x * sigma * n``                (multiplicative, as in ultrasound / SAR)

All outputs are clipped to [0, 1] and keep the input shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence

import tensorflow as tf

from umsrep.errors import RecipeError
from umsrep.registry import Registry

NoiseFn = Callable[[tf.Tensor, float, tf.Tensor], tf.Tensor]

#: name -> function(image, level, seed) -> noisy image clipped to [0, 1]
NOISE: Registry = Registry("noise model")


@dataclass(frozen=True)
class NoiseLevel:
    """One noise model at one strength.

    ``level`` means: gaussian -> sigma; poisson -> peak (expected photon count at intensity 1.0);
    speckle -> sigma of the multiplicative gaussian.
    """

    kind: str
    level: float

    @property
    def name(self) -> str:
        """Stable key such as ``gaussian_0.1``, ``poisson_30`` or ``speckle_0.2`` (used in metrics)."""
        return f"{self.kind}_{float(self.level):g}"


def _as_image(image) -> tf.Tensor:
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.float32:
        image = tf.cast(image, tf.float32)
    return image


def _as_seed(seed) -> tf.Tensor:
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer:
        raise TypeError(f"noise seed must be an integer pair, got dtype {seed.dtype.name}")
    return tf.cast(tf.reshape(seed, [2]), tf.int64)


@NOISE.register("gaussian")
def gaussian_noise(image, level: float, seed) -> tf.Tensor:
    x = _as_image(image)
    n = tf.random.stateless_normal(tf.shape(x), seed=_as_seed(seed), dtype=tf.float32)
    return tf.clip_by_value(x + tf.cast(level, tf.float32) * n, 0.0, 1.0)


@NOISE.register("poisson")
def poisson_noise(image, level: float, seed) -> tf.Tensor:
    x = _as_image(image)
    peak = tf.cast(level, tf.float32)
    lam = tf.maximum(x, 0.0) * peak
    counts = tf.random.stateless_poisson(tf.shape(x), seed=_as_seed(seed), lam=lam, dtype=tf.float32)
    return tf.clip_by_value(counts / peak, 0.0, 1.0)


@NOISE.register("speckle")
def speckle_noise(image, level: float, seed) -> tf.Tensor:
    x = _as_image(image)
    n = tf.random.stateless_normal(tf.shape(x), seed=_as_seed(seed), dtype=tf.float32)
    return tf.clip_by_value(x + x * tf.cast(level, tf.float32) * n, 0.0, 1.0)


def apply_noise(image, level: NoiseLevel, seed) -> tf.Tensor:
    """Apply one noise level; deterministic for a given ``seed`` (int pair / shape-[2] tensor)."""
    fn = NOISE.get(level.kind)
    x = _as_image(image)
    out = fn(x, float(level.level), seed)
    out.set_shape(x.shape)
    return out


def random_noise(image, levels: Sequence[NoiseLevel], seed) -> tf.Tensor:
    """Pick one of ``levels`` uniformly at random (statelessly, from ``seed``) and apply it.

    Works with graph tensors inside ``tf.data.Dataset.map``: the choice is made by ``tf.switch_case``.
    """
    levels = list(levels)
    if not levels:
        raise RecipeError("random_noise needs at least one noise level")
    for lv in levels:
        NOISE.get(lv.kind)  # fail early, with the list of valid kinds
    x = _as_image(image)
    if len(levels) == 1:
        return apply_noise(x, levels[0], seed)
    seeds = tf.random.experimental.stateless_split(_as_seed(seed), num=2)
    choice = tf.random.stateless_uniform(
        [], seed=seeds[0], minval=0, maxval=len(levels), dtype=tf.int32
    )
    noise_seed = seeds[1]
    branches = [(lambda lv=lv: apply_noise(x, lv, noise_seed)) for lv in levels]
    out = tf.switch_case(choice, branches)
    out.set_shape(x.shape)
    return out


def noise_levels(specs) -> List[NoiseLevel]:
    """Every level of a recipe's validated ``representation.noise`` list, in order (the one expansion used by
    training, evaluation and the report)."""
    return [NoiseLevel(s.kind, float(v)) for s in specs for v in s.levels]


def parse_noise(spec) -> List[NoiseLevel]:
    """Turn a recipe's noise list into ``NoiseLevel`` objects.

    ``spec`` looks like ``[{"kind": "gaussian", "levels": [0.05, 0.1]}, {"kind": "poisson", "levels": [30]}]``.
    Unknown kinds raise ``RecipeError`` naming the valid kinds.
    """
    if not isinstance(spec, (list, tuple)) or not spec:
        raise RecipeError(f"noise: expected a non-empty list of {{kind, levels}} entries, got {spec!r}")
    out: List[NoiseLevel] = []
    for i, entry in enumerate(spec):
        where = f"noise[{i}]"
        if not isinstance(entry, dict):
            raise RecipeError(f"{where}: expected a mapping with 'kind' and 'levels', got {entry!r}")
        extra = set(entry) - {"kind", "levels"}
        if extra:
            raise RecipeError(f"{where}: unknown field(s) {', '.join(sorted(map(str, extra)))}")
        if "kind" not in entry:
            raise RecipeError(f"{where}: missing 'kind' (one of: {', '.join(NOISE.names())})")
        kind = entry["kind"]
        try:
            NOISE.get(kind)
        except RecipeError as e:
            raise RecipeError(f"{where}.kind: {e}") from None
        levels = entry.get("levels")
        if isinstance(levels, (int, float)) and not isinstance(levels, bool):
            levels = [levels]
        if not isinstance(levels, (list, tuple)) or not levels:
            raise RecipeError(f"{where}.levels: expected a non-empty list of numbers, got {levels!r}")
        for j, v in enumerate(levels):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise RecipeError(f"{where}.levels[{j}]: expected a number, got {v!r}")
            v = float(v)
            if not v > 0 or v != v or v == float("inf"):
                raise RecipeError(f"{where}.levels[{j}]: must be a positive finite number, got {v!r}")
            lv = NoiseLevel(kind, v)
            if lv not in out:
                out.append(lv)
    return out


__all__ = [
    "NOISE",
    "NoiseLevel",
    "apply_noise",
    "random_noise",
    "parse_noise",
    "noise_levels",
    "gaussian_noise",
    "poisson_noise",
    "speckle_noise",
]
