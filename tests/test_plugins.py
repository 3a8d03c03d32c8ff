"""The plug-in structure: recipe sections validated by each plug-in's own settings, a new head / weighting /
learning-rate schedule added without editing the recipe schema or fit.py, custom Keras objects registered by
``import umsrep``, and no import cycles inside the package."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Literal

import numpy as np
import pytest
import yaml
from pydantic import Field

from umsrep.cli import main
from umsrep.errors import RecipeError
from umsrep.recipe import dump_recipe, parse_recipe
from umsrep.registry import HEADS, SCHEDULES, WEIGHTINGS
from umsrep.settings import HeadSettings, ScheduleSettings, WeightingSettings

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "recipes" / "quickstart.yaml"
BASE = {"name": "t", "modality": "us", "data": {"synthetic": {"n": 24}, "image_size": 16},
        "representation": {"filters": [4, 4, 8, 8], "epochs": 1},
        "tasks": {"lesion": {"type": "segmentation", "classes": ["lesion"]},
                  "dx": {"type": "classification", "classes": ["a", "b"]}}}


def _raw(**sections):
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    for path, value in sections.items():
        node = raw
        keys = path.split("__")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return raw


def _error(raw) -> str:
    with pytest.raises(RecipeError) as e:
        parse_recipe(raw, "r.yaml")
    assert "\n" not in str(e.value)
    return str(e.value)


# ------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("override,field", [
    ("tasks.diagnosis.head.kind=deeplab_segmentation", "tasks.diagnosis.head.kind"),   # wrong task type
    ("tasks.lesion.head.kind=mmanet_classification", "tasks.lesion.head.kind"),
    ("tasks.lesion.head.kind=denoise", "tasks.lesion.head.kind"),                      # not a task head
    ("tasks.diagnosis.head.kind=unet", "tasks.diagnosis.head.kind"),                   # not registered
    ("tasks.diagnosis.head.branch_level=2", "tasks.diagnosis.head.branch_level"),      # mmanet's, not the GAP head's
    ("representation.aspp=false", "representation.aspp"),                              # mmanet's, not the DAE's
    ("representation.dilation=3", "representation.dilation"),                          # the dilated CNN's
    ("strategy.weighting.temperature=3", "strategy.weighting.temperature"),            # dwa's, not fixed's
    ("strategy.lr_schedule.kind=cyclic", "strategy.lr_schedule.kind"),
])
def test_validate_refuses_a_setting_of_another_plugin_naming_the_field(override, field, capsys):
    assert main(["validate", str(QUICKSTART), "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f": {field}: " in err, err


def test_strategy_fields_belong_to_a_strategy_in_use():
    assert "strategy: ratios: only the alternating strategy uses it" in _error(_raw(strategy={"ratios": {"dx": 2}}))
    r = parse_recipe(_raw(strategy={"kind": "independent", "compare": ["alternating"], "ratios": {"dx": 2}}))
    assert r.strategy.settings_of("alternating").ratios == {"dx": 2}
    assert "strategy.compare[0]: Input should be" in _error(_raw(strategy={"compare": ["sequential"]}))
    assert "strategy.speed: unknown field" in _error(_raw(strategy={"speed": 2}))


def test_auto_head_is_the_encoder_architectures_own_and_written_back_as_auto():
    r = parse_recipe(_raw(representation={"kind": "mmanet", "train": "denoising"},
                          tasks__dx__head={"units": 8, "connection": False}))
    head = r.tasks["dx"].head
    assert (head.kind, head.units, head.connection) == ("mmanet_classification", 8, False)
    assert r.tasks["lesion"].head.kind == "mmanet_segmentation"
    again = parse_recipe(yaml.safe_load(dump_recipe(r)))
    assert yaml.safe_load(dump_recipe(r))["tasks"]["dx"]["head"]["kind"] == "auto"
    assert again.tasks["dx"].head == head
    # the standard heads for an architecture without its own; a field of the other head is refused
    assert "tasks.dx.head.connection: unknown field" in _error(_raw(tasks__dx__head={"connection": False}))


def test_auto_head_of_a_loaded_encoder_is_resolved_for_its_architecture():
    from umsrep.recipe import task_head

    r = parse_recipe(_raw(representation={"kind": "pretrained", "name": "us-supervised"},
                          strategy={"kind": "joint"}, tasks__dx__head={"units": 8}))
    assert r.tasks["dx"].head.kind == "auto"                   # the architecture is known once the card is read
    assert task_head("dx", r.tasks["dx"], "supervised").units == 8
    r2 = parse_recipe(_raw(representation={"kind": "pretrained", "name": "x"}, strategy={"kind": "joint"},
                           tasks__dx__head={"aspp_rates": [1, 2]}))
    with pytest.raises(RecipeError, match=r"tasks\.dx\.head\.aspp_rates: unknown field"):
        task_head("dx", r2.tasks["dx"], "denoising_autoencoder")


def test_recipes_written_before_the_split_still_load():
    """A run directory's recipe.yaml of the previous layout repeated every architecture's and method's fields."""
    old = _raw()
    old["representation"].update({"name": None, "aspp": True, "aspp_rates": [1, 6, 12, 18], "kernel_size": 3,
                                  "dilation": 2, "dilated_layers": [4, 5, 6], "pool_after": [1, 2, 3]})
    for t in old["tasks"].values():
        t["head"] = {"filters": None, "skips": False, "units": 128, "dropout": 0.5, "kind": "auto", "attention": True,
                     "connection": True, "branch_level": 3, "aspp_rates": [6, 12, 18, 24]}
        t["lr_schedule"] = {"kind": "constant", "factor": 0.5, "patience": 3, "min_lr": 1e-6}
    old["strategy"] = {"kind": "independent", "ratios": "auto",
                       "weighting": {"method": "fixed", "weights": None, "alpha": 1.5, "learning_rate": 0.025,
                                     "temperature": 2.0}}
    assert dump_recipe(parse_recipe(old)) == dump_recipe(parse_recipe({
        **_raw(), "tasks": {n: {**t, "lr_schedule": {"kind": "constant"}} for n, t in _raw()["tasks"].items()}}))
    old["representation"]["aspp"] = False       # a value that meant something is not dropped silently
    assert "representation.aspp: unknown field" in _error(old)


# ------------------------------------------------------------------------------------------- new plug-ins
class ToyHead(HeadSettings):
    kind: Literal["toy_classification"] = "toy_classification"
    units: int = Field(4, ge=1)


def build_toy_head(s, spec, input_size, *, name, n_classes):
    import keras

    deepest = len(spec) - 1
    inp = keras.Input(shape=spec[deepest], name=f"p{deepest}")
    x = keras.layers.GlobalMaxPooling2D(name=f"{name}_gmp")(inp)
    x = keras.layers.Dense(s.units, activation="relu", name=f"{name}_hidden")(x)
    out = keras.layers.Dense(n_classes, activation="softmax", dtype="float32", name=f"{name}_probs")(x)
    return keras.Model(inp, out, name=f"head_{name}")


@pytest.fixture
def toy_head():
    from umsrep.models import Head

    HEADS.register("toy_classification", Head(ToyHead, "tests.test_plugins:build_toy_head", ("classification",)))
    yield
    HEADS.unregister("toy_classification")


def test_a_new_head_is_a_registration_and_a_builder(toy_head):
    from umsrep.models.pyramid import attach, pyramid_spec
    from umsrep.train.fit import build_encoder, build_head

    r = parse_recipe(_raw(tasks__dx__head={"kind": "toy_classification", "units": 3}))
    assert r.tasks["dx"].head.units == 3
    assert "tasks.lesion.head.kind: a head for classification tasks" in _error(
        _raw(tasks__lesion__head={"kind": "toy_classification"}))
    enc = build_encoder(r, 0.0, 1.0)
    head = build_head("dx", r.tasks["dx"], pyramid_spec(enc), (16, 16), r.representation.kind)
    assert head.get_layer("dx_hidden").units == 3
    out = attach(enc, {"dx": head})(np.zeros((2, 16, 16, 1), "float32"))
    assert tuple(out["dx"].shape) == (2, 2)


class Mean(WeightingSettings):
    method: Literal["toy_mean"] = "toy_mean"
    scale: float = Field(1.0, gt=0)


@pytest.fixture
def toy_weighting():
    from umsrep.lazy import tf
    from umsrep.train.weighting import Weighting

    class ToyMean(Weighting):
        Settings = Mean

        def objective(self, losses):
            return self.cfg.scale * tf.reduce_mean(losses)

        def state(self):
            return {t: self.cfg.scale / len(self.tasks) for t in self.tasks}

    WEIGHTINGS.register("toy_mean", ToyMean)
    yield ToyMean
    WEIGHTINGS.unregister("toy_mean")


def test_a_new_weighting_is_one_class_validated_from_the_recipe_and_trained_jointly(toy_weighting):
    from tests.test_strategies import QUIET, _snapshot, _stream, _toy
    from umsrep.models.pyramid import attach
    from umsrep.recipe import TaskConfig
    from umsrep.train.engine import run_stage
    from umsrep.train.strategies.joint import Joint
    from umsrep.train.weighting import make_weighting

    r = parse_recipe(_raw(strategy={"kind": "joint", "weighting": {"method": "toy_mean", "scale": 2.0}}))
    assert isinstance(r.strategy.weighting, Mean) and r.strategy.weighting.scale == 2.0
    assert "strategy.weighting.temperature: unknown field" in _error(
        _raw(strategy={"kind": "joint", "weighting": {"method": "toy_mean", "temperature": 3.0}}))
    import keras

    enc, heads, data, cfgs = _toy()
    streams = [_stream("seg", enc, heads, data, cfgs), _stream("cls", enc, heads, data, cfgs)]
    w = make_weighting(r.strategy.weighting, ["seg", "cls"])
    assert isinstance(w, toy_weighting)
    before = _snapshot(enc)
    res = run_stage(Joint("joint", streams, enc.trainable_variables, keras.optimizers.Adam(1e-2), w,
                          attach(enc, heads)), TaskConfig(type="classification", classes=["a", "b"], epochs=2), **QUIET)
    last = res.history[-1]
    assert last["weight/seg"] == last["weight/cls"] == 1.0
    assert last["loss"] == pytest.approx(last["loss/seg"] + last["loss/cls"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, enc.get_weights()))


def test_a_new_learning_rate_schedule_is_one_class(tmp_path):
    from tests.test_strategies import QUIET, _stream, _toy
    from umsrep.recipe import TaskConfig
    from umsrep.train.engine import SingleTask, make_optimizer, run_stage
    from umsrep.train.schedules import Schedule

    class Halve(Schedule):
        class Settings(ScheduleSettings):
            kind: Literal["toy_halve"] = "toy_halve"
            start: int = 2

        def on_epoch_begin(self, epoch, lr):
            return self.initial_lr * 0.5 ** max(0, epoch - self.settings.start + 1)

    SCHEDULES.register("toy_halve", Halve)
    try:
        cfg = TaskConfig(type="classification", classes=["a", "b"], epochs=4, batch_size=8,
                         lr_schedule={"kind": "toy_halve", "start": 3}, optimizer={"learning_rate": 0.01})
        enc, heads, data, cfgs = _toy()
        s = _stream("cls", enc, heads, data, cfgs)
        res = run_stage(SingleTask("cls", s, s.head_variables, make_optimizer(cfg.optimizer)), cfg, **QUIET)
        assert [round(h["lr"], 6) for h in res.history] == [0.01, 0.01, 0.005, 0.0025]
    finally:
        SCHEDULES.unregister("toy_halve")


# ------------------------------------------------------------------------------------------- package hygiene
def _run(code):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def saved_encoder(tmp_path_factory):
    from umsrep.registry import ENCODERS

    path = tmp_path_factory.mktemp("enc") / "encoder.keras"
    ENCODERS.get("lightweight").build((16, 16, 1), filters=[4, 8]).save(path)
    return path


@pytest.mark.parametrize("order", ["import umsrep, keras", "import keras, umsrep"])
def test_import_umsrep_registers_the_custom_keras_objects(order, saved_encoder):
    """Normalize, FusedBatchNormalization and SoftThreshold load with plain keras.models.load_model."""
    p = _run(f"{order}\nm = keras.models.load_model({str(saved_encoder)!r})\n"
             "print(*(type(m.get_layer(n)).__name__ for n in ('normalize', 'enc1_bn', 'enc1_shrink')))\n"
             "p = keras.models.load_model('pretrained/us-cdae/encoder.keras')\n"
             "print(type(p.get_layer('normalize')).__name__)")
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["Normalize", "FusedBatchNormalization", "SoftThreshold", "Normalize"]


def test_without_import_umsrep_keras_cannot_load_them(saved_encoder):
    p = _run(f"import keras\nkeras.models.load_model({str(saved_encoder)!r})")
    assert p.returncode != 0 and "Normalize" in p.stderr


def test_recipe_validation_imports_no_tensorflow():
    p = _run("import sys\nfrom umsrep.recipe import load_recipe\n"
             "for f in ('recipes/quickstart.yaml', 'recipes/mmanet_busi.yaml', 'recipes/busi_strategies.yaml'):\n"
             "    load_recipe(f)\nprint('tensorflow' in sys.modules, 'keras' in sys.modules)")
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["False", "False"]


def _imports(path: Path, module: str) -> List[str]:
    """umsrep modules imported by a module (at any depth: imports inside functions count)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else ".".join(module.split(".")[:-node.level] + [node.module])
            out.append(base)
            out += [f"{base}.{a.name}" for a in node.names]
    return [m for m in out if m.startswith("umsrep")]


def test_no_import_cycles_inside_the_package():
    files = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (REPO / "umsrep").rglob("*.py")}
    graph = {m: sorted({i for i in _imports(p, m) if i in files and i != m}) for m, p in files.items()}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == "open":
                cycle = stack[stack.index(n):] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
