"""The ``umsrep`` command line. Imports nothing heavy at start-up: TensorFlow is loaded only by the commands
that train or predict, so ``umsrep --help`` and ``umsrep validate`` answer fast.

Expected failures (bad recipe, bad data, bad run directory, file-system and encoding errors, damaged files) print
one line ``umsrep: error: ...`` and exit 2 — :func:`main` is the one error boundary; ``--debug`` shows the
traceback instead. Ctrl-C exits 130. See docs/reliability.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from umsrep import __version__
from umsrep.errors import UmsrepError, describe, one_line


def _log(msg: str) -> None:
    print(msg, flush=True)


def _quiet_tf():
    # TensorFlow's C++ log threshold must be set before TensorFlow is imported; an explicit user setting wins.
    # (Set here, by the CLI only; importing umsrep changes no global switch.)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _quiet_python_logs() -> None:
    """TensorFlow's, absl's and Keras' Python-level start-up lines, retracing warnings and framework warnings are
    not for a CLI user (``--verbose`` keeps them)."""
    import logging
    import warnings

    for name in ("tensorflow", "absl", "keras", "h5py", "jax"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(tensorflow|keras|absl|tf2onnx|onnx|google)(\.|$)")


def _check_source(recipe) -> dict:
    """The encoder ``representation.source`` loads — and with ``baseline: true`` the denoiser saved with it — fit the
    recipe (preprocessing, image size): a one-line error before anything is written. Returns its preprocessing."""
    from umsrep.models.encoder_io import load_denoiser, read_preprocessing

    _, pre = read_preprocessing(recipe.representation.source, recipe)
    if recipe.baseline:  # the baseline denoises its images with it (fit.py _baseline loads it again there)
        load_denoiser(recipe.representation.source, recipe, warn=lambda msg: None)
    return pre


def cmd_validate(args) -> int:
    from umsrep.recipe import load_recipe, task_head

    r = load_recipe(args.recipe, args.set)
    if r.representation.source:
        pre = _check_source(r)
        for name, t in r.tasks.items():  # the heads, for the loaded encoder's architecture
            task_head(name, t, pre.get("kind"), args.recipe)
    tasks = ", ".join(f"{n} ({t.type}, {len(t.classes)} class{'es' if len(t.classes) != 1 else ''})"
                      for n, t in r.tasks.items())
    _log(f"{args.recipe}: valid recipe {r.name!r} — modality {r.modality}, representation "
         f"{r.representation.kind}, tasks: {tasks}")
    return 0


def _resume_recipe(args):
    """The recipe to continue ``--resume RUN``: the run's own, or RECIPE if it differs only in RUN_FREE_FIELDS."""
    from umsrep.errors import RecipeError, RunDirError
    from umsrep.recipe import RUN_FREE_FIELDS, load_recipe, recipe_difference, resolve_paths
    from umsrep.rundir import RunDir

    run = RunDir.open(args.resume)
    if run.is_complete:
        raise RunDirError(f"{run.path}: the run is already complete; nothing to resume")
    saved = load_recipe(run / RunDir.RECIPE)
    source = args.recipe or str(run / RunDir.RECIPE)
    recipe = load_recipe(source, args.set)
    if args.recipe:
        recipe = resolve_paths(recipe, Path(args.recipe).resolve().parent)
    diff = recipe_difference(saved, recipe)
    if diff:
        field, was, now = diff
        raise RecipeError(f"{source}: {field}: is {now!r} but the run being resumed used {was!r}; resuming "
                          f"needs the same recipe (only {', '.join(RUN_FREE_FIELDS)} may change)")
    return recipe, run


def _with_seeds(recipe, text):
    """``--seeds 0,1,2``: the recipe's ``seeds``, validated like the recipe field."""
    from umsrep.errors import RecipeError
    from umsrep.recipe import parse_recipe

    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise RecipeError(f"--seeds: expected comma-separated integers, got {text!r}") from None
    return parse_recipe({**recipe.model_dump(mode="json"), "seeds": seeds}, "--seeds")


def cmd_fit(args) -> int:
    from umsrep.errors import RecipeError
    from umsrep.recipe import load_recipe, resolve_paths

    if args.resume:
        if args.out or args.seeds:
            raise RecipeError(f"{'--out' if args.out else '--seeds'} cannot be combined with --resume (the run "
                              f"continues in its own folder with its own recipe)")
        recipe, run = _resume_recipe(args)
    elif args.recipe is None:
        raise RecipeError("fit needs a RECIPE file (or --resume RUN_DIR)")
    else:
        recipe, run = resolve_paths(load_recipe(args.recipe, args.set), Path(args.recipe).resolve().parent), None
    if args.seeds:
        recipe = _with_seeds(recipe, args.seeds)
    if recipe.representation.source:  # refuse a mismatching encoder (or baseline denoiser) before anything is written
        _check_source(recipe)
    from umsrep.rundir import RunDir
    from umsrep.train.fit import fit

    if run is None:
        from umsrep.train.crossval import check_kept_subruns, subrun_folders

        if args.out and Path(args.out).is_dir():  # finished sub-runs placed there: checked before anything is written
            check_kept_subruns(recipe, args.out)
        run = RunDir.create(recipe.output.dir, recipe.name, args.out, adopt=subrun_folders(recipe))
        _log(f"run directory: {run.path}")
    else:
        state = run.describe_state()
        run.lock()
        run.mark("training")
        _log(f"resuming run directory: {run.path} (it {state})")
    from umsrep.console import print_cv_summary, print_summary

    try:
        metrics = fit(recipe, run, log=_log)
    except KeyboardInterrupt:
        run.mark("interrupted", f"interrupted; continue with `umsrep fit --resume {run.path}`")
        raise
    except BaseException as e:  # noqa: B036  (marked, then re-raised to the error boundary)
        run.mark("failed", describe(e) or f"{type(e).__name__}: {one_line(e)}")
        raise
    finally:
        run.unlock()
    if "cv" in metrics or "seeds" in metrics:
        print_cv_summary(metrics)
    else:
        print_summary(metrics)
    _log(f"done: {run / RunDir.REPORT}")
    return 0


def cmd_evaluate(args) -> int:
    from umsrep.errors import RecipeError

    data_opts = {k: getattr(args, k) for k in ("images", "masks", "labels", "filename_column", "label_column",
                                                "group_by")}
    if args.data is None and (args.out or args.overwrite or any(v is not None for v in data_opts.values())):
        raise RecipeError("--out, --overwrite and the data options go with --data DIR")
    if args.data is not None and not args.out:
        raise RecipeError("--data needs --out (the folder for evaluation.json and the report)")
    from umsrep.console import print_summary
    from umsrep.evaluate.runs import evaluate_external, evaluate_run

    if args.data is not None:
        print_summary(evaluate_external(args.run_dir, args.data, args.out, overwrite=args.overwrite,
                                        options=data_opts, model_name=args.model, log=_log, tta=args.tta,
                                        overrides=args.set),
                      title="scored")
    else:
        from umsrep.train.crossval import evaluate_parent, parent_kind

        kind = parent_kind(args.run_dir)
        if kind:   # seeds / folds: each sub-run, and the summary again
            from umsrep.console import print_cv_summary

            print_cv_summary(evaluate_parent(args.run_dir, kind, log=_log, model_name=args.model, tta=args.tta,
                                             overrides=args.set))
        else:
            print_summary(evaluate_run(args.run_dir, log=_log, model_name=args.model, tta=args.tta,
                                       overrides=args.set))
    return 0


def cmd_predict(args) -> int:
    from umsrep.predict import predict

    predict(args.run_dir, args.inputs, args.out, batch_size=args.batch_size, overwrite=args.overwrite, log=_log,
            tta=args.tta, overlays=not args.no_overlays, denoised=not args.no_denoised, overrides=args.set)
    return 0


def cmd_tune(args) -> int:
    if args.resume and args.out:
        from umsrep.errors import RecipeError

        raise RecipeError("--out cannot be combined with --resume (the search continues in its own folder)")
    from umsrep.tune import tune

    tune(args.recipe, args.set, args.out, trials=args.trials, resume=args.resume, log=_log)
    return 0


def cmd_export(args) -> int:
    from umsrep.export import export

    export(args.run_dir, args.format, args.out, samples=args.samples, overwrite=args.overwrite, log=_log)
    return 0


def cmd_report(args) -> int:
    from umsrep.evaluate.runs import report_run

    report_run(args.run_dir, log=_log)
    return 0


def _card_row(c):
    pre, tr = c["preprocessing"], c.get("training") or {}
    levels = (c.get("denoising") or {}).get("levels", {})
    psnr = ", ".join(f"{lv} {v['psnr_denoised']:.1f}" for lv, v in levels.items()) or "—"
    return (str(c.get("modality")), str(pre.get("kind")),
            "x".join(map(str, pre.get("image_size", []))) + f"x{pre.get('channels')}",
            str(pre.get("normalization")), f"{c.get('parameters') or 0:,}",
            f"{tr.get('how')} on {Path(str(tr.get('data'))).name}", psnr)


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
        bad = []
        for n in names:
            try:  # one damaged card must not hide the others
                table.add_row(n, *_card_row(pretrained.read_card(pretrained.pretrained_root() / n)))
            except (UmsrepError, KeyError, TypeError, ValueError, AttributeError) as e:
                bad.append(describe(e) or f"{pretrained.pretrained_root() / n / pretrained.CARD_FILE}: "
                           f"malformed card ({type(e).__name__}: {one_line(e)})")
                table.add_row(n, "[red]unreadable card (see below)[/red]", *[""] * 6)
        Console(width=160).print(table)
        for b in bad:
            print(f"umsrep: error: {b}", file=sys.stderr)
        return 2 if bad else 0
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
    from umsrep.predict import explain

    explain(args.run_dir, args.inputs, args.out, args.task, layer=args.layer, class_name=args.class_name,
            method=args.method, batch_size=args.batch_size, overwrite=args.overwrite, log=_log)
    return 0


def cmd_evidence(args) -> int:
    from umsrep.evidence import make_evidence  # no TensorFlow: small files only

    out = make_evidence(args.run_dir, args.name, dest=args.dest, command=args.command, shared=args.shared,
                        overwrite=args.overwrite)
    _log(f"evidence written to {out} ({', '.join(sorted(p.name for p in out.iterdir()))})")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with umsrep's one-line errors (no usage block; ``--help`` shows it)."""

    def error(self, message):
        self.exit(2, f"umsrep: error: {self.prog}: {one_line(message)} (see `{self.prog} --help`)\n")


def _int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


positive_int = _int_at_least(1)

# the image-size cap (pixels, checked from the file header before decoding; see umsrep.data.readers)
MAX_PIXELS_ENV = "UMSREP_MAX_IMAGE_PIXELS"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)  # accepted before or after the command
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error instead of one line")
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show TensorFlow's start-up and framework log lines")
    common.add_argument("--max-image-pixels", type=positive_int, default=argparse.SUPPRESS, metavar="N",
                        help=f"refuse input images with more pixels (from the header, before decoding; default "
                        f"100000000, or ${MAX_PIXELS_ENV})")
    p = _Parser(prog="umsrep", parents=[common], description="Unified Modality-Specific Representations: train a "
                "shared encoder per imaging modality, attach light task heads.")
    p.add_argument("--version", action="version", version=f"umsrep {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add = sub.add_parser

    def add_parser(name, **kw):
        return _add(name, parents=[common], **kw)

    sub.add_parser = add_parser

    f = sub.add_parser("fit", help="train and evaluate from a recipe")
    f.add_argument("recipe", nargs="?", help="recipe YAML file (optional with --resume)")
    f.add_argument("--out", help="run directory (new or empty); default <output.dir>/<name>-<time>")
    f.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint "
                   "(with RECIPE: refuse if it differs from the run's recipe except name/output/distribute)")
    f.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a recipe field, e.g. --set representation.epochs=2 (repeatable)")
    f.add_argument("--seeds", metavar="S1,S2,...", help="train once per training seed on one split (the recipe's "
                   "`seeds`): sub-runs seed<s>/, mean ± SD in the parent's metrics.json")
    f.set_defaults(func=cmd_fit)

    v = sub.add_parser("validate", help="check a recipe without training")
    v.add_argument("recipe")
    v.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    v.set_defaults(func=cmd_validate)

    e = sub.add_parser("evaluate", help="re-evaluate a finished run on its held-out splits (a seeds / folds parent: "
                       "every sub-run, and the summary again), or score it on another labelled data set (--data)")
    e.add_argument("run_dir")
    e.add_argument("--model", help="evaluate models/<MODEL>.keras (a compared strategy) instead of model.keras")
    e.add_argument("--data", metavar="DIR_OR_YAML", help="another labelled data set: a folder of images + masks "
                   "and/or a labels CSV (the recipe's layout), or a YAML file with a data: section; every image is "
                   "scored at its own resolution")
    e.add_argument("--out", help="with --data: folder for evaluation.json, report.md/.html, predictions/")
    e.add_argument("--overwrite", action="store_true", help="with --data: write into a non-empty --out")
    for opt in ("images", "masks", "labels", "filename-column", "label-column", "group-by"):
        e.add_argument(f"--{opt}", help=f"with --data: the {opt.replace('-', ' ')} (default: the run's recipe"
                       + ("; none for group-by)" if opt == "group-by" else ")"))
    e.add_argument("--tta", choices=["none", "flip"], default="none", help="test-time augmentation: flip = the "
                   "mean of the predictions on each image and its left-right mirror image")
    e.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="re-measure with other derive.* / patient.* fields (measurement parameters, decision rules: "
                   "computed from the trained heads), e.g. --set derive.pennation.angle_window=5 (repeatable; any "
                   "other field needs a new fit)")
    e.set_defaults(func=cmd_evaluate)

    t = sub.add_parser("tune", help="KerasTuner search over recipe fields (the recipe's search section)")
    t.add_argument("recipe", nargs="?", help="recipe YAML file with a search section (optional with --resume)")
    t.add_argument("--trials", type=positive_int, help="maximum trials (overrides search.max_trials)")
    t.add_argument("--out", help="search folder (new or empty); default <output.dir>/<name>-tune-<time>")
    t.add_argument("--resume", metavar="OUT", help="continue an interrupted search in OUT")
    t.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a recipe field")
    t.set_defaults(func=cmd_tune)

    x = sub.add_parser("export", help="export the inference model (SavedModel, ONNX, TFLite), verified")
    x.add_argument("run_dir")
    x.add_argument("--format", required=True, choices=["savedmodel", "onnx", "tflite"])
    x.add_argument("--out", required=True, help="output path (must not exist unless --overwrite)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing --out (only once the new "
                   "export is made and verified)")
    x.add_argument("--samples", nargs="+", metavar="IMAGE_OR_DIR",
                   help="images to verify the export on (default: 4 seeded random images)")
    x.set_defaults(func=cmd_export)

    rp = sub.add_parser("report", help="re-draw report.md and report.html of a finished run")
    rp.add_argument("run_dir")
    rp.set_defaults(func=cmd_report)

    pr = sub.add_parser("predict", help="masks and class probabilities for new images (files, folders, DICOM)")
    pr.add_argument("run_dir")
    pr.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    pr.add_argument("--out", required=True, help="output folder (new or empty unless --overwrite)")
    pr.add_argument("--overwrite", action="store_true", help="write into an --out that already holds files "
                    "(files of the same names are replaced)")
    pr.add_argument("--batch-size", type=positive_int, default=16)
    pr.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="measure with other derive.* / patient.* fields (measurement parameters, decision rules: "
                    "computed from the trained heads), e.g. --set derive.pennation.angle_window=5 (repeatable; any "
                    "other field needs a new fit)")
    pr.add_argument("--tta", choices=["none", "flip"], default="none", help="test-time augmentation: flip = the "
                    "mean of the predictions on each image and its left-right mirror image")
    pr.add_argument("--no-overlays", action="store_true", help="do not write overlays/ (faster)")
    pr.add_argument("--no-denoised", action="store_true", help="do not write denoised/ (faster)")
    pr.set_defaults(func=cmd_predict)

    ex = sub.add_parser("explain", help="Grad-CAM heat maps of a classification head for new images")
    ex.add_argument("run_dir")
    ex.add_argument("inputs", nargs="+", help="image files and/or folders")
    ex.add_argument("--task", required=True, help="classification task (head) to explain")
    ex.add_argument("--out", required=True, help="output folder (heatmaps/, overlays/, explanations.csv/.json); "
                    "new or empty unless --overwrite")
    ex.add_argument("--overwrite", action="store_true", help="write into an --out that already holds files")
    ex.add_argument("--layer", help="layer path, e.g. encoder/enc3_relu (default: the last conv block before "
                    "the head)")
    ex.add_argument("--class", dest="class_name", help="explain this class (default: each image's predicted one)")
    ex.add_argument("--method", default="gradcam", choices=["gradcam", "gradcam++"])
    ex.add_argument("--batch-size", type=positive_int, default=16)
    ex.set_defaults(func=cmd_explain)

    pt = sub.add_parser("pretrained", help="shipped pretrained encoders: list, show a card, publish a run's encoder")
    pts = pt.add_subparsers(dest="action", required=True, metavar="ACTION")
    _padd = pts.add_parser
    pts.add_parser = lambda name, **kw: _padd(name, parents=[common], **kw)
    pts.add_parser("list", help="the encoders in pretrained/ with their cards")
    sh = pts.add_parser("show", help="one encoder's card (its SHA-256 is verified)")
    sh.add_argument("name", help="a shipped name or an encoder folder")
    pu = pts.add_parser("publish", help="make a pretrained encoder folder (encoder.keras + card.yaml) from a run")
    pu.add_argument("run_dir")
    pu.add_argument("name")
    pu.add_argument("--dest", help="registry folder (default: the shipped pretrained/ folder)")
    pu.add_argument("--description")
    pt.set_defaults(func=cmd_pretrained)

    ev = sub.add_parser("evidence", help="copy a run's metrics, recipe, command and machine into docs/evidence/NAME")
    ev.add_argument("run_dir")
    ev.add_argument("name", help="evidence folder name (docs/evidence/NAME)")
    ev.add_argument("--command", help="the exact command line that made the run (written to command.txt)")
    ev.add_argument("--shared", action="store_true", help="the machine was shared with other jobs during the run")
    ev.add_argument("--dest", help="evidence root (default: docs/evidence in the current folder)")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing docs/evidence/NAME")
    ev.set_defaults(func=cmd_evidence)
    return p


def main(argv=None) -> int:
    """Run one command; the error boundary: expected failures become one line ``umsrep: error: ...`` on stderr and
    exit code 2 (``--debug``: the traceback instead), Ctrl-C 130. Anything else is a bug and keeps its traceback."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad option (one line, exit 2)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    debug, verbose = getattr(args, "debug", False), getattr(args, "verbose", False)
    if not verbose:
            _quiet_python_logs()
    if getattr(args, "max_image_pixels", None):
        os.environ[MAX_PIXELS_ENV] = str(args.max_image_pixels)
    # OpenCV's own decoder cap, for content the header check does not parse (read when OpenCV first decodes)
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", os.environ.get(MAX_PIXELS_ENV, "100000000"))
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("umsrep: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        message = describe(e)
        if message is None or debug:
            raise
        print(f"umsrep: error: {_printable(message)}", file=sys.stderr)
        return getattr(e, "exit_code", 2)


def _printable(text: str) -> str:
    """Undecodable bytes of POSIX file names (surrogate escapes) as \\xNN, so the line always prints."""
    try:
        return one_line(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeError:
        return one_line(text).encode("utf-8", "backslashreplace").decode("utf-8")


def run() -> int:
    """The process entry point (``umsrep``, ``python -m umsrep``): :func:`main` with TensorFlow's C++ start-up lines
    filtered out of stderr (they are written by C++ before any log setting applies; ``--verbose`` keeps them)."""
    argv = sys.argv[1:]
    if "--verbose" in argv:
        return main(argv)
    from umsrep.console import filtered_stderr

    with filtered_stderr():
        return main(argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(run())
