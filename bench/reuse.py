"""Reuse of a pretrained UMS-Rep for a new task: pretrained encoder (frozen / fine-tuned) vs random init, at
10, 25, 50 and 100 % of the labelled training data, same epoch budget.

    python bench/reuse.py [--cases cxr acdc] [--fractions 0.1 0.25 0.5 1.0] [--epochs 10] [--out runs/reuse]
                          [--save-as reuse]   # bench/results/<name>.json; each case records its command, date, encoder
    python bench/reuse.py --quick          # tiny synthetic smoke run (publishes its own tiny encoder first)

Cases (real data through ``UMSREP_DATA``): ``cxr`` — lung segmentation (recipes/cxr_lung.yaml, 128²) from
``cxr-cdae-128``; ``acdc`` — myocardium segmentation (recipes/acdc.yaml, patient split) from ``cmr-cdae``. Each run
is a plain ``umsrep fit`` of one recipe, written as ``<out>/<case>/<run name>/recipe.yaml`` and run in ``run/``
beside it (``representation`` set per arm, strategy independent, early stopping off so every arm gets the same
epochs; ``data.split.train_fraction`` picks the labelled fraction, val and test unchanged). Arms: ``frozen``
(pretrained, trainable: false), ``finetune`` (pretrained, trainable: true), ``random`` (the same architecture
from the card, random init, trainable). Reported per run: test Dice, head-stage wall time, and the wall time to
reach a fixed quality — the first epoch whose validation loss (the task's Dice + CE loss) is at or below a
target, the target being the worst of the three arms' best validation loss at 100 % (so each arm reaches it
there). Runs already finished in --out with the same recipe are reused, interrupted ones resumed
(bench/_common.py ``run_fit``). Writes bench/results/reuse.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml
from _common import REPO, run_fit, save

ARMS = ("frozen", "finetune", "random")
CASES = {
    "cxr": {"recipe": "cxr_lung.yaml", "task": "lung", "encoder": "cxr-cdae-128"},   # cxr_lung.yaml is at 128x128
    "acdc": {"recipe": "acdc.yaml", "task": "myocardium", "encoder": "cmr-cdae",
             "tasks": {"myocardium": {"type": "segmentation", "classes": ["myocardium"],
                                      "mask_classes": {"myocardium": [2]}}}},
}


def arm_representation(arm: str, encoder: str, card: dict) -> dict:
    if arm in ("frozen", "finetune"):
        return {"kind": "pretrained", "name": encoder, "trainable": arm == "finetune"}
    # every architecture field of the card (filters, kernel size, convs per level, ...): the same network, untrained
    return {**card["architecture"], "train": "none", "trainable": True}


def case_recipe(case: dict, arm: str, fraction: float, epochs: int, card: dict, base: dict) -> dict:
    raw = json.loads(json.dumps(base))
    task = case["task"]
    tasks = case.get("tasks") or {task: raw["tasks"][task]}
    raw["tasks"] = {task: {**tasks[task], "epochs": epochs, "early_stopping": None,
                           "optimizer": {"name": "adam", "learning_rate": 1e-3}}}
    raw["representation"] = arm_representation(arm, case["encoder"], card)
    raw["strategy"] = {"kind": "independent"}
    raw["derive"] = {}
    raw.pop("patient", None)  # per-patient features name the recipe's own tasks (ACDC: heart), not this one
    raw["data"]["split"] = {**raw["data"].get("split", {}), "train_fraction": fraction}
    raw["name"] = f"reuse-{task}-{arm}-{int(round(fraction * 100))}"
    raw["output"] = {"html": False, "tensorboard": False}
    return raw


def encoder_summary(name: str, card: dict) -> dict:
    """Which shipped encoder a case reused (results of different encoder versions must not be mixed up)."""
    pre, tr = card.get("preprocessing", {}), card.get("training", {})
    return {"name": name, "image_size": pre.get("image_size"), "architecture": card.get("architecture"),
            "epochs_run": tr.get("epochs_run"), "recipe": tr.get("recipe")}


def fit_metrics(raw: dict, folder: Path, env: dict | None = None) -> dict:
    """metrics.json of ``umsrep fit`` of ``raw`` in ``folder/run`` (reused when complete, resumed if interrupted)."""
    return json.loads((run_fit(raw, folder, env, []) / "metrics.json").read_text())


def summarize(m: dict, task: str) -> dict:
    st = m["stages"][task]
    curve = [(h["epoch"], round(h["val_loss"], 5), round(h["time_s"], 3)) for h in st["history"]]
    # the best loss from the same rounded curve time_to reads: the worst arm's best is the target, and it must
    # reach its own best (read from the unrounded losses it could miss it by the rounding)
    return {"test_dice": m["tasks"][task]["test"]["dice"], "stage_time_s": st["wall_time_s"],
            "epochs": st["epochs_run"], "train_images": m["data"]["tasks"][task]["train"],
            "best_val_loss": min(c[1] for c in curve), "curve": curve}


def time_to(curve, target: float):
    t = 0.0
    for _, val_loss, dt in curve:
        t += dt
        if val_loss <= target:
            return round(t, 2)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--fractions", nargs="+", type=float, default=[0.1, 0.25, 0.5, 1.0])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", default="runs/reuse")
    ap.add_argument("--quick", action="store_true", help="tiny synthetic smoke run")
    ap.add_argument("--save-as", default="reuse",
                    help="bench/results/<name>.json (cases run separately with the same name accumulate in it)")
    a = ap.parse_args()
    out = Path(a.out)
    env = None
    cases = {c: CASES[c] for c in a.cases}
    bases = {c: yaml.safe_load((REPO / "recipes" / CASES[c]["recipe"]).read_text()) for c in cases}
    from umsrep import pretrained

    if a.quick:
        import os

        cases, bases, env = quick_setup(out)
        os.environ["UMSREP_PRETRAINED"] = env["UMSREP_PRETRAINED"]
        a.epochs, a.fractions = 1, [0.5, 1.0]
    results = {}
    for cname, case in cases.items():
        card = pretrained.verify(pretrained.resolve(case["encoder"]))
        print(f"case {cname}: task {case['task']!r} from {case['encoder']}", flush=True)
        rows = results[cname] = {}
        for frac in a.fractions:
            for arm in a.arms:
                raw = case_recipe(case, arm, frac, a.epochs, card, bases[cname])
                m = fit_metrics(raw, out / cname / raw["name"], env)
                rows[f"{arm}@{frac:g}"] = {"arm": arm, "fraction": frac, **summarize(m, case["task"])}
        full = [r["best_val_loss"] for r in rows.values() if r["fraction"] == max(a.fractions)]
        target = max(full)
        for r in rows.values():
            r["time_to_target_s"] = time_to(r["curve"], target)
        results[cname] = {"target_val_loss": target, "encoder": encoder_summary(case["encoder"], card),
                          "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"), "runs": rows}
        print_table(cname, results[cname], a.fractions, a.arms)
    if not a.quick:  # cases run separately accumulate in one file
        from _common import RESULTS

        prev = RESULTS / f"{a.save_as}.json"
        merged = json.loads(prev.read_text()).get("results", {}) if prev.is_file() else {}
        save(a.save_as, {"command": " ".join(sys.argv), "epochs": a.epochs, "results": {**merged, **results}})
    return results


def print_table(cname, res, fractions, arms):
    print(f"\n{cname}: test Dice / head wall time (s) / time to val loss <= {res['target_val_loss']:.4f} (s)")
    print("fraction  train  " + "  ".join(f"{arm:>24}" for arm in arms))
    for f in fractions:
        cells, n = [], None
        for arm in arms:
            r = res["runs"][f"{arm}@{f:g}"]
            n = r["train_images"]
            ttt = "—" if r["time_to_target_s"] is None else f"{r['time_to_target_s']:.0f}"
            cells.append(f"{r['test_dice']:.3f} / {r['stage_time_s']:5.0f} / {ttt:>4}")
        print(f"{f:8g}  {n:5d}  " + "  ".join(f"{c:>24}" for c in cells))


def quick_setup(out: Path):
    """A tiny synthetic case: train and publish a tiny denoising encoder, then reuse it."""
    import os

    reg = out / "registry"
    base = {"name": "quick", "seed": 1, "modality": "ultrasound",
            "data": {"synthetic": {"kind": "ultrasound", "n": 36, "size": 32, "seed": 1}, "image_size": 32,
                     "split": {"test": 0.25, "val": 0.2}},
            "representation": {"kind": "denoising_autoencoder", "filters": [8, 16, 16, 32], "epochs": 2,
                               "batch_size": 8},
            "tasks": {"lesion": {"type": "segmentation", "classes": ["lesion"], "epochs": 1, "batch_size": 8}},
            "output": {"html": False}}
    env = {**os.environ, "UMSREP_PRETRAINED": str(reg)}
    if not (reg / "quick-cdae").is_dir():
        m_dir = run_fit(base, out / "pretrain", env, [])
        subprocess.run([sys.executable, "-m", "umsrep", "pretrained", "publish", str(m_dir), "quick-cdae",
                        "--dest", str(reg)], check=True, env=env)
    case = {"quick": {"recipe": None, "task": "lesion", "encoder": "quick-cdae"}}
    return case, {"quick": base}, env


if __name__ == "__main__":
    main()
