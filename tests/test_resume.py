"""Checkpoint every epoch; `umsrep fit --resume RUN_DIR` continues an interrupted run to the same weights."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.conftest import REPO_ROOT, TINY_RECIPE
from umsrep.cli import main
from umsrep.train.checkpoint import Checkpoints

ARGS = ["--set", "strategy.kind=alternating", "--set", "strategy.epochs=3", "--set", "representation.epochs=2",
        "--set", "output.tensorboard=false", "--set", "tasks.diagnosis.epochs=2"]


def _weights(run):
    return keras.models.load_model(run / "model.keras").get_weights()


def _count_steps(patcher, counts):
    """Count the training batches each stage draws (``Trainer.next_batch``, the one place every trainer takes
    its next batch)."""
    from umsrep.train.engine import Trainer

    real = Trainer.next_batch

    def next_batch(self, key):
        counts[self.name] = counts.get(self.name, 0) + 1
        return real(self, key)

    patcher.setattr(Trainer, "next_batch", next_batch)


@pytest.fixture(scope="module")
def uninterrupted(tiny_recipe_file, tmp_path_factory):
    """The reference run; beside it ``steps.json``: how many batches each stage drew."""
    out = tmp_path_factory.mktemp("resume-a") / "run"
    counts = {}
    with pytest.MonkeyPatch.context() as mp:
        _count_steps(mp, counts)
        assert main(["fit", str(tiny_recipe_file), "--out", str(out), *ARGS]) == 0
    (out.parent / "steps.json").write_text(json.dumps(counts))
    return out


# run in a process of its own: SIGKILL itself when stage STAGE draws its STEP-th batch
KILLER = """
import os, signal, sys
from umsrep.train.engine import Trainer
from umsrep.cli import main

stage, step, seen, real = sys.argv[1], int(sys.argv[2]), [0], Trainer.next_batch

def next_batch(self, key):
    if self.name == stage:
        seen[0] += 1
        if seen[0] == step:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(self, key)

Trainer.next_batch = next_batch
sys.exit(main(sys.argv[3:]))
"""


def test_sigkill_at_a_random_step_then_resume(tiny_recipe_file, uninterrupted, tmp_path):
    """A fit killed by SIGKILL (no handler runs, no checkpoint is finished) at a random step of a random stage —
    seeded; UMSREP_FAULT_SEED picks another point — resumes to weights equal to the uninterrupted run's."""
    counts = json.loads((uninterrupted.parent / "steps.json").read_text())
    rng = random.Random(int(os.environ.get("UMSREP_FAULT_SEED", "15")))
    stage = rng.choice(sorted(s for s, n in counts.items() if n >= 2))
    step = rng.randint(2, counts[stage])
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-c", KILLER, stage, str(step), "fit", str(tiny_recipe_file),
                        "--out", str(out), *ARGS], cwd=REPO_ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=600)
    where = f"killed at batch {step} of stage {stage!r} ({counts})"
    assert p.returncode == -signal.SIGKILL, (where, p.stderr[-2000:])
    assert json.loads((out / "run.json").read_text())["status"] in ("training", "trained"), where
    assert not (out / "metrics.json").exists()
    assert main(["fit", "--resume", str(out)]) == 0, where
    for a, b in zip(_weights(uninterrupted), _weights(out), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=where)


def _interrupt_after(monkeypatch, n_saves):
    real = Checkpoints.save
    calls = []

    def save(self, *a, **k):
        real(self, *a, **k)
        calls.append(a[0])
        if len(calls) == n_saves:
            raise KeyboardInterrupt  # the process dies right after writing this checkpoint

    monkeypatch.setattr(Checkpoints, "save", save)
    return calls


def _weight_history(run):
    history = json.loads((run / "metrics.json").read_text())["stages"]["joint"]["history"]
    return [{k: v for k, v in h.items() if k.startswith("weight/")} for h in history]


JOINT = [a.replace("strategy.kind=alternating", "strategy.kind=joint") for a in ARGS] + [
    "--set", "strategy.weighting.method=gradnorm"]


def test_resume_joint_gradnorm_restores_the_weighting_state(tiny_recipe_file, tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["fit", str(tiny_recipe_file), "--out", str(a), *JOINT]) == 0
    calls = _interrupt_after(monkeypatch, 3)  # representation epoch 1, then joint epochs 1 and 2
    assert main(["fit", str(tiny_recipe_file), "--out", str(b), *JOINT]) == 130
    monkeypatch.undo()
    assert calls[-1] == "joint"
    assert main(["fit", "--resume", str(b)]) == 0
    for x, y in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(x, y)
    wa, wb = _weight_history(a), _weight_history(b)
    assert wa == wb and wa[0] != wa[-1]  # GradNorm moved the weights, identically


@pytest.mark.parametrize("n_saves", [1, 3])  # inside the representation stage; inside the alternating stage
def test_resume_gives_the_same_final_weights(tiny_recipe_file, uninterrupted, tmp_path, monkeypatch,
                                            n_saves):
    out = tmp_path / "run"
    calls = _interrupt_after(monkeypatch, n_saves)
    assert main(["fit", str(tiny_recipe_file), "--out", str(out), *ARGS]) == 130
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert not (out / "metrics.json").exists()
    monkeypatch.undo()
    assert main(["fit", "--resume", str(out)]) == 0
    assert calls[:1] == ["representation"]
    for a, b in zip(_weights(uninterrupted), _weights(out)):
        np.testing.assert_array_equal(a, b)
    ma = json.loads((uninterrupted / "metrics.json").read_text())
    mb = json.loads((out / "metrics.json").read_text())
    assert mb["tasks"]["lesion"]["test"]["dice"] == ma["tasks"]["lesion"]["test"]["dice"]
    hist_a = [h["loss"] for h in ma["stages"]["alternating"]["history"]]
    hist_b = [h["loss"] for h in mb["stages"]["alternating"]["history"]]
    assert hist_a == hist_b


def test_resume_refuses_a_changed_recipe_and_a_complete_run(tiny_recipe_file, uninterrupted, tmp_path,
                                                            monkeypatch, capsys):
    out = tmp_path / "run"
    _interrupt_after(monkeypatch, 1)
    assert main(["fit", str(tiny_recipe_file), "--out", str(out), *ARGS]) == 130
    monkeypatch.undo()
    changed = tmp_path / "changed.yaml"
    changed.write_text(TINY_RECIPE.replace("seed: 3", "seed: 4"))
    assert main(["fit", str(changed), "--resume", str(out), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "seed: is 4 but the run being resumed used 3" in err and "Traceback" not in err
    # output / distribute may change
    resume = ["fit", str(tiny_recipe_file), "--resume", str(out), *ARGS]
    assert main([*resume, "--set", "output.dir=elsewhere"]) == 0
    assert main(["fit", "--resume", str(uninterrupted)]) == 2
    assert "already complete" in capsys.readouterr().err


def test_every_iterator_over_a_training_stream_sees_the_same_batches():
    from umsrep.data import pipeline

    x, y = np.arange(10, dtype="float32")[:, None], np.arange(10)
    ds = pipeline.train_dataset(x, y, batch_size=4, seed=5)

    def labels(d, k):
        return [b[1].numpy().tolist() for b, _ in zip(iter(d), range(k))]

    first = labels(ds, 8)
    assert first == labels(ds, 8)                    # a second iterator: same order (no hidden shuffle state)
    assert labels(ds.skip(3), 5) == first[3:]        # resuming skips exactly the consumed batches
    epoch1, epoch2 = sum(first[:5], [])[:10], sum(first[:5], [])[10:20]
    assert sorted(epoch1) == list(range(10)) and sorted(epoch2) == list(range(10)) and epoch1 != epoch2
