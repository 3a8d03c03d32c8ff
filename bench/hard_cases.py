"""Which images every model gets wrong: one task's per-image outcome (Dice for segmentation, correct or not for
classification) over several finished runs of the same split — training seeds, compared strategies, reruns —
read from their saved predictions (no model, no TensorFlow). Reports the images that every run fails, with their
class and the size of their true mask, and each run's mean with and without them: whether a gap is spread over
the test set or sits in a few images no run gets right.

    python bench/hard_cases.py runs/busi-us256-seeds lesion [--below 0.1] [--approach joint] [--split test] \\
        [--label-task diagnosis] [--out hard.json]

A seeds parent (``seed<s>/`` sub-runs) stands for its sub-runs; several run folders may be given. Every run must
have predicted the same images (the same split): otherwise refused with one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def expand(run_dirs):
    """Run folders, a seeds / folds parent replaced by its sub-runs (in the parent recipe's order)."""
    from umsrep.recipe import load_recipe
    from umsrep.train.crossval import subrun_folders

    out = []
    for d in map(Path, run_dirs):
        subs = subrun_folders(load_recipe(d / "recipe.yaml")) if (d / "recipe.yaml").is_file() else []
        out += [d / s for s in subs] if subs else [d]
    return out


def outcomes(run, task_name, approach, split, label_task):
    """(names, per-image outcome, type, truth class names or None, true-mask fraction or None) of one run."""
    from umsrep.evaluate.predictions import approach_dir, read_split, rows
    from umsrep.evaluate.scores import per_image_outcome
    from umsrep.recipe import load_recipe

    recipe = load_recipe(run / "recipe.yaml")
    if task_name not in recipe.tasks:
        raise SystemExit(f"{run}: no task {task_name!r} (tasks: {', '.join(recipe.tasks)})")
    task = recipe.tasks[task_name]
    p = read_split(approach_dir(run, approach or recipe.strategy.kind) / f"{split}.npz")
    has = np.asarray(p[f"{task_name}.has_truth"], bool)
    names = np.asarray(p[f"{task_name}.names"])[has]
    y = rows(p[f"{task_name}.truth"], has)
    if task.type == "classification":
        pred = p[f"{task_name}.probs"][has].argmax(-1)
        area = None
    else:
        pred = rows(p[f"{task_name}.labels"], has)
        area = np.array([float(np.mean(np.asarray(m) > 0)) for m in y])
    per = per_image_outcome(y, pred, task.type, len(task.classes))
    label = None
    if label_task:
        lt = recipe.tasks[label_task]
        lhas = np.asarray(p[f"{label_task}.has_truth"], bool)
        by_name = dict(zip(np.asarray(p[f"{label_task}.names"])[lhas], p[f"{label_task}.truth"][lhas]))
        label = [lt.classes[int(by_name[n])] if n in by_name else None for n in names]
    return list(map(str, names)), per, task.type, label, area


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="finished run folders (a seeds parent stands for its sub-runs), then "
                                            "the task")
    ap.add_argument("--below", type=float, default=None,
                    help="an image fails below this outcome (default: Dice 0.1; classification: wrong)")
    ap.add_argument("--approach", default=None, help="predictions/<approach>/ (default: each run's strategy)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--label-task", default=None, help="a classification task whose true class is listed for each "
                                                       "hard image")
    ap.add_argument("--out", help="also write the result as JSON here")
    args = ap.parse_args(argv)
    *run_dirs, task_name = args.runs
    if not run_dirs:
        ap.error("give at least one run folder, then the task")
    runs = expand(run_dirs)
    results = [outcomes(r, task_name, args.approach, args.split, args.label_task) for r in runs]
    names, _, kind, label, area = results[0]
    for r, res in zip(runs, results):
        if res[0] != names:
            raise SystemExit(f"{r}: predicted other {args.split} images than {runs[0]} (not the same split)")
    below = args.below if args.below is not None else (0.5 if kind == "classification" else 0.1)
    per = np.stack([res[1] for res in results])          # (runs, images)
    hard = np.all(per < below, axis=0)
    out = {
        "task": task_name, "split": args.split, "fails_below": below, "n_images": len(names),
        "runs": [str(r) for r in runs],
        "n_hard": int(hard.sum()),
        "mean": [round(float(v.mean()), 4) for v in per],
        "mean_without_hard": [round(float(v[~hard].mean()), 4) if (~hard).any() else None for v in per],
        "n_fail_per_run": [int((v < below).sum()) for v in per],
        "hard": [{"name": names[i], "outcome": [round(float(v[i]), 4) for v in per],
                  **({"label": label[i]} if label is not None else {}),
                  **({"true_mask_fraction": round(float(area[i]), 4)} if area is not None else {})}
                 for i in np.flatnonzero(hard)],
    }
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
