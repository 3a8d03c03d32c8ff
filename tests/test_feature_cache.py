"""Frozen features computed once (independent strategy): the head trained on cached features is the head trained
through the frozen encoder, for the same batches."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TINY_RECIPE
from umsrep.cli import main


def _fit(tmp_path, name, *sets):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    out = tmp_path / name
    assert main(["fit", str(recipe), "--out", str(out), "--set", "output.html=false",
                 "--set", "output.tensorboard=false", *sets]) == 0
    return out


def _heads(run):
    import keras

    import umsrep  # noqa: F401

    model = keras.models.load_model(run / "model.keras")
    return {n: [np.asarray(w) for w in model.get_layer(f"head_{n}").weights] for n in ("lesion", "diagnosis")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cache")
    return (_fit(tmp, "cached", "--set", "strategy.feature_cache=true"),
            _fit(tmp, "through", "--set", "strategy.feature_cache=false"))


def test_cached_features_train_the_same_head(runs, capsys):
    cached, through = (_heads(r) for r in runs)
    for name in cached:
        for a, b in zip(cached[name], through[name]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_the_cache_is_used_and_said(tmp_path, capsys):
    _fit(tmp_path, "c", "--set", "tasks.lesion.epochs=1", "--set", "tasks.diagnosis.epochs=1")
    err = capsys.readouterr()
    assert "features computed once" in err.out + err.err


def test_augmented_heads_train_through_the_encoder_unless_views_are_cached(tmp_path, capsys):
    _fit(tmp_path, "a", "--set", "data.augment=light", "--set", "tasks.lesion.epochs=1",
         "--set", "tasks.diagnosis.epochs=1")
    text = "".join(capsys.readouterr())
    assert "trains through the frozen encoder" in text and "features computed once" not in text
    _fit(tmp_path, "b", "--set", "data.augment=light", "--set", "strategy.cache_views=2",
         "--set", "tasks.lesion.epochs=2", "--set", "tasks.diagnosis.epochs=1")
    assert "2 view(s)" in "".join(capsys.readouterr())


def test_over_the_budget_falls_back_with_a_message(tmp_path, capsys):
    _fit(tmp_path, "m", "--set", "strategy.cache_max_gb=0.00001", "--set", "tasks.lesion.epochs=1",
         "--set", "tasks.diagnosis.epochs=1")
    assert "> strategy.cache_max_gb" in "".join(capsys.readouterr())


def test_views_cycle_per_epoch():
    import tensorflow as tf

    from umsrep.data.pipeline import train_dataset

    n, views = 4, 3
    x = np.concatenate([np.arange(n) + 100 * v for v in range(views)]).astype(np.float32)
    ds = train_dataset(x, x, batch_size=n, seed=5, views=views)
    seen = [sorted(np.asarray(b[0]).tolist()) for b in ds.take(4)]
    assert seen == [[100 * (e % views) + i for i in range(n)] for e in range(4)]
    plain = [np.asarray(b[0]) for b in train_dataset(x[:n], x[:n], batch_size=n, seed=5).take(2)]
    assert [sorted(p.tolist()) for p in plain] == [list(range(n))] * 2
    assert tf.is_tensor(next(iter(ds))[0])
