"""Every number in the docs' tables has evidence (docs/evidence/README.md), and the checker and `umsrep evidence`
work. Fast: no TensorFlow, no training."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO_ROOT
from umsrep.cli import main
from umsrep.errors import RunDirError
from umsrep.evidence import MAX_BYTES, check_doc, make_evidence, numbers_in

# the docs whose tables are checked
DOCS = ["docs/performance.md", "docs/results.md", "docs/architectures.md", "docs/doppler.md"]

# docs whose tables may still lack an evidence comment, with the reason; tables that have one are checked anyway.
# Remove an entry when its doc is fully linked (the test then says so).
UNCHECKED = {}  # doc -> why its unlinked tables are allowed for now (none left)


# ---------------------------------------------------------------------------------------------------- the docs


def test_docs_numbers_match_their_evidence(capsys):
    problems, unlinked, lost, checked = [], {}, [], 0
    for doc in DOCS:
        r = check_doc(doc, REPO_ROOT)
        problems += r.problems
        lost += r.lost
        checked += r.checked
        if r.unlinked and doc not in UNCHECKED:
            problems += [f"{where}: table with numbers and no <!-- evidence: FILE --> comment" for where in r.unlinked]
        elif doc in UNCHECKED:
            unlinked[doc] = r.unlinked
            if not r.unlinked:
                problems.append(f"{doc}: every table is linked now: remove it from UNCHECKED in {__file__}")
    with capsys.disabled():
        print(f"\nevidence: {checked} numbers matched in {len(DOCS)} docs")
        for doc, tables in unlinked.items():
            print(f"  UNCHECKED {doc}: {len(tables)} tables without evidence ({UNCHECKED[doc]})")
        for x in lost:
            print(f"  evidence lost: {x}")
    assert not problems, "numbers without matching evidence:\n" + "\n".join(problems)
    assert checked > 100  # performance.md alone has more: the checker really read the tables


def test_unchecked_names_checked_docs():
    assert set(UNCHECKED) <= set(DOCS)
    assert all(reason.strip() for reason in UNCHECKED.values())
    assert all((REPO_ROOT / d).is_file() for d in DOCS)


def test_evidence_folders_hold_small_result_files_only():
    root = REPO_ROOT / "docs" / "evidence"
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        names = {p.name for p in folder.iterdir()}
        summary = "trials.json" if "trials.json" in names else "metrics.json"  # a `umsrep tune` folder, or a run
        assert {summary, "recipe.yaml", "command.txt", "meta.json"} <= names, folder
        json.loads((folder / "meta.json").read_text())
    for f in root.rglob("*"):
        if f.is_file():
            assert f.suffix in (".json", ".yaml", ".txt", ".md"), f"{f}: not an evidence file type"
            assert f.stat().st_size <= MAX_BYTES, f"{f}: too large for evidence"


# ---------------------------------------------------------------------------------------------------- the matcher


def _doc(tmp_path, text, evidence=None, name="e.json"):
    if evidence is not None:
        (tmp_path / name).write_text(json.dumps(evidence))
    (tmp_path / "doc.md").write_text(text)
    return check_doc("doc.md", tmp_path)


TABLE = """Intro 0.999 in prose is not checked.

<!-- evidence: e.json -->
| case | Dice | time |
|---|---|---|
| a | {dice} | {time} s |
"""


def _cells(tmp_path, dice, time):
    return _doc(tmp_path, TABLE.format(dice=dice, time=time), {"dice": 0.43549, "time_s": 24.491})


def test_rounded_value_matches(tmp_path):
    r = _cells(tmp_path, "0.435", "24")
    assert r.problems == [] and r.checked == 2
    assert not _cells(tmp_path, "0.44", "24.5").problems
    assert not _cells(tmp_path, "0.4355", "24.49").problems


def test_drifted_number_fails(tmp_path):
    r = _cells(tmp_path, "0.436", "24")
    assert len(r.problems) == 1 and r.problems[0].startswith("doc.md:6: 0.436: no value in e.json")


def test_rounding_is_to_the_decimals_written(tmp_path):
    assert _cells(tmp_path, "0.4354", "24").problems  # 0.43549 rounds to 0.4355 at 4 decimals
    assert _cells(tmp_path, "0.435", "25").problems  # 24.491 rounds to 24
    assert len(_cells(tmp_path, "0.43", "24.5").problems) == 1  # 0.43549 rounds to 0.44 at 2 decimals
    assert len(_cells(tmp_path, "0.44", "24.0").problems) == 1  # 24.491 rounds to 24.5 at 1 decimal


def test_table_without_evidence_comment_is_unlinked(tmp_path):
    r = _doc(tmp_path, "| a | b |\n|---|---|\n| x | 0.5 |\n")
    assert r.unlinked == ["doc.md:1"] and not r.problems
    r = _doc(tmp_path, "| a | b |\n|---|---|\n| x | none here |\n")  # no numbers, no evidence needed
    assert r.unlinked == []


def test_missing_linked_file_and_pointer_fail(tmp_path):
    r = _doc(tmp_path, "<!-- evidence: gone.json -->\n| a |\n|---|\n| 1.5 |\n")
    assert any("gone.json does not exist" in p for p in r.problems)
    r = _doc(tmp_path, "<!-- evidence: e.json#/models/x -->\n| a |\n|---|\n| 1.5 |\n", {"models": {"y": 1.5}})
    assert any("no such key path" in p for p in r.problems)
    r = _doc(tmp_path, "<!-- evidence: e.json#/models/y -->\n| a |\n|---|\n| 1.5 |\n", {"models": {"y": 1.5}})
    assert r.problems == [] and r.checked == 1
    # the pointer narrows the values: 2.5 is elsewhere in the file, not under /models
    r = _doc(tmp_path, "<!-- evidence: e.json#/models -->\n| a |\n|---|\n| 2.5 |\n", {"models": {"y": 1}, "z": 2.5})
    assert len(r.problems) == 1


def test_training_curves_match_only_when_linked(tmp_path):
    """Per-epoch histories hold hundreds of losses: a table number must not pass by matching one by chance."""
    ev = {"tasks": {"lesion": {"test": {"dice": 0.6334}}}, "stages": {"joint": {"history": [{"loss": 0.6338}]}}}
    r = _doc(tmp_path, "<!-- evidence: e.json -->\n| a |\n|---|\n| 0.634 |\n", ev)
    assert len(r.problems) == 1 and "0.634: no value" in r.problems[0]
    r = _doc(tmp_path, "<!-- evidence: e.json#/stages/joint/history -->\n| a |\n|---|\n| 0.634 |\n", ev)
    assert r.problems == [] and r.checked == 1
    per_item = {"dice": 0.6334, "groups": {"p1": {"area": 0.6338}}, "per_image": [0.5] * 40 + [0.6338],
                "values": [0.6338, 0.7]}
    r = _doc(tmp_path, "<!-- evidence: e.json -->\n| a |\n|---|\n| 0.634 |\n", {k: per_item[k] for k in
                                                                                   ("dice", "groups", "per_image")})
    assert len(r.problems) == 1                          # per-patient features and a 41-entry list: not results
    r = _doc(tmp_path, "<!-- evidence: e.json -->\n| a |\n|---|\n| 0.634 |\n", per_item)
    assert r.problems == []                              # a short list (per-seed values) is a result


def test_yaml_with_a_pointer_gives_values(tmp_path):
    """A shipped encoder's card.yaml is committed evidence: with a #/pointer its numbers are values (rounded
    matching); without one a YAML file only supplies settings (exact)."""
    (tmp_path / "card.yaml").write_text("training: {wall_time_s: 421.492}\ndenoising: {psnr: 23.1441}\n")
    table = "<!-- evidence: card.yaml{ptr} -->\n| a | b |\n|---|---|\n| {a} | 421 s |\n"
    r = _doc(tmp_path, table.format(ptr="#/", a="23.1"))
    assert r.problems == [] and r.checked == 2
    r = _doc(tmp_path, table.format(ptr="#/denoising", a="23.1"))    # 421 is not under /denoising
    assert len(r.problems) == 1 and "421" in r.problems[0]
    r = _doc(tmp_path, table.format(ptr="#/", a="23.2"))
    assert len(r.problems) == 1 and "23.2" in r.problems[0]
    r = _doc(tmp_path, table.format(ptr="", a="23.1"))               # settings only: no rounding
    assert len(r.problems) == 2
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    r = _doc(tmp_path, "<!-- evidence: bad.yaml#/a -->\n| a |\n|---|\n| 1 |\n")
    assert any("invalid YAML" in p for p in r.problems)


def test_number_forms(tmp_path):
    ev = {"p": 0.6852, "r": 1.1178, "n": 1217765, "a": 26.14, "b": 19.93, "lo": 0.4213, "hi": 0.5281, "e": 1.2e-6,
          "neg": -0.07}
    text = ("<!-- evidence: e.json -->\n| x |\n|---|\n"
            "| 69 % and 68.5% | **1.12×** | 1,217,765 | 26.1 → 19.9 dB | [0.42, 0.53] | p = 1e-6 | MCC −0.07 |\n")
    r = _doc(tmp_path, text, ev)
    assert r.problems == [] and r.checked == 10
    r = _doc(tmp_path, text.replace("69 %", "68 %").replace("1,217,765", "1,217,766"), ev)
    assert [p.split(": ")[1] for p in r.problems] == ["68 %", "1,217,766"]


def test_not_measurements_are_skipped():
    got = [n.text for n in numbers_in("fp32 bf16 256² #8 3-head enc3_relu 2026-11-29 `--steps 8` "
                                      "[link](img/fig2.png) ≥ 60 % < 1 s ≤ 30 %, measured 41×")]
    assert got == ["41"]


def test_settings_and_ignore_list(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"dice": 0.5}))
    (tmp_path / "run" / "recipe.yaml").write_text("epochs: 12\nimage_size: [128, 128]\n")
    (tmp_path / "run" / "command.txt").write_text("umsrep fit r.yaml --set tasks.x.epochs=40\n")
    head = "<!-- evidence: run/metrics.json -->\n"
    body = "| a |\n|---|\n| Dice 0.50 at 128 px, 12 + 40 epochs, 3 seeds |\n"
    r = check_doc_text(tmp_path, head + body)
    assert [p.split(": ")[1] for p in r.problems] == ["3"]  # 3 is in no evidence and no setting
    r = check_doc_text(tmp_path, head + "<!-- evidence-ignore: 3 (seed count) -->\n" + body)
    assert r.problems == []
    r = check_doc_text(tmp_path, head + "<!-- evidence-ignore: 3, 7 -->\n" + body)
    assert len(r.problems) == 1 and "evidence-ignore 7 matches no number" in r.problems[0]


def check_doc_text(tmp_path, text):
    (tmp_path / "doc.md").write_text(text)
    return check_doc("doc.md", tmp_path)


def test_lost_needs_a_reason_and_is_reported(tmp_path):
    body = "| a |\n|---|\n| 768 |\n"
    r = _doc(tmp_path, "<!-- evidence: e.json -->\n<!-- evidence-lost: 768 -->\n" + body, {"x": 1})
    assert any("needs a reason" in p for p in r.problems)
    r = _doc(tmp_path, "<!-- evidence: e.json -->\n<!-- evidence-lost: 768 (not saved) -->\n" + body, {"x": 1})
    assert r.problems == [] and r.lost == ["doc.md:3: 768 (not saved)"]


def test_evidence_none_needs_a_reason(tmp_path):
    body = "| a |\n|---|\n| U(45, 120) |\n"
    assert _doc(tmp_path, "<!-- evidence: none (simulator settings) -->\n" + body).problems == []
    assert _doc(tmp_path, "<!-- evidence: none -->\n" + body).problems


def test_tables_in_code_fences_are_not_tables(tmp_path):
    r = _doc(tmp_path, "```\n| a |\n|---|\n| 1.5 |\n```\n")
    assert r.unlinked == []


# ---------------------------------------------------------------------------------------------------- copying


def _run(folder, metrics=None):
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"status": "complete", "umsrep_version": "0.1.0",
                                                 "created": "2026-12-01 10:00:00", "versions": {"keras": "3"}}))
    (folder / "recipe.yaml").write_text("name: t\nseed: 0\n")
    (folder / "metrics.json").write_text(json.dumps(metrics or {"tasks": {"lesion": {"dice": 0.5}}}))
    (folder / "model.keras").write_bytes(b"x" * 1000)
    (folder / "report.md").write_text("# report\n")
    return folder


def test_make_evidence_copies_small_files_only(tmp_path):
    run = _run(tmp_path / "run")
    for i in range(2):  # a k-fold parent: summary + each fold's metrics and recipe
        _run(run / f"fold{i}", {"dice": 0.4 + i / 10})
    (run / "encoder").mkdir()
    (run / "evaluation.json").write_text("{}")
    (run / "fold1" / "evaluation.json").write_text("{}")   # a fold re-scored by `umsrep evaluate`
    out = make_evidence(run, "busi-test", dest=tmp_path / "ev", command="umsrep fit busi.yaml", shared=True)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["command.txt", "evaluation.json", "fold0/metrics.json", "fold0/recipe.yaml",
                     "fold1/evaluation.json", "fold1/metrics.json", "fold1/recipe.yaml", "meta.json", "metrics.json",
                     "recipe.yaml"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["machine"]["shared"] is True and meta["machine"]["cores"] >= 1
    assert meta["umsrep_version"] == "0.1.0" and set(meta["files"]) == set(files) - {"command.txt", "meta.json"}
    assert (out / "command.txt").read_text() == "umsrep fit busi.yaml\n"
    assert (out / "metrics.json").read_bytes() == (run / "metrics.json").read_bytes()


def test_make_evidence_of_a_tune_folder(tmp_path, capsys):
    out = tmp_path / "tune"
    (out / "tuner" / "trial_0").mkdir(parents=True)
    (out / "tuner" / "trial_0" / "checkpoint.weights.h5").write_bytes(b"x" * 100)  # KerasTuner state: not copied
    (out / "tune.yaml").write_text("name: t\nsearch: {max_trials: 2}\n")
    (out / "best_recipe.yaml").write_text("name: t\n")
    for i, mcc in enumerate((0.31, 0.47)):
        trial = _run(out / "trials" / f"{i}", {"tasks": {"diagnosis": {"mcc": mcc}}})
        (trial / "trial.json").write_text("{}")
    (out / "trials" / "1" / "run.json").write_text(json.dumps({"umsrep_version": "0.1.0", "created": "2026-12-03"}))
    (out / "trials" / "2").mkdir()
    (out / "trials" / "2" / "recipe.yaml").write_text("name: t\n")  # a trial that did not finish: not copied
    _run(out / "representation")  # stage `heads`: the representation trained once
    with pytest.raises(RunDirError, match="trials.json"):  # an unfinished search has no summary yet
        make_evidence(out, "t0", dest=tmp_path / "ev")
    (out / "trials.json").write_text(json.dumps({"best": {"trial_id": "1", "objective": 0.47}, "trials": []}))
    ev = make_evidence(out, "busi-tune", dest=tmp_path / "ev")
    files = sorted(str(p.relative_to(ev)) for p in ev.rglob("*") if p.is_file())
    assert files == ["best_recipe.yaml", "command.txt", "meta.json", "recipe.yaml", "representation/metrics.json",
                     "representation/recipe.yaml", "trials.json", "trials/0/metrics.json", "trials/0/recipe.yaml",
                     "trials/1/metrics.json", "trials/1/recipe.yaml"]
    assert (ev / "recipe.yaml").read_text() == (out / "tune.yaml").read_text()
    assert (ev / "command.txt").read_text().startswith("umsrep tune recipe.yaml  # reconstructed")
    meta = json.loads((ev / "meta.json").read_text())
    assert meta["run_created"] == "2026-12-03" and meta["umsrep_version"] == "0.1.0"  # from the best trial's run
    assert json.loads((ev / "trials" / "1" / "metrics.json").read_text())["tasks"]["diagnosis"]["mcc"] == 0.47
    (tmp_path / "doc.md").write_text("<!-- evidence: ev/busi-tune/trials.json -->\n| trial | MCC |\n|---|---|\n"
                                     "| best | 0.470 |\n")
    report = check_doc("doc.md", tmp_path)
    assert not report.problems and report.checked == 1


def test_evidence_cli_refuses_with_one_line(tmp_path, capsys):
    run = _run(tmp_path / "run")
    dest = tmp_path / "ev"
    assert main(["evidence", str(run), "x", "--dest", str(dest)]) == 0
    (dest / "x" / "metrics.json").write_text("{}")
    assert main(["evidence", str(run), "x", "--dest", str(dest)]) == 2  # exists
    err = capsys.readouterr().err.strip()
    assert err.startswith("umsrep: error:") and "--overwrite" in err and "\n" not in err
    assert (dest / "x" / "metrics.json").read_text() == "{}"  # nothing already written lost
    assert main(["evidence", str(run), "x", "--dest", str(dest), "--overwrite"]) == 0
    assert (dest / "x" / "metrics.json").read_bytes() == (run / "metrics.json").read_bytes()
    assert main(["evidence", str(run), "../up", "--dest", str(dest)]) == 2
    assert main(["evidence", str(tmp_path / "nope"), "y", "--dest", str(dest)]) == 2
    assert not (dest / "y").exists()
    assert [p.name for p in dest.iterdir()] == ["x"]  # no temporary folders left


def test_evidence_refuses_large_files(tmp_path, capsys):
    run = _run(tmp_path / "run")
    (run / "metrics.json").write_text(json.dumps({"v": list(range(MAX_BYTES // 4))}))
    assert main(["evidence", str(run), "big", "--dest", str(tmp_path / "ev")]) == 2
    assert "limit" in capsys.readouterr().err
    assert not (tmp_path / "ev" / "big").exists()


@pytest.mark.parametrize("missing", ["metrics.json", "run.json"])
def test_evidence_needs_a_complete_run(tmp_path, capsys, missing):
    run = _run(tmp_path / "run")
    (run / missing).unlink()
    assert main(["evidence", str(run), "x", "--dest", str(tmp_path / "ev")]) == 2
    assert missing in capsys.readouterr().err
