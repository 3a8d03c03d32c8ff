"""Choose a measurement's parameters on the VALIDATION split of a finished run: every combination of the values
given, measured from the predicted masks against the same measurement from the true masks, without retraining
(the model predicts each split once; the masks are reused for every combination).

    python bench/measure_grid.py runs/muscle-us256 pennation --set angle_window=3,5,7,10,15 \\
        --set min_fascicle_length=0.01,0.015,0.02,0.025,0.03 [--out grid.json]

Prints one JSON line per combination: the parameters and, per data set the measurement's inputs come from
(``<tasks>/<split>``), the MAE, the number of images measured on both sides and those the prediction missed. Pick
on ``val`` (the smallest MAE among the combinations that measure every validation image, say) and confirm once on
test with ``umsrep evaluate RUN --set derive.<name>.<field>=VALUE``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("measurement", help="a derive entry with `measure:` in the run's recipe")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=V1,V2,...", required=True,
                    help="a measurement field and the values to try (repeatable)")
    ap.add_argument("--out", help="also write the lines as a JSON list here")
    args = ap.parse_args(argv)

    from umsrep.evaluate.measurements import _Labels, evaluate_measurements
    from umsrep.evaluate.runs import load_finished_run
    from umsrep.io import load_yaml

    run, recipe, model, _, tasks = load_finished_run(args.run_dir, log=lambda *a: None)
    spec = recipe.derive.get(args.measurement)
    if spec is None or spec.measure is None:
        ap.error(f"{args.measurement!r} is not a measurement of {args.run_dir} ({sorted(recipe.derive)})")
    grid = {}
    for item in args.set:
        field, _, values = item.partition("=")
        grid[field.strip()] = [load_yaml(v) for v in values.split(",")]
    labels = _Labels(model, recipe, 16)   # predicted masks, computed once and reused
    rows = []
    for combo in itertools.product(*grid.values()):
        params = dict(zip(grid, combo))
        derive = {args.measurement: type(spec).model_validate({**spec.model_dump(by_alias=True), **params})}
        out = evaluate_measurements(model, recipe.model_copy(update={"derive": derive}), tasks, labels=labels,
                                    log=lambda *a: None)[args.measurement]
        row = {**params}
        for block in out["by_data"]:
            for split in ("val", "test"):
                if split in block:
                    a = block[split]["deg" if out["unit"] == "deg" else "px"]
                    row[f"{'+'.join(block['tasks'])}/{split}"] = {"mae": a.get("mae"), "n": a.get("n"),
                                                                   "n_missing_pred": a.get("n_missing_pred"),
                                                                   "n_missing_true": a.get("n_missing_true")}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"run": str(run.path), "measurement": args.measurement,
                                              "command": " ".join(["python", "bench/measure_grid.py", *sys.argv[1:]]),
                                              "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
