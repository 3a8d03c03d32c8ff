"""Recipe validation: every bad recipe gives one line naming the file and field, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from umsrep.cli import main
from umsrep.errors import RecipeError
from umsrep.recipe import apply_overrides, load_recipe, parse_recipe

REPO = Path(__file__).resolve().parent.parent

GOOD = {
    "name": "t", "seed": 1, "modality": "ultrasound",
    "data": {"root": "/data/x", "image_size": 64},
    "tasks": {"lesion": {"type": "segmentation", "classes": ["lesion"]},
              "dx": {"type": "classification", "classes": ["a", "b"]}},
}


def _with(path, value):
    raw = yaml.safe_load(yaml.safe_dump(GOOD))
    node = raw
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return raw


_DELETE = object()

BAD = [
    ("data.split.test", 1.5, "data.split.test: a fraction must be in [0, 1)"),
    ("data.image_size", [64], "data.image_size: expected an integer or [height, width]"),
    ("data.normalization", "max", "data.normalization: Input should be 'none', 'image_mean'"),
    ("data.colour", 3, "data.colour: unknown field"),
    ("name", _DELETE, "name: required field is missing"),
    ("tasks.dx.type", "detection", "tasks.dx.type: Input should be 'segmentation' or 'classification'"),
    ("tasks.dx.classes", ["a"], "tasks.dx: a classification task needs at least 2 classes"),
    ("tasks.lesion.classes", ["rv", "lv"], "tasks.lesion: a segmentation task with several classes needs mask_classes"),
    ("tasks.lesion.loss", "focal", "tasks.lesion.loss.name: Input should be 'auto', 'dice_ce'"),
    ("representation.kind", "vae",
     "representation.kind: Input should be 'attention_dcm', 'deeplab', 'denoising_autoencoder'"),
    ("representation.noise", [{"kind": "gaussian", "levels": [-1]}],
     "representation.noise[0].levels: noise levels must be > 0"),
    ("representation.epochs", 0, "representation.epochs: Input should be greater than or equal to 1"),
    ("strategy.kind", "sequential", "strategy.kind: Input should be 'alternating', 'independent', 'joint'"),
    ("data.split.fold", 3, "data.split: fold must be < folds (2)") ,
]


@pytest.mark.parametrize("path,value,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_recipe_message(path, value, expected):
    raw = _with(path, value)
    if path == "data.split.fold":
        raw["data"]["split"]["folds"] = 2
    with pytest.raises(RecipeError) as e:
        parse_recipe(raw, "r.yaml")
    msg = str(e.value)
    assert msg.startswith("r.yaml: ") and "\n" not in msg
    assert expected in msg, msg


def test_good_recipe_defaults():
    r = parse_recipe(GOOD)
    assert r.data.image_size == (64, 64)
    assert r.representation.kind == "denoising_autoencoder"
    assert r.representation.optimizer.name == "rmsprop" and r.representation.batch_size == 16
    assert r.tasks["dx"].loss.name == "auto"
    assert r.strategy.kind == "independent"


def test_supervised_needs_classification_task():
    raw = _with("representation.kind", "supervised")
    del raw["tasks"]["dx"]
    with pytest.raises(RecipeError, match="r.yaml: representation.kind: supervised needs a classification task"):
        parse_recipe(raw, "r.yaml")
    raw = _with("representation", {"kind": "supervised", "task": "lesion"})
    with pytest.raises(RecipeError, match="r.yaml: representation.task: must name a classification task"):
        parse_recipe(raw, "r.yaml")


def test_task_data_override_validated():
    raw = _with("tasks.dx.data", {"image_size": "big"})
    with pytest.raises(RecipeError, match="tasks.dx.data: image_size"):
        parse_recipe(raw, "r.yaml")
    raw = _with("tasks.dx.data", {"root": "/other", "labels": "l.csv"})
    r = parse_recipe(raw)
    assert r.task_data("dx").root == "/other" and r.task_data("lesion").root == "/data/x"


def test_relative_roots_resolve_next_to_the_recipe(tmp_path, monkeypatch):
    """Every data root a recipe names (the section's, a task's own, a representation's extra data set) is found next
    to the recipe file when it does not exist from the working directory; absolute roots stay as they are."""
    from umsrep.recipe import resolve_paths

    raw = _with("data.root", "busi")
    raw["tasks"]["dx"]["data"] = {"root": "muscle", "split": {"file": "split.csv"}}
    raw["representation"] = {"kind": "denoising_autoencoder", "extra_data": [{"root": "extra"}, {"root": "/abs/x"}]}
    monkeypatch.chdir(tmp_path)
    r = resolve_paths(parse_recipe(raw), tmp_path / "recipes")
    assert r.data.root == str(tmp_path / "recipes" / "busi")
    assert r.task_data("dx").root == str(tmp_path / "recipes" / "muscle")
    assert r.task_data("dx").split.file == str(tmp_path / "recipes" / "split.csv")
    assert [d.root for d in r.extra_representation_data()] == [str(tmp_path / "recipes" / "extra"), "/abs/x"]
    (tmp_path / "muscle").mkdir()   # found from the working directory: taken from there, as the section's root is
    assert resolve_paths(parse_recipe(raw), tmp_path / "recipes").task_data("dx").root == str(tmp_path / "muscle")


def test_env_expansion(monkeypatch):
    monkeypatch.setenv("MYDATA", "/mnt/d")
    r = parse_recipe(_with("data.root", "${MYDATA}/busi"))
    assert r.data.root == "/mnt/d/busi"
    r = parse_recipe(_with("data.root", "${NOPE_NOT_SET:-/fallback}/x"))
    assert r.data.root == "/fallback/x"
    monkeypatch.setenv("UMSREP_DATA", "/shared")
    assert parse_recipe(_with("data.root", "${UMSREP_DATA}/acdc")).data.root == "/shared/acdc"
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(RecipeError, match=r"data.root: environment variable NOPE_NOT_SET is not set"):
        parse_recipe(_with("data.root", "${NOPE_NOT_SET}/x"), "r.yaml")


def test_overrides():
    raw = apply_overrides(GOOD, ["representation.epochs=3", "data.image_size=[32, 48]", "tasks.dx.head.units=8"])
    r = parse_recipe(raw)
    assert r.representation.epochs == 3 and r.data.image_size == (32, 48) and r.tasks["dx"].head.units == 8
    assert "representation" not in GOOD  # the original is untouched
    with pytest.raises(RecipeError, match="expected key.path=value"):
        apply_overrides(GOOD, ["representation.epochs"])
    with pytest.raises(RecipeError, match="'root' is not a section"):
        apply_overrides(GOOD, ["data.root.x=1"])


def test_load_recipe_file_errors(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: [unclosed\n")
    with pytest.raises(RecipeError, match=r"bad.yaml: invalid YAML at line \d+"):
        load_recipe(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="expected a YAML mapping"):
        load_recipe(lst)


def test_shipped_recipes_validate():
    files = sorted((REPO / "recipes").rglob("*.yaml"))
    assert any(f.parent.name == "pretrain" for f in files)
    from umsrep.recipe import dump_recipe

    for f in files:
        r = load_recipe(f)
        assert r.name and r.tasks, f
        # the resolved recipe a run writes (every default filled in) loads again to the same recipe
        assert parse_recipe(yaml.safe_load(dump_recipe(r)), str(f)) == r, f


def test_loss_names_match_registry():
    from typing import get_args

    from umsrep.models.losses import LOSSES
    from umsrep.recipe import LossName

    assert set(get_args(LossName)) == set(LOSSES.names()) - {"mse"}


def test_cli_bad_recipe_exit_2_one_line(tmp_path, capsys):
    f = tmp_path / "r.yaml"
    f.write_text(yaml.safe_dump(_with("data.split.val", "lots")))
    assert main(["validate", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("umsrep: error: ") and "data.split.val" in err
    assert main(["fit", str(f), "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()  # nothing written for a bad recipe


def test_cli_subprocess_no_traceback(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text(yaml.safe_dump(_with("tasks.dx.classes", "notalist")))
    p = subprocess.run([sys.executable, "-m", "umsrep", "validate", str(f)], capture_output=True, text=True,
                       cwd=REPO)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0
    assert "tasks.dx.classes" in p.stderr


def test_help_does_not_import_tensorflow():
    code = "import sys, umsrep.cli as c; c.build_parser(); import umsrep.recipe; print('tensorflow' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert p.stdout.strip() == "False", p.stderr


def test_runs_written_before_k_fold_still_load():
    raw = _with("data.split.fold", 0)
    raw["data"]["split"].pop("folds", None)
    assert parse_recipe(raw).data.split.fold is None
