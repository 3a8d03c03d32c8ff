"""Fine-tuning strategies and loss weighting: which variables each step updates, and each weighting method."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from umsrep.data import pipeline
from umsrep.models import ENCODERS, HEADS
from umsrep.models.losses import build_loss
from umsrep.models.pyramid import attach, attach_one, pyramid_spec
from umsrep.recipe import TaskConfig
from umsrep.registry import WEIGHTINGS
from umsrep.train.engine import SingleTask, TaskStream, make_optimizer, run_stage
from umsrep.train.strategies.alternating import Alternating, alternating_schedule
from umsrep.train.strategies.joint import Joint
from umsrep.train.weighting import make_weighting, pcgrad_project, weighting_settings

QUIET = dict(log=lambda *_: None)


def _toy(n=16, size=16, seed=0):
    """Encoder + a segmentation and a classification head on tiny random data."""
    keras.utils.set_random_seed(seed)
    enc = ENCODERS.get("denoising_autoencoder").build((size, size, 1), filters=[4, 4, 8, 8])
    spec = pyramid_spec(enc)
    heads = {"seg": HEADS.get("segmentation").build(spec, (size, size), name="seg", n_classes=1, filters=[8, 4, 4, 4]),
             "cls": HEADS.get("classification").build(spec, (size, size), name="cls", n_classes=2, units=4)}
    rng = np.random.default_rng(seed)
    x = rng.random((n, size, size, 1), np.float32)
    data = {"seg": (x, (x[..., 0] > 0.5).astype(np.int32)),
            "cls": (x, (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.int32))}
    cfgs = {"seg": TaskConfig(type="segmentation", classes=["fg"], batch_size=8),
            "cls": TaskConfig(type="classification", classes=["a", "b"], batch_size=8)}
    return enc, heads, data, cfgs


def _stream(name, enc, heads, data, cfgs, steps=2, seed=0):
    x, y = data[name]
    cfg = cfgs[name]
    return TaskStream(name, attach_one(enc, heads[name]), build_loss(cfg.type, cfg.loss),
                      pipeline.train_dataset(x, y, batch_size=8, seed=seed), steps,
                      pipeline.eval_dataset(x, y, batch_size=8), 2, heads[name].trainable_variables)


def _snapshot(model):
    return [np.array(w) for w in model.get_weights()]


def _changed(before, model):
    return any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_independent_keeps_frozen_encoder_bit_identical():
    enc, heads, data, cfgs = _toy()
    enc.trainable = False
    before_enc, before_head = _snapshot(enc), _snapshot(heads["cls"])
    s = _stream("cls", enc, heads, data, cfgs)
    cfg = TaskConfig(type="classification", classes=["a", "b"], epochs=2, batch_size=8)
    res = run_stage(SingleTask("cls", s, s.head_variables, make_optimizer(cfg.optimizer)), cfg, **QUIET)
    assert res.epochs_run == 2 and len(res.history) == 2
    for a, b in zip(before_enc, enc.get_weights()):
        np.testing.assert_array_equal(a, b)  # incl. BatchNorm statistics
    assert _changed(before_head, heads["cls"])
    assert res.trainable_params == heads["cls"].count_params()


def test_alternating_updates_encoder_and_active_head_only_and_switches_at_ratio():
    enc, heads, data, cfgs = _toy()
    streams = [_stream("seg", enc, heads, data, cfgs, steps=4), _stream("cls", enc, heads, data, cfgs, steps=2)]
    model = attach(enc, heads)
    tr = Alternating("alt", streams, enc.trainable_variables,
                     {"seg": keras.optimizers.Adam(1e-2), "cls": keras.optimizers.Adam(1e-2)}, model,
                     ratios={"seg": 2, "cls": 1})
    assert tr.schedule == [("seg", 2), ("cls", 1)]
    order = []
    for _ in range(6):
        b_enc, b_seg, b_cls = _snapshot(enc), _snapshot(heads["seg"]), _snapshot(heads["cls"])
        task, loss = tr.step()
        order.append(task)
        assert np.isfinite(loss)
        assert _changed(b_enc, enc), "the encoder is updated on every alternating batch"
        assert _changed(b_seg, heads["seg"]) == (task == "seg")
        assert _changed(b_cls, heads["cls"]) == (task == "cls")
    assert order == ["seg", "seg", "cls", "seg", "seg", "cls"]


def test_alternating_epoch_runs_all_steps_and_counts_batches():
    enc, heads, data, cfgs = _toy()
    streams = [_stream("seg", enc, heads, data, cfgs, steps=4), _stream("cls", enc, heads, data, cfgs, steps=2)]
    tr = Alternating("alt", streams, enc.trainable_variables,
                     {"seg": keras.optimizers.Adam(), "cls": keras.optimizers.Adam()}, attach(enc, heads))
    logs = tr.train_epoch()
    assert tr.trace == ["seg", "seg", "cls", "seg", "seg", "cls"]  # auto ratios 4:2 -> 2:1
    assert logs["batches/seg"] == 4 and logs["batches/cls"] == 2


def test_auto_ratios_follow_training_set_sizes():
    class S:
        def __init__(self, name, steps):
            self.name, self.steps_per_epoch = name, steps

    assert alternating_schedule([S("a", 30), S("b", 10), S("c", 15)], "auto") == [("a", 3), ("b", 1), ("c", 2)]
    assert alternating_schedule([S("a", 30), S("b", 10)], {"b": 4}) == [("a", 1), ("b", 4)]


@pytest.mark.parametrize("method", WEIGHTINGS.names())
def test_joint_updates_encoder_and_every_head(method):
    enc, heads, data, cfgs = _toy()
    streams = [_stream("seg", enc, heads, data, cfgs), _stream("cls", enc, heads, data, cfgs)]
    model = attach(enc, heads)
    w = make_weighting(weighting_settings(method), ["seg", "cls"])
    tr = Joint("joint", streams, enc.trainable_variables, keras.optimizers.Adam(1e-2), w, model)
    before = {k: _snapshot(m) for k, m in (("enc", enc), *heads.items())}
    cfg = TaskConfig(type="classification", classes=["a", "b"], epochs=3)
    res = run_stage(tr, cfg, **QUIET)
    for k, m in (("enc", enc), *heads.items()):
        assert _changed(before[k], m), k
    last = res.history[-1]
    for t in ("seg", "cls"):
        assert np.isfinite(last[f"loss/{t}"]) and np.isfinite(last[f"weight/{t}"])
        assert last[f"weighted_loss/{t}"] == pytest.approx(last[f"weight/{t}"] * last[f"loss/{t}"])
    assert last["loss"] == pytest.approx(last["weighted_loss/seg"] + last["weighted_loss/cls"])


@pytest.mark.parametrize("method", ["fixed", "pcgrad"])
def test_joint_shared_batches_match_per_task_batches(method):
    """Tasks labelled on the same images: one shared batch per step (encoder run once) gives the same losses and
    the same weight updates as a batch per task when those batches hold the same images (BatchNorm's moving
    statistics aside, which the per-task path updates once per task)."""
    runs = {}
    for shared_mode in (False, True):
        enc, heads, data, cfgs = _toy()
        streams = [_stream("seg", enc, heads, data, cfgs), _stream("cls", enc, heads, data, cfgs)]
        model = attach(enc, heads)
        x = data["seg"][0]
        shared = pipeline.train_dataset(x, {"seg": data["seg"][1], "cls": data["cls"][1]}, batch_size=8,
                                        seed=0) if shared_mode else None
        tr = Joint("joint", streams, enc.trainable_variables, keras.optimizers.SGD(0.1),
                   make_weighting(weighting_settings(method), ["seg", "cls"]), model, shared_batches=shared)
        logs = tr.train_epoch()
        moving = {v.path for v in model.non_trainable_variables}
        runs[shared_mode] = (logs, {v.path: v.numpy() for v in model.variables if v.path not in moving}, tr)
    (a, wa, ta), (b, wb, tb) = runs[False], runs[True]
    assert tb.consumed["__shared__"] == 2 and tb.consumed["seg"] == 0 and ta.consumed["seg"] == 2
    for t in ("seg", "cls"):
        assert b[f"loss/{t}"] == pytest.approx(a[f"loss/{t}"], rel=1e-5)
    for k in wa:
        np.testing.assert_allclose(wb[k], wa[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_fixed_weights_come_from_the_recipe():
    w = make_weighting(weighting_settings("fixed", weights={"seg": 20.0}), ["seg", "cls"])
    assert w.state() == {"seg": 20.0, "cls": 1.0}
    assert float(w.objective(tf.constant([0.5, 2.0]))) == pytest.approx(12.0)


def test_uncertainty_lowers_the_weight_of_the_noisier_task():
    w = make_weighting(weighting_settings("uncertainty"), ["big", "small"])
    losses = tf.constant([5.0, 0.2])
    opt = keras.optimizers.SGD(0.05)
    for _ in range(20):
        with tf.GradientTape() as tape:
            obj = w.objective(losses)
        opt.apply_gradients(zip(tape.gradient(obj, w.trainable_variables), w.trainable_variables))
    s = w.state()
    assert s["big"] < 1.0 < s["small"]
    # the optimum of exp(-s) L + s is s = log L, i.e. weight 1 / L: moving towards it
    assert abs(1 / s["big"] - 5.0) < abs(1.0 - 5.0)


def test_pcgrad_projects_conflicting_gradients_by_hand():
    g = np.array([[1.0, 0.0], [-1.0, 1.0]], np.float32)     # dot = -1: conflict
    out = pcgrad_project(g).numpy()
    np.testing.assert_allclose(out[0], [0.5, 0.5], atol=1e-6)  # g1 - (g1.g2 / |g2|^2) g2
    np.testing.assert_allclose(out[1], [0.0, 1.0], atol=1e-6)  # g2 - (g2.g1 / |g1|^2) g1
    assert float(out[0] @ g[1]) == pytest.approx(0.0, abs=1e-6)  # no longer conflicting
    agree = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
    np.testing.assert_allclose(pcgrad_project(agree).numpy(), agree)  # no conflict: untouched


def test_dwa_favours_the_task_whose_loss_falls_slowest():
    w = make_weighting(weighting_settings("dwa", temperature=2.0), ["slow", "fast"])
    w.on_epoch_end({"slow": 1.0, "fast": 1.0})
    assert w.state() == {"slow": 1.0, "fast": 1.0}          # needs two epochs of history
    w.on_epoch_end({"slow": 0.95, "fast": 0.5})
    s = w.state()
    assert s["slow"] > 1.0 > s["fast"]
    assert s["slow"] + s["fast"] == pytest.approx(2.0)
    r = np.array([0.95, 0.5])
    expected = 2 * np.exp(r / 2) / np.exp(r / 2).sum()
    np.testing.assert_allclose([s["slow"], s["fast"]], expected, rtol=1e-5)


def test_gradnorm_shrinks_the_weight_of_the_task_with_the_larger_gradient():
    shared = tf.Variable([[1.0, -0.5], [0.3, 0.8]])
    w = make_weighting(weighting_settings("gradnorm", alpha=1.5, learning_rate=0.1), ["loud", "quiet"])
    w.build([shared], {"loud": [], "quiet": []})
    x = tf.constant([[1.0, 2.0]])
    for _ in range(3):
        with tf.GradientTape(persistent=True) as tape:
            h = tf.matmul(x, shared)
            losses = [10.0 * tf.reduce_sum(h ** 2), 0.1 * tf.reduce_sum(h ** 2)]
            objective = w.objective(tf.stack(losses))
        grads = w.gradients(tape, losses, objective, [shared], {"loud": [], "quiet": []}, [])
        assert grads[0] is not None
    s = w.state()
    assert s["loud"] < 1.0 < s["quiet"]
    assert s["loud"] + s["quiet"] == pytest.approx(2.0, rel=1e-5)   # renormalised to the number of tasks


def test_unknown_weighting_and_task_names_are_recipe_errors():
    from umsrep.errors import RecipeError
    from umsrep.recipe import parse_recipe

    base = {"name": "r", "modality": "us", "data": {"root": "/x"},
            "tasks": {"a": {"type": "classification", "classes": ["x", "y"]}}}
    with pytest.raises(RecipeError, match=r"strategy.weighting.method: Input should be 'dwa', 'fixed'"):
        parse_recipe({**base, "strategy": {"kind": "joint", "weighting": {"method": "magic"}}})
    with pytest.raises(RecipeError, match=r"strategy.ratios: unknown task 'b'"):
        parse_recipe({**base, "strategy": {"kind": "alternating", "ratios": {"b": 2}}})
    with pytest.raises(RecipeError, match=r"strategy.weighting.weights: unknown task 'zz'"):
        parse_recipe({**base, "strategy": {"kind": "joint", "weighting": {"weights": {"zz": 1}}}})


def test_fixed_joint_weights_also_weigh_the_monitored_loss():
    """With fixed weights, early stopping watches the weighted sum of normalised validation losses; learned
    weightings (which move every epoch) and single trainers watch the plain sum."""
    from umsrep.train.engine import _normalised

    enc, heads, data, cfgs = _toy()
    streams = [_stream("seg", enc, heads, data, cfgs), _stream("cls", enc, heads, data, cfgs)]
    w = make_weighting(weighting_settings("fixed", weights={"seg": 1.0, "cls": 0.25}), ["seg", "cls"])
    tr = Joint("joint", streams, enc.trainable_variables, keras.optimizers.SGD(0.1), w, attach(enc, heads))
    assert tr.monitor_weights() == {"seg": 1.0, "cls": 0.25}
    first, now = {"seg": 2.0, "cls": 1.0}, {"seg": 1.0, "cls": 3.0}
    assert _normalised(now, first, now, tr.monitor_weights()) == pytest.approx(0.5 + 0.75)
    assert _normalised(now, first, now) == pytest.approx(0.5 + 3.0)
    dwa = Joint("joint", streams, enc.trainable_variables, keras.optimizers.SGD(0.1),
                make_weighting(weighting_settings("dwa"), ["seg", "cls"]), attach(enc, heads))
    assert dwa.monitor_weights() == {}
