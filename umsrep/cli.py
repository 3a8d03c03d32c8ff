"""The ``umsrep`` command line. Imports nothing heavy at start-up: TensorFlow is loaded only by the commands
that train or predict, so ``umsrep --help`` and ``umsrep validate`` answer fast.

Expected failures (bad recipe, bad data, bad run directory) print one line ``umsrep: error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from umsrep import __version__
from umsrep.errors import UmsrepError


def _log(msg: str) -> None:
    print(msg, flush=True)


def _quiet_tf():
    # TensorFlow's C++ start-up banner is noise for a CLI user; an explicit user setting wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cmd_validate(args) -> int:
    from umsrep.models.encoder_io import read_preprocessing
    from umsrep.recipe import load_recipe, task_head

    r = load_recipe(args.recipe, args.set)
    if r.representation.source:
        _, pre = read_preprocessing(r.representation.source, r)
        for name, t in r.tasks.items():  # the heads, for the loaded encoder's architecture
            task_head(name, t, pre.get("kind"), args.recipe)
    tasks = ", ".join(f"{n} ({t.type}, {len(t.classes)} classes)" for n, t in r.tasks.items())
    _log(f"{args.recipe}: valid recipe {r.name!r} — modality {r.modality}, representation "
         f"{r.representation.kind}, tasks: {tasks}")
    return 0


def _first_difference(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            d = _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
            if d:
                return d
        return None
    return None if a == b else (path, a, b)


# fields that may change between an interrupted run and its resumption (where and how it runs, not what)
RESUME_FREE = ("output", "distribute")


def _resume_recipe(args):
    """The recipe to continue ``--resume RUN``: the run's own, or RECIPE if it differs only in RESUME_FREE."""
    from umsrep.errors import RecipeError, RunDirError
    from umsrep.recipe import load_recipe, resolve_paths
    from umsrep.rundir import RunDir

    run = RunDir.open(args.resume)
    if run.is_complete:
        raise RunDirError(f"{run.path}: the run is already complete; nothing to resume")
    saved = load_recipe(run / RunDir.RECIPE)
    source = args.recipe or str(run / RunDir.RECIPE)
    recipe = load_recipe(source, args.set)
    if args.recipe:
        recipe = resolve_paths(recipe, Path(args.recipe).resolve().parent)
    old = {k: v for k, v in saved.model_dump(mode="json").items() if k not in RESUME_FREE}
    new = {k: v for k, v in recipe.model_dump(mode="json").items() if k not in RESUME_FREE}
    diff = _first_difference(old, new)
    if diff:
        field, was, now = diff
        raise RecipeError(f"{source}: {field}: is {now!r} but the run being resumed used {was!r}; resuming "
                          f"needs the same recipe (only {', '.join(RESUME_FREE)} may change)")
    return recipe, run


def cmd_fit(args) -> int:
    from umsrep.errors import RecipeError
    from umsrep.models.encoder_io import read_preprocessing
    from umsrep.recipe import load_recipe, resolve_paths

    if args.resume:
        if args.out:
            raise RecipeError("--out cannot be combined with --resume (the run continues in its own folder)")
        recipe, run = _resume_recipe(args)
    elif args.recipe is None:
        raise RecipeError("fit needs a RECIPE file (or --resume RUN_DIR)")
    else:
        recipe, run = resolve_paths(load_recipe(args.recipe, args.set), Path(args.recipe).resolve().parent), None
    if recipe.representation.source:  # refuse a mismatching encoder before anything is written
        read_preprocessing(recipe.representation.source, recipe)
    _quiet_tf()
    from umsrep.rundir import RunDir
    from umsrep.train.fit import fit

    if run is None:
        run = RunDir.create(recipe.output.dir, recipe.name, args.out)
        _log(f"run directory: {run.path}")
    else:
        _log(f"resuming run directory: {run.path}")
    from umsrep.console import print_cv_summary, print_summary

    metrics = fit(recipe, run, log=_log)
    (print_cv_summary if "cv" in metrics else print_summary)(metrics)
    _log(f"done: {run / RunDir.REPORT}")
    return 0


def cmd_evaluate(args) -> int:
    _quiet_tf()
    from umsrep.console import print_summary
    from umsrep.evaluate.runs import evaluate_run

    print_summary(evaluate_run(args.run_dir, log=_log, model_name=args.model))
    return 0


def cmd_predict(args) -> int:
    _quiet_tf()
    from umsrep.predict import predict

    predict(args.run_dir, args.inputs, args.out, batch_size=args.batch_size, log=_log)
    return 0


def cmd_tune(args) -> int:
    if args.resume and args.out:
        from umsrep.errors import RecipeError

        raise RecipeError("--out cannot be combined with --resume (the search continues in its own folder)")
    _quiet_tf()
    from umsrep.tune import tune

    tune(args.recipe, args.set, args.out, trials=args.trials, resume=args.resume, log=_log)
    return 0


def cmd_export(args) -> int:
    _quiet_tf()
    from umsrep.export import export

    export(args.run_dir, args.format, args.out, samples=args.samples, log=_log)
    return 0


def cmd_report(args) -> int:
    _quiet_tf()
    from umsrep.evaluate.runs import report_run

    report_run(args.run_dir, log=_log)
    return 0


def cmd_pretrained(args) -> int:
    from umsrep import pretrained  # no TensorFlow: cards and hashes only

    if args.action == "list":
        from rich.console import Console
        from rich.table import Table

        names = pretrained.names()
        if not names:
            _log(f"no pretrained encoders in {pretrained.pretrained_root()}")
            return 0
        table = Table(title=f"pretrained encoders ({pretrained.pretrained_root()})")
        for col in ("name", "modality", "kind", "input", "normalization", "parameters", "trained", "PSNR denoised"):
            table.add_column(col)
        for n in names:
            c = pretrained.read_card(pretrained.pretrained_root() / n)
            pre, tr = c["preprocessing"], c.get("training", {})
            levels = c.get("denoising", {}).get("levels", {})
            psnr = ", ".join(f"{lv} {v['psnr_denoised']:.1f}" for lv, v in levels.items()) or "—"
            table.add_row(n, str(c.get("modality")), str(pre.get("kind")),
                          "x".join(map(str, pre.get("image_size", []))) + f"x{pre.get('channels')}",
                          str(pre.get("normalization")), f"{c.get('parameters') or 0:,}",
                          f"{tr.get('how')} on {Path(str(tr.get('data'))).name}", psnr)
        Console(width=160).print(table)
        return 0
    if args.action == "show":
        import yaml

        folder = pretrained.resolve(args.name, "pretrained show")
        card = pretrained.verify(folder)
        _log(f"# {folder}  (SHA-256 verified)")
        _log(yaml.safe_dump(card, sort_keys=False, allow_unicode=True).rstrip())
        return 0
    out = pretrained.publish(args.run_dir, args.name, args.dest, args.description or "")
    _log(f"published {out} (card {out / pretrained.CARD_FILE})")
    return 0


def cmd_explain(args) -> int:
    _quiet_tf()
    from umsrep.predict import explain

    explain(args.run_dir, args.inputs, args.out, args.task, layer=args.layer, class_name=args.class_name,
            method=args.method, batch_size=args.batch_size, log=_log)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="umsrep", description="Unified Modality-Specific Representations: train a "
                                "shared encoder per imaging modality, attach light task heads.")
    p.add_argument("--version", action="version", version=f"umsrep {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    f = sub.add_parser("fit", help="train and evaluate from a recipe")
    f.add_argument("recipe", nargs="?", help="recipe YAML file (optional with --resume)")
    f.add_argument("--out", help="run directory (new or empty); default <output.dir>/<name>-<time>")
    f.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint "
                   "(with RECIPE: refuse if it differs from the run's recipe except output/distribute)")
    f.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a recipe field, e.g. --set representation.epochs=2 (repeatable)")
    f.set_defaults(func=cmd_fit)

    v = sub.add_parser("validate", help="check a recipe without training")
    v.add_argument("recipe")
    v.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    v.set_defaults(func=cmd_validate)

    e = sub.add_parser("evaluate", help="re-evaluate a finished run on its held-out splits")
    e.add_argument("run_dir")
    e.add_argument("--model", help="evaluate models/<MODEL>.keras (a compared strategy) instead of model.keras")
    e.set_defaults(func=cmd_evaluate)

    t = sub.add_parser("tune", help="KerasTuner search over recipe fields (the recipe's search section)")
    t.add_argument("recipe", nargs="?", help="recipe YAML file with a search section (optional with --resume)")
    t.add_argument("--trials", type=int, help="maximum trials (overrides search.max_trials)")
    t.add_argument("--out", help="search folder (new or empty); default <output.dir>/<name>-tune-<time>")
    t.add_argument("--resume", metavar="OUT", help="continue an interrupted search in OUT")
    t.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a recipe field")
    t.set_defaults(func=cmd_tune)

    x = sub.add_parser("export", help="export the inference model (SavedModel, ONNX, TFLite), verified")
    x.add_argument("run_dir")
    x.add_argument("--format", required=True, choices=["savedmodel", "onnx", "tflite"])
    x.add_argument("--out", required=True, help="output path (must not exist)")
    x.add_argument("--samples", nargs="+", metavar="IMAGE_OR_DIR",
                   help="images to verify the export on (default: 4 seeded random images)")
    x.set_defaults(func=cmd_export)

    rp = sub.add_parser("report", help="re-draw report.md and report.html of a finished run")
    rp.add_argument("run_dir")
    rp.set_defaults(func=cmd_report)

    pr = sub.add_parser("predict", help="masks and class probabilities for new images (files, folders, DICOM)")
    pr.add_argument("run_dir")
    pr.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    pr.add_argument("--out", required=True, help="output folder")
    pr.add_argument("--batch-size", type=int, default=16)
    pr.set_defaults(func=cmd_predict)

    ex = sub.add_parser("explain", help="Grad-CAM heat maps of a classification head for new images")
    ex.add_argument("run_dir")
    ex.add_argument("inputs", nargs="+", help="image files and/or folders")
    ex.add_argument("--task", required=True, help="classification task (head) to explain")
    ex.add_argument("--out", required=True, help="output folder (heatmaps/, overlays/, explanations.csv/.json)")
    ex.add_argument("--layer", help="layer path, e.g. encoder/enc3_relu (default: the last conv block before "
                    "the head)")
    ex.add_argument("--class", dest="class_name", help="explain this class (default: each image's predicted one)")
    ex.add_argument("--method", default="gradcam", choices=["gradcam", "gradcam++"])
    ex.add_argument("--batch-size", type=int, default=16)
    ex.set_defaults(func=cmd_explain)

    pt = sub.add_parser("pretrained", help="shipped pretrained encoders: list, show a card, publish a run's encoder")
    pts = pt.add_subparsers(dest="action", required=True, metavar="ACTION")
    pts.add_parser("list", help="the encoders in pretrained/ with their cards")
    sh = pts.add_parser("show", help="one encoder's card (its SHA-256 is verified)")
    sh.add_argument("name", help="a shipped name or an encoder folder")
    pu = pts.add_parser("publish", help="make a pretrained encoder folder (encoder.keras + card.yaml) from a run")
    pu.add_argument("run_dir")
    pu.add_argument("name")
    pu.add_argument("--dest", help="registry folder (default: the shipped pretrained/ folder)")
    pu.add_argument("--description")
    pt.set_defaults(func=cmd_pretrained)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UmsrepError as e:
        print(f"umsrep: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("umsrep: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
