"""umsrep's own bad-input corpus (docs/reliability.md): every kind of bad or hostile input below, across fit,
validate, predict, explain, evaluate, export, report and pretrained, must give exit code 2, exactly one line
``umsrep: error: ...`` on stderr naming the problem, no traceback, and leave every file that existed before the
command byte-identical.

The cases run in-process through ``umsrep.cli.main`` (the error boundary), reusing the session's one tiny trained
run (``tiny_run``; a case that damages a run works on a copy). A few run ``python -m umsrep`` in a subprocess to check
the real exit code, the real stderr (no TensorFlow start-up lines) and what needs a process of its own (a file-size
limit, two fits racing for one folder).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import REPO_ROOT, TINY_RECIPE, write_dicom
from umsrep.cli import main
from umsrep.errors import RunDirError
from umsrep.rundir import RunDir

PIXELS_ENV = "UMSREP_MAX_IMAGE_PIXELS"


# -- helpers ------------------------------------------------------------------------------------------------------
def _snapshot(*roots) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest()
            for r in roots if Path(r).is_dir() for p in Path(r).rglob("*") if p.is_file()}


def _png(arr) -> bytes:
    ok, buf = cv2.imencode(".png", arr)
    assert ok
    return buf.tobytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(width, height) -> bytes:
    """A real, valid 8-bit gray PNG of width x height black pixels (a few hundred KB for 100 megapixels)."""
    comp, row, parts = zlib.compressobj(9), b"\0" * (width + 1), []
    block = row * max(1, (1 << 22) // len(row))
    rows_per_block = len(block) // len(row)
    done = 0
    while done < height:
        n = min(rows_per_block, height - done)
        parts.append(comp.compress(block if n == rows_per_block else row * n))
        done += n
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def _patch_jpeg_size(data: bytes, width, height) -> bytes:
    i = 2
    while i < len(data):
        assert data[i] == 0xFF
        marker, n = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            return data[:i + 5] + struct.pack(">HH", height, width) + data[i + 9:]
        i += 2 + n
    raise AssertionError("no SOF marker")


def _tiff_header(width, height) -> bytes:
    """A little-endian TIFF whose first directory declares width x height (and no strips: only the header)."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (262, 3, 1, 1)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II" + struct.pack("<HI", 42, 8) + ifd


def _lambda_model(path):
    import keras

    inp = keras.Input((32, 32, 1))
    keras.Model(inp, keras.layers.Lambda(lambda t: t * 2.0)(inp)).save(path)


def _crafted_model(path):
    """A .keras archive whose config names a Python built-in instead of a Keras class."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.0.0", "date_saved": "2024-01-01"}))
        z.writestr("config.json", json.dumps({"module": "builtins", "class_name": "eval",
                                              "config": "__import__('os').system('touch /tmp/pwned')",
                                              "registered_name": "eval"}))
        z.writestr("model.weights.h5", b"")


def _immutable(path: Path) -> bool:
    """Make ``path`` unwritable even for root: chmod, then (root) chattr +i; False when neither works here."""
    path.chmod(0o555)
    probe = path / ".probe"
    try:
        probe.write_text("x")
    except OSError:
        return True
    probe.unlink()
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        try:
            probe.write_text("x")
        except OSError:
            return True
        probe.unlink()
    return False


def _release(path: Path):
    if shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    path.chmod(0o755)


@dataclass
class Ctx:
    tmp: Path
    run: Path
    monkeypatch: pytest.MonkeyPatch
    registry: Path
    changes: set = field(default_factory=set)  # files a case may change (marked failed), relative to tmp
    cleanup: list = field(default_factory=list)

    def file(self, name, data) -> Path:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(data, bytes) else p.write_text)(data)
        return p

    def recipe(self, text, name="recipe.yaml") -> str:
        return str(self.file(name, text))

    def copy_run(self, name="run") -> Path:
        dst = self.tmp / name
        shutil.copytree(self.run, dst)
        return dst

    def image(self, name="img.png") -> Path:
        return self.file(name, _png(np.full((32, 32), 128, np.uint8)))

    def unwritable(self, name="locked") -> Path:
        d = self.tmp / name
        d.mkdir()
        self.cleanup.append(lambda: _release(d))
        if not _immutable(d):
            pytest.skip("cannot make a folder unwritable here (root without chattr)")
        return d

    def encoder(self, name, card: bytes) -> Path:
        d = self.registry / name
        d.mkdir(parents=True)
        (d / "encoder.keras").write_bytes(b"not really a model")
        (d / "card.yaml").write_bytes(card)
        return d


GOOD_CARD = b"""name: good
sha256: %s
modality: ultrasound
preprocessing: {kind: denoising_autoencoder, image_size: [32, 32], channels: 1, normalization: dataset}
training: {how: denoising, data: synthetic}
""" % hashlib.sha256(b"not really a model").hexdigest().encode()


def _bomb():
    s = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 10):
        s += f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join(['*' + chr(96 + i)] * 9)}]\n"
    return s + TINY_RECIPE.replace("name: tiny", "")


CASES = []


def case(cid, expect):
    def register(build):
        CASES.append(pytest.param(build, expect, id=cid))
        return build
    return register


# -- recipes: validate / fit ----------------------------------------------------------------------------------------
case("validate-recipe-not-utf8", "recipe is not UTF-8 text (byte 0xff at line 2)")(
    lambda c: ["validate", c.recipe(b"name: tiny\n# caf\xff\n" + TINY_RECIPE.encode().replace(b"name: tiny", b""))])
case("fit-recipe-not-utf8", "is not UTF-8")(
    lambda c: ["fit", c.recipe(TINY_RECIPE.encode() + b"# \xfe\xff\n")])
case("validate-yaml-alias-bomb", "aliases")(lambda c: ["validate", c.recipe(_bomb())])
case("fit-yaml-alias-bomb", "aliases")(lambda c: ["fit", c.recipe(_bomb()), "--out", str(c.tmp / "out")])
case("validate-duplicate-key", "duplicate key 'seed' (first at line 3)")(
    lambda c: ["validate", c.recipe(TINY_RECIPE + "seed: 4\n")])
case("validate-duplicate-nested-key", "duplicate key 'epochs'")(
    lambda c: ["validate", c.recipe(TINY_RECIPE.replace("  epochs: 2\n", "  epochs: 2\n  epochs: 3\n", 1))])
case("validate-recipe-missing", "recipe file not found")(lambda c: ["validate", str(c.tmp / "nope.yaml")])
case("validate-recipe-is-folder", "is a folder")(lambda c: ["validate", str(c.tmp)])
case("validate-invalid-yaml", "invalid YAML at line 2")(lambda c: ["validate", c.recipe("name: [unclosed\n")])
case("validate-top-level-list", "expected a YAML mapping")(lambda c: ["validate", c.recipe("- a\n- b\n")])
case("validate-unknown-field", "unknown field")(lambda c: ["validate", c.recipe(TINY_RECIPE + "colour: red\n")])
case("validate-set-without-equals", "expected key.path=value")(
    lambda c: ["validate", c.recipe(TINY_RECIPE), "--set", "seed"])
case("fit-no-recipe", "fit needs a RECIPE")(lambda c: ["fit"])
case("fit-out-is-a-file", "exists and is not a folder")(
    lambda c: ["fit", c.recipe(TINY_RECIPE), "--out", str(c.file("taken", "data"))])
case("fit-out-not-empty", "not empty")(
    lambda c: ["fit", c.recipe(TINY_RECIPE), "--out", str(c.file("full/keep.txt", "k").parent)])


def _failed_run(c):
    d = c.tmp / "failed"
    d.mkdir()
    (d / "run.json").write_text(json.dumps({"status": "failed", "reason": "data.root: no images"}))
    (d / "recipe.yaml").write_text(TINY_RECIPE)
    return ["fit", c.recipe(TINY_RECIPE), "--out", str(d)]


case("fit-out-holds-a-failed-run", "stopped on an error (data.root: no images); continue it with `umsrep fit "
     "--resume")(_failed_run)
case("fit-out-in-unwritable-folder", ("permission denied", "operation not permitted"))(
    lambda c: ["fit", c.recipe(TINY_RECIPE), "--out", str(c.unwritable() / "run")])
case("fit-resume-not-a-run", "not a umsrep run directory (missing run.json)")(
    lambda c: ["fit", "--resume", str(c.tmp)])
case("fit-resume-complete-run", "already complete")(lambda c: ["fit", "--resume", str(c.run)])
case("fit-resume-with-out", "--out cannot be combined with --resume")(
    lambda c: ["fit", "--resume", str(c.run), "--out", str(c.tmp / "x")])


def _truncated_checkpoint(c):
    run = c.copy_run()
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "status": "training"}))
    npz = run / "checkpoints" / "representation" / "arrays.npz"
    npz.write_bytes(npz.read_bytes()[:200])
    c.changes.add(Path("run") / "run.json")  # marked failed, with the reason
    return ["fit", "--resume", str(run)]


case("fit-resume-truncated-checkpoint", "arrays.npz: damaged checkpoint")(_truncated_checkpoint)


# -- predict --------------------------------------------------------------------------------------------------------
def _damaged(c, how, name="run"):
    run = c.copy_run(name)
    model = run / "model.keras"
    if how == "truncated":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif how == "empty":
        model.write_bytes(b"")
    elif how == "missing":
        model.unlink()
    elif how == "lambda":
        model.unlink()
        _lambda_model(model)
    elif how == "crafted":
        model.unlink()
        _crafted_model(model)
    return run


case("predict-truncated-model", "model.keras: damaged model file")(
    lambda c: ["predict", str(_damaged(c, "truncated")), str(c.image()), "--out", str(c.tmp / "out")])
case("predict-empty-model", "model.keras: damaged model file")(
    lambda c: ["predict", str(_damaged(c, "empty")), str(c.image()), "--out", str(c.tmp / "out")])
case("predict-missing-model", "model.keras: missing")(
    lambda c: ["predict", str(_damaged(c, "missing")), str(c.image()), "--out", str(c.tmp / "out")])
case("predict-lambda-model", "model.keras: model file contains code; refused")(
    lambda c: ["predict", str(_damaged(c, "lambda")), str(c.image()), "--out", str(c.tmp / "out")])
case("predict-crafted-model-config", "model.keras: cannot load model")(
    lambda c: ["predict", str(_damaged(c, "crafted")), str(c.image()), "--out", str(c.tmp / "out")])


def _run_json(c, data: bytes):
    run = c.copy_run()
    (run / "run.json").write_bytes(data)
    return ["predict", str(run), str(c.image()), "--out", str(c.tmp / "out")]


case("predict-run-json-invalid", "run.json: invalid JSON")(lambda c: _run_json(c, b"{"))
case("predict-run-json-not-utf8", "run.json: JSON file is not UTF-8")(lambda c: _run_json(c, b'{"a": "\xff"}'))
case("predict-batch-size-zero", "--batch-size: must be at least 1, got 0")(
    lambda c: ["predict", str(c.run), str(c.image()), "--out", str(c.tmp / "out"), "--batch-size", "0"])
case("predict-batch-size-text", "--batch-size: expected a whole number, got 'many'")(
    lambda c: ["predict", str(c.run), str(c.image()), "--out", str(c.tmp / "out"), "--batch-size", "many"])
case("predict-out-holds-files", "--out already holds files")(
    lambda c: ["predict", str(c.run), str(c.image()), "--out", str(c.file("old/predictions.csv", "x").parent)])
case("predict-out-is-a-file", "--out exists and is not a folder")(
    lambda c: ["predict", str(c.run), str(c.image()), "--out", str(c.file("taken", "x"))])
case("predict-out-in-unwritable-folder", ("permission denied", "operation not permitted"))(
    lambda c: ["predict", str(c.run), str(c.image()), "--out", str(c.unwritable() / "out")])
case("predict-input-missing", "nope.png: no such file or folder")(
    lambda c: ["predict", str(c.run), str(c.tmp / "nope.png"), "--out", str(c.tmp / "out")])
case("predict-input-not-an-image", "broken.png: cannot read image")(
    lambda c: ["predict", str(c.run), str(c.file("broken.png", b"not a png")), "--out", str(c.tmp / "out")])
case("predict-input-empty-file", "empty.png: cannot read image (empty file)")(
    lambda c: ["predict", str(c.run), str(c.file("empty.png", b"")), "--out", str(c.tmp / "out")])
case("predict-input-folder-without-images", "folder holds no image files")(
    lambda c: ["predict", str(c.run), str(c.file("docs/readme.txt", "x").parent), "--out", str(c.tmp / "out")])
case("predict-input-non-utf8-name-broken", "bad\\xff.png: cannot read image")(
    lambda c: ["predict", str(c.run), os.fsdecode(bytes(c.tmp) + b"/bad\xff.png"), "--out", str(c.tmp / "out")]
    if c.file(os.fsdecode(b"bad\xff.png"), b"garbage") else [])
case("predict-huge-png", "huge.png: image has 100,020,001 pixels (10001 x 10001 in its header)")(
    lambda c: ["predict", str(c.run), str(c.file("huge.png", huge_png(10001, 10001))), "--out", str(c.tmp / "o")])
case("predict-huge-jpeg", "huge.jpg: image has 130,000,000 pixels")(
    lambda c: ["predict", str(c.run), str(c.file("huge.jpg", _patch_jpeg_size(
        cv2.imencode(".jpg", np.zeros((8, 8), np.uint8))[1].tobytes(), 65000, 2000))), "--out", str(c.tmp / "o")])
case("predict-huge-bmp", "huge.bmp: image has 400,000,000 pixels")(
    lambda c: ["predict", str(c.run), str(c.file("huge.bmp", (lambda b: b[:18] + struct.pack("<ii", 20000, -20000)
                                                                + b[26:])(cv2.imencode(".bmp", np.zeros(
                                                                    (4, 4), np.uint8))[1].tobytes()))),
               "--out", str(c.tmp / "o")])
case("predict-huge-tiff", "huge.tif: image has 900,000,000 pixels")(
    lambda c: ["predict", str(c.run), str(c.file("huge.tif", _tiff_header(30000, 30000))), "--out", str(c.tmp / "o")])


def _huge_dicom(c):
    p = write_dicom(c.tmp / "huge.dcm", np.zeros((4, 4), np.uint16))
    import pydicom

    ds = pydicom.dcmread(p)
    ds.Rows, ds.Columns = 20000, 20000  # the header claims 400 megapixels; the data are 16 pixels
    ds.save_as(p)
    return ["predict", str(c.run), str(p), "--out", str(c.tmp / "o")]


case("predict-huge-dicom", "huge.dcm: image has 400,000,000 pixels (Rows 20000 x Columns 20000)")(_huge_dicom)
case("predict-pixel-limit-option", "img.png: image has 1,024 pixels (32 x 32 in its header), more than the limit "
     "of 1,000")(lambda c: ["--max-image-pixels", "1000", "predict", str(c.run), str(c.image()),
                            "--out", str(c.tmp / "o")])
case("predict-not-a-run", "not a umsrep run directory")(
    lambda c: ["predict", str(c.tmp), str(c.image()), "--out", str(c.tmp / "o")])
case("predict-run-is-a-file", "not a umsrep run directory (it is a file)")(
    lambda c: ["predict", str(c.file("run.txt", "x")), str(c.image()), "--out", str(c.tmp / "o")])


def _no_space(c):
    import umsrep.predict

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    c.monkeypatch.setattr(umsrep.predict, "write_bytes", full)
    return ["predict", str(c.run), str(c.image()), "--out", str(c.tmp / "o")]


case("predict-disk-full", "no space left on the device")(_no_space)

# -- explain --------------------------------------------------------------------------------------------------------
case("explain-unknown-task", "--task: unknown task 'nope'")(
    lambda c: ["explain", str(c.run), str(c.image()), "--task", "nope", "--out", str(c.tmp / "o")])
case("explain-segmentation-task", "not a classification head")(
    lambda c: ["explain", str(c.run), str(c.image()), "--task", "lesion", "--out", str(c.tmp / "o")])
case("explain-unknown-class", "--class: 'cat' is not a class of 'diagnosis'")(
    lambda c: ["explain", str(c.run), str(c.image()), "--task", "diagnosis", "--class", "cat",
               "--out", str(c.tmp / "o")])
case("explain-unknown-layer", "--layer: 'encoder/nope'")(
    lambda c: ["explain", str(c.run), str(c.image()), "--task", "diagnosis", "--layer", "encoder/nope",
               "--out", str(c.tmp / "o")])
case("explain-out-holds-files", "--out already holds files")(
    lambda c: ["explain", str(c.run), str(c.image()), "--task", "diagnosis",
               "--out", str(c.file("old/explanations.csv", "x").parent)])
case("explain-batch-size-zero", "--batch-size: must be at least 1")(
    lambda c: ["explain", str(c.run), str(c.image()), "--task", "diagnosis", "--out", str(c.tmp / "o"),
               "--batch-size", "0"])
case("explain-bad-method", "--method: invalid choice: 'shap'")(
    lambda c: ["explain", str(c.run), str(c.image()), "--task", "diagnosis", "--out", str(c.tmp / "o"),
               "--method", "shap"])

# -- evaluate / report ------------------------------------------------------------------------------------------------
case("evaluate-truncated-model", "model.keras: damaged model file")(
    lambda c: ["evaluate", str(_damaged(c, "truncated"))])
case("evaluate-lambda-model", "contains code; refused")(lambda c: ["evaluate", str(_damaged(c, "lambda"))])
case("evaluate-unknown-model", "--model:")(lambda c: ["evaluate", str(c.run), "--model", "nope"])
case("evaluate-not-a-run", "not a umsrep run directory")(lambda c: ["evaluate", str(c.tmp)])


def _bad_splits(c):
    run = c.copy_run()
    (run / "splits.json").write_text("[1, 2")
    return ["evaluate", str(run)]


case("evaluate-splits-invalid-json", "splits.json: invalid JSON")(_bad_splits)
case("report-not-a-run", "not a umsrep run directory")(lambda c: ["report", str(c.tmp)])
# report reads metrics.json and predictions/ only (no model): a damaged prediction file is what can break it


def _bad_predictions(c):
    run = c.copy_run()
    f = run / "predictions" / "independent" / "test.npz"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return ["report", str(run)]


case("report-truncated-predictions", "test.npz: not a predictions file")(_bad_predictions)

# -- export -----------------------------------------------------------------------------------------------------------
case("export-out-exists", "exists; choose a new --out or give --overwrite")(
    lambda c: ["export", str(c.run), "--format", "tflite", "--out", str(c.file("m.tflite", b"old"))])
case("export-overwrite-folder-with-file-format", "is a folder; a tflite export cannot replace it")(
    lambda c: ["export", str(c.run), "--format", "tflite", "--overwrite",
               "--out", str(c.file("sm/saved_model.pb", b"old").parent)])
case("export-truncated-model", "damaged model file")(
    lambda c: ["export", str(_damaged(c, "truncated")), "--format", "tflite", "--out", str(c.tmp / "m.tflite")])
case("export-bad-format", "--format: invalid choice: 'pickle'")(
    lambda c: ["export", str(c.run), "--format", "pickle", "--out", str(c.tmp / "m")])
case("export-samples-missing", "nope.png: no such file or folder")(
    lambda c: ["export", str(c.run), "--format", "tflite", "--out", str(c.tmp / "m.tflite"),
               "--samples", str(c.tmp / "nope.png")])

# -- pretrained -------------------------------------------------------------------------------------------------------
case("pretrained-show-card-not-utf8", "card.yaml: card is not UTF-8 text")(
    lambda c: ["pretrained", "show", str(c.encoder("bad", GOOD_CARD + b"# \xff\n"))])
case("pretrained-list-with-one-bad-card", "bad/card.yaml: card is not UTF-8 text")(
    lambda c: ["pretrained", "list"] if (c.encoder("good", GOOD_CARD), c.encoder("bad", b"name: \xff\n")) else [])
case("pretrained-show-duplicate-key", "duplicate key 'sha256'")(
    lambda c: ["pretrained", "show", str(c.encoder("dup", GOOD_CARD + b"sha256: abc\n"))])
case("pretrained-show-alias-bomb", "aliases")(
    lambda c: ["pretrained", "show", str(c.encoder("bomb", _bomb().encode() + GOOD_CARD))])
case("pretrained-show-sha-mismatch", "does not match card.yaml")(
    lambda c: ["pretrained", "show", str(c.encoder("changed", GOOD_CARD.replace(b"sha256: ", b"sha256: 0")))])
case("pretrained-show-unknown", "no pretrained encoder 'nothing-here'")(
    lambda c: ["pretrained", "show", "nothing-here"])
case("pretrained-publish-existing-name", "already exists")(
    lambda c: ["pretrained", "publish", str(c.run), "good", "--dest", str(c.encoder("good", GOOD_CARD).parent)])
case("pretrained-publish-not-a-run", "missing")(
    lambda c: ["pretrained", "publish", str(c.tmp), "x", "--dest", str(c.registry)])
case("pretrained-publish-bad-name", "use lower-case letters")(
    lambda c: ["pretrained", "publish", str(c.run), "Bad Name", "--dest", str(c.registry)])
case("unknown-command", "invalid choice: 'train'")(lambda c: ["train", "x.yaml"])


# -- the corpus --------------------------------------------------------------------------------------------------------
def test_the_corpus_is_broad():
    commands = {p.id.split("-")[0] for p in CASES}
    assert len(CASES) >= 40 and {"fit", "validate", "predict", "explain", "evaluate", "export", "report",
                                 "pretrained"} <= commands


@pytest.mark.parametrize("build, expect", CASES)
def test_bad_input_gives_one_line_and_loses_nothing(build, expect, tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(PIXELS_ENV, "100000000")  # restored after the case (--max-image-pixels sets it)
    registry = tmp_path / "registry"
    registry.mkdir()
    monkeypatch.setenv("UMSREP_PRETRAINED", str(registry))
    c = Ctx(tmp_path, tiny_run, monkeypatch, registry)
    try:
        argv = build(c)
        capsys.readouterr()
        before = _snapshot(tmp_path, tiny_run)
        rc = main(argv)
        out, err = capsys.readouterr()
        after = _snapshot(tmp_path, tiny_run)
    finally:
        for undo in c.cleanup:
            undo()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, (rc, err)
    assert "Traceback" not in out + err
    assert len(lines) == 1 and lines[0].startswith("umsrep: error: "), err
    expected = (expect,) if isinstance(expect, str) else expect
    assert any(e in lines[0] for e in expected), lines[0]
    may_change = {tmp_path / rel for rel in c.changes}
    for p, digest in before.items():
        assert p in may_change or after.get(p) == digest, f"{p} changed or vanished"
    for rel in c.changes:
        meta = json.loads((tmp_path / rel).read_text())
        assert meta["status"] == "failed" and lines[0].split("error: ", 1)[1] in meta["reason"]


# -- findings beyond one command ---------------------------------------------------------------------------------------
def test_predict_accepts_a_non_utf8_file_name(tiny_run, tmp_path, capsys):
    """Row 4: an input whose name is not UTF-8 is predicted; the CSV and JSON name it with \\xNN escapes."""
    src = sorted((tiny_run / "data" / "images").glob("*.png"))[0]
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(src, os.fsdecode(bytes(folder) + b"/scan\xe9.png"))
    out = tmp_path / "pred"
    assert main(["predict", str(tiny_run), str(folder), "--out", str(out)]) == 0
    csv_text = (out / "predictions.csv").read_text(encoding="utf-8")
    assert "scan\\xe9.png" in csv_text
    rows = json.loads((out / "predictions.json").read_text())["predictions"]
    assert rows[0]["file"].endswith("scan\\xe9.png") and Path(rows[0]["lesion_mask"]).is_file()


def test_predict_overwrite_replaces_only_with_the_flag(tiny_run, tmp_path, capsys):
    img = tmp_path / "a.png"
    shutil.copy(sorted((tiny_run / "data" / "images").glob("*.png"))[0], img)
    out = tmp_path / "pred"
    assert main(["predict", str(tiny_run), str(img), "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    before = (out / "predictions.csv").read_bytes()
    assert main(["predict", str(tiny_run), str(img), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "predictions.csv").read_bytes() == before
    assert main(["predict", str(tiny_run), str(img), "--out", str(out), "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "predictions.csv").is_file()


def test_pretrained_list_shows_the_good_cards_beside_a_bad_one(tmp_path, monkeypatch, capsys):
    """Row 3: one damaged card is named (one line, exit 2); the others are still listed."""
    monkeypatch.setenv("UMSREP_PRETRAINED", str(tmp_path))
    c = Ctx(tmp_path, tmp_path, monkeypatch, tmp_path)
    c.encoder("good", GOOD_CARD)
    c.encoder("bad", b"name: \xff\n")
    assert main(["pretrained", "list"]) == 2
    out, err = capsys.readouterr()
    assert "good" in out and "ultrasound" in out and "unreadable card" in out
    assert err.count("\n") == 1 and "bad/card.yaml: card is not UTF-8 text" in err
    assert main(["pretrained", "show", "good"]) == 0


def test_export_replaces_only_with_the_flag(tiny_run, tmp_path, capsys):
    out = tmp_path / "m.tflite"
    assert main(["export", str(tiny_run), "--format", "tflite", "--out", str(out)]) == 0
    first = out.read_bytes()
    assert main(["export", str(tiny_run), "--format", "tflite", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == first
    out.write_bytes(b"an older export")
    assert main(["export", str(tiny_run), "--format", "tflite", "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes() == first and json.loads(Path(f"{out}.verification.json").read_text())["ok"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "m.tflite.verification.json"]


def test_run_directory_race_has_one_winner(tmp_path):
    """Two (here eight) runs created at the same moment on one --out: exactly one gets the folder."""
    for attempt in range(10):
        out = tmp_path / f"race{attempt}" / "run"
        barrier, won, lost = threading.Barrier(8), [], []

        def claim(barrier=barrier, won=won, lost=lost, out=out):
            barrier.wait()
            try:
                won.append(RunDir.create(tmp_path, "x", out))
            except RunDirError as e:
                lost.append(str(e))

        threads = [threading.Thread(target=claim) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1 and len(lost) == 7, (won, lost)
        assert all("another umsrep run claimed" in m or "not empty" in m for m in lost), lost
        won[0].unlock()


def test_a_running_fit_holds_its_folder(tmp_path):
    run = RunDir.create(tmp_path, "x", tmp_path / "run")
    with pytest.raises(RunDirError, match="in use by another umsrep process"):
        RunDir(run.path).lock()
    run.unlock()
    RunDir(run.path).lock().unlock()


def test_a_failed_fit_is_marked_and_reported(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(TINY_RECIPE.replace("  synthetic: {kind: ultrasound, n: 36, size: 32, seed: 1, per_patient: 2}",
                                          f"  root: {tmp_path / 'empty'}"))
    (tmp_path / "empty").mkdir()
    out = tmp_path / "run"
    assert main(["fit", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and meta["reason"] == err.split("umsrep: error: ", 1)[1]
    assert main(["fit", str(recipe), "--out", str(out)]) == 2
    assert "holds a umsrep run that stopped on an error" in capsys.readouterr().err
    assert main(["fit", "--resume", str(out)]) == 2
    o, e = capsys.readouterr()
    assert "it holds a umsrep run that stopped on an error" in o and e.count("\n") == 1
    assert json.loads((out / "run.json").read_text())["status"] == "failed"


def test_disk_full_during_fit_marks_the_run(tiny_recipe_file, tmp_path, monkeypatch, capsys):
    import umsrep.train.fit as fit_module

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "run" / "data"))

    monkeypatch.setattr(fit_module, "prepare", full)
    assert main(["fit", str(tiny_recipe_file), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device" in err and err.count("\n") == 1
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(RunDirError):
        main(["--debug", "predict", str(tmp_path), str(tmp_path / "x.png"), "--out", str(tmp_path / "o")])


# -- real processes: exit code, stderr, limits the kernel enforces -----------------------------------------------------
def _umsrep(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.Popen([sys.executable, "-m", "umsrep", *map(str, args)], cwd=kw.pop("cwd", REPO_ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", **kw)


def test_two_fits_racing_for_one_folder(tmp_path):
    """Two real `umsrep fit` processes on one --out: one gets the folder (and fails on its empty data, marking it
    failed), the other is refused; each prints exactly one line on stderr (no TensorFlow start-up lines), exit 2."""
    (tmp_path / "empty").mkdir()
    recipe = tmp_path / "r.yaml"
    recipe.write_text(TINY_RECIPE.replace("  synthetic: {kind: ultrasound, n: 36, size: 32, seed: 1, per_patient: 2}",
                                          f"  root: {tmp_path / 'empty'}"))
    procs = [_umsrep("fit", recipe, "--out", tmp_path / "run") for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert [r[0] for r in results] == [2, 2], results
    errs = [r[2] for r in results]
    assert all(e.count("\n") == 1 and e.startswith("umsrep: error: ") for e in errs), errs
    refused = [e for e in errs if "claimed this folder" in e or "not empty" in e or "in use" in e]
    assert len(refused) == 1, errs
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


@pytest.mark.skipif(not hasattr(os, "setrlimit") and sys.platform == "win32", reason="POSIX file-size limit")
def test_file_too_large_is_one_line(tiny_run, tmp_path):
    import resource

    img = tmp_path / "a.png"
    shutil.copy(sorted((tiny_run / "data" / "images").glob("*.png"))[0], img)

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    p = _umsrep("predict", tiny_run, img, "--out", tmp_path / "out", preexec_fn=limit)
    rc, (_, err) = p.wait(timeout=300), p.communicate()
    assert rc == 2 and err.count("\n") == 1 and "file too large" in err, (rc, err)


def test_the_start_up_filter_drops_only_framework_lines():
    """What `umsrep.cli.run` removes from file descriptor 2 (the subprocess tests above see the result: their
    stderr is exactly one line although TensorFlow was imported)."""
    from umsrep.console import TF_NOISE

    noise = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             "I0000 00:00:1796228477.310025    6884 port.cc:153] oneDNN custom operations are on.",
             "W0000 00:00:1796228477.310366    6884 cudart_stub.cc:31] Could not find cuda drivers",
             "E0000 00:00:1796228488.017574    6903 cuda_platform.cc:52] failed call to cuInit: INTERNAL",
             "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow"]
    kept = ["umsrep: error: x.png: cannot read image", "E0000 00:00:17.5 12 op_kernel.cc:1] OOM when allocating",
            "Traceback (most recent call last):", "Fatal Python error: Segmentation fault"]
    assert all(TF_NOISE.match(ln) for ln in noise) and not any(TF_NOISE.match(ln) for ln in kept)
