import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from umsrep.data.noise import NOISE, NoiseLevel, apply_noise, parse_noise, random_noise  # noqa: E402
from umsrep.errors import RecipeError  # noqa: E402

CLEAN = np.full((128, 128, 1), 0.5, np.float32)


def _noisy(kind, level, seed=(1, 2), image=CLEAN):
    out = apply_noise(image, NoiseLevel(kind, level), seed)
    assert out.dtype == tf.float32
    assert tuple(out.shape) == np.shape(image)
    return out.numpy()


def test_registry_and_names():
    assert NOISE.names() == ["gaussian", "poisson", "speckle"]
    assert NoiseLevel("gaussian", 0.1).name == "gaussian_0.1"
    assert NoiseLevel("poisson", 30).name == "poisson_30"
    assert NoiseLevel("poisson", 30.0).name == "poisson_30"
    assert NoiseLevel("speckle", 0.2).name == "speckle_0.2"
    assert NoiseLevel("gaussian", 0.05).name == "gaussian_0.05"


@pytest.mark.parametrize("sigma", [0.05, 0.1])
def test_gaussian_statistics(sigma):
    y = _noisy("gaussian", sigma)
    assert abs(y.mean() - 0.5) < 0.01
    assert abs((y - CLEAN).std() / sigma - 1) < 0.05


@pytest.mark.parametrize("peak", [10.0, 30.0, 100.0])
def test_poisson_statistics(peak):
    y = _noisy("poisson", peak)
    assert abs(y.mean() - 0.5) < 0.01
    assert abs(y.var() / (0.5 / peak) - 1) < 0.10
    # values are photon counts / peak
    np.testing.assert_allclose(y * peak, np.round(y * peak), atol=1e-3)


@pytest.mark.parametrize("sigma", [0.1, 0.2])
def test_speckle_statistics(sigma):
    y = _noisy("speckle", sigma)
    assert abs(y.mean() - 0.5) < 0.01
    assert abs((y / CLEAN - 1).std() / sigma - 1) < 0.05


def test_speckle_is_multiplicative():
    img = np.zeros((64, 64, 1), np.float32)
    img[:, 32:] = 0.8
    y = _noisy("speckle", 0.2, image=img)
    assert np.all(y[:, :32] == 0)  # no signal, no speckle
    assert y[:, 32:].std() > 0.1


@pytest.mark.parametrize("kind,level", [("gaussian", 0.5), ("poisson", 2.0), ("speckle", 1.5)])
def test_clipped_to_unit_range(kind, level):
    img = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64, 1)
    y = _noisy(kind, level, image=img)
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert y.min() == 0.0 and y.max() == 1.0  # strong noise does reach the bounds


@pytest.mark.parametrize("kind,level", [("gaussian", 0.1), ("poisson", 30), ("speckle", 0.2)])
def test_deterministic_from_seed(kind, level):
    a = _noisy(kind, level, seed=(3, 4))
    b = _noisy(kind, level, seed=tf.constant([3, 4], tf.int64))
    c = _noisy(kind, level, seed=(3, 5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_batched_input_and_dtype():
    batch = np.full((2, 16, 16, 3), 0.5, np.float64)
    out = apply_noise(batch, NoiseLevel("gaussian", 0.1), (0, 1))
    assert out.dtype == tf.float32 and tuple(out.shape) == (2, 16, 16, 3)


LEVELS = [
    NoiseLevel("gaussian", 0.02),
    NoiseLevel("gaussian", 0.1),
    NoiseLevel("speckle", 0.4),  # residual std 0.2 on 0.5
    NoiseLevel("poisson", 5),  # quantised in steps of 1/5
]


def _identify(y, clean=0.5):
    if np.allclose(y * 5, np.round(y * 5), atol=1e-4):
        return "poisson_5"
    std = (y - clean).std()
    return min(
        (("gaussian_0.02", 0.02), ("gaussian_0.1", 0.1), ("speckle_0.4", 0.2)),
        key=lambda kv: abs(np.log(std / kv[1])),
    )[0]


def test_random_noise_picks_every_level():
    img = np.full((32, 32, 1), 0.5, np.float32)
    fn = tf.function(lambda s: random_noise(img, LEVELS, s))
    seen = [_identify(fn(tf.constant([7, i], tf.int64)).numpy()) for i in range(60)]
    counts = {lv.name: seen.count(lv.name) for lv in LEVELS}
    assert all(c >= 5 for c in counts.values()), counts
    # stateless: same seed, same choice and same noise
    np.testing.assert_array_equal(fn(tf.constant([7, 3], tf.int64)), fn(tf.constant([7, 3], tf.int64)))


def test_random_noise_inside_dataset_map():
    img = np.full((32, 32, 1), 0.5, np.float32)
    ds = tf.data.Dataset.from_tensors(img).repeat(40).enumerate()
    ds = ds.map(lambda i, x: (random_noise(x, LEVELS, tf.stack([tf.constant(11, tf.int64), i])), x))
    assert ds.element_spec[0].shape == (32, 32, 1)
    names = set()
    for noisy, clean in ds:
        assert noisy.shape == (32, 32, 1) and noisy.dtype == tf.float32
        np.testing.assert_array_equal(clean.numpy(), img)
        names.add(_identify(noisy.numpy()))
    assert names == {lv.name for lv in LEVELS}


def test_random_noise_single_level_and_empty():
    y = random_noise(CLEAN, [NoiseLevel("gaussian", 0.1)], (0, 0)).numpy()
    assert abs((y - CLEAN).std() - 0.1) < 0.005
    with pytest.raises(RecipeError):
        random_noise(CLEAN, [], (0, 0))


def test_parse_noise():
    spec = [
        {"kind": "gaussian", "levels": [0.05, 0.1]},
        {"kind": "poisson", "levels": [30]},
        {"kind": "speckle", "levels": [0.1]},
    ]
    levels = parse_noise(spec)
    assert levels == [
        NoiseLevel("gaussian", 0.05),
        NoiseLevel("gaussian", 0.1),
        NoiseLevel("poisson", 30.0),
        NoiseLevel("speckle", 0.1),
    ]
    assert [lv.name for lv in levels] == ["gaussian_0.05", "gaussian_0.1", "poisson_30", "speckle_0.1"]


def test_parse_noise_unknown_kind_names_valid_kinds():
    with pytest.raises(RecipeError) as e:
        parse_noise([{"kind": "salt_and_pepper", "levels": [0.1]}])
    msg = str(e.value)
    assert "salt_and_pepper" in msg
    for kind in ("gaussian", "poisson", "speckle"):
        assert kind in msg


@pytest.mark.parametrize(
    "spec",
    [
        [],
        "gaussian",
        [{"levels": [0.1]}],
        [{"kind": "gaussian"}],
        [{"kind": "gaussian", "levels": []}],
        [{"kind": "gaussian", "levels": [-0.1]}],
        [{"kind": "gaussian", "levels": ["a"]}],
        [{"kind": "gaussian", "levels": [0.1], "sigma": 2}],
    ],
)
def test_parse_noise_rejects_bad_specs(spec):
    with pytest.raises(RecipeError):
        parse_noise(spec)
