"""``report.md``: the run's tables in readable Markdown, rendered from ``metrics.json`` alone."""

from __future__ import annotations

CLS_KEYS = ("accuracy", "precision", "recall", "f1", "mcc", "roc_auc", "sensitivity", "specificity")
SEG_KEYS = ("dice", "iou", "pixel_accuracy")
CLASS_KEY_CLASHES = ("_ci95", "_by_group")  # no per-class key `<metric>_<class>` ends so: it would read as an
# interval or a per-group mean (umsrep.evaluate.scores leaves such classes out)


def ci_unit(column, n) -> str:
    """``"20 patients"`` / ``"160 images"`` / ``"12 groups (study_id)"``: what a bootstrap resampled."""
    if column is None:
        return f"{n} images"
    return f"{n} {column}s" if column.isalpha() else f"{n} groups ({column})"


def _fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(m: dict) -> str:
    run = m.get("run", {})
    ext = m.get("external")
    if ext:
        out = [f"# umsrep run `{run.get('name', '?')}` on other labelled data", "",
               f"The trained run `{ext['run']}` ({ext['model']}, strategy **{run.get('strategy')}**, modality "
               f"**{run.get('modality')}**) scored on every image of `{ext['data']}` (no split; none of these "
               f"images was used for training). Segmentation is scored at each image's own resolution: "
               f"{ext['resize_rule']}. Evaluation time {run.get('wall_time_s')} s.", ""]
    else:
        out = [f"# umsrep run `{run.get('name', '?')}`", "",
               f"Modality **{run.get('modality')}**, representation **{run.get('representation')}**, strategy "
               f"**{run.get('strategy')}**, total wall time {run.get('wall_time_s')} s, umsrep "
               f"{run.get('umsrep_version')}. All metrics are on held-out splits (the test split was never used "
               f"for training, early stopping or model selection).", ""]

    data = m.get("data", {})
    out += ["## Data", ""]
    rows = []
    for k, s in data.get("sources", {}).items():
        pool = s.get("pool") or {}   # data.pool: the joined set, then a row per pooled data set
        rows.append([k, "pooled (data.pool):" if pool else s["root"], s["images"], s["train"], s["val"], s["test"],
                     len(s["skipped"])])
        rows += [[f"{k} / {o}", v["root"], v["images"], v["train"], v["val"], v["test"], ""] for o, v in pool.items()]
    out.append(_table(["data set", "root", "images", "train", "val", "test", "skipped files"], rows))
    out += ["", _table(["task", "train", "val", "test", "skipped", "left out by label_map"],
                       [[n, t["train"], t["val"], t["test"], len(t["skipped"]),
                         ", ".join(f"{k}: {v}" for k, v in t.get("excluded_by_label_map", {}).items()) or "-"]
                        for n, t in data.get("tasks", {}).items()]), ""]
    skipped = [s for src in data.get("sources", {}).values() for s in src["skipped"]]
    skipped += [s for t in data.get("tasks", {}).values() for s in t["skipped"]]
    if skipped:
        out += ["### Skipped files", ""] + [f"- `{s['file']}`: {s['reason']}" for s in skipped] + [""]

    params = m.get("parameters", {})
    if ext:
        out += _results(m)
        return "\n".join(out) + "\n"
    out += ["## Training", ""]
    out.append(_table(["stage", "trainable params", "total params", "epochs", "best epoch", "early stop",
                       "wall time (s)"],
                      [[n, s["parameters"]["trainable"], s["parameters"]["total"], s["epochs_run"], s["best_epoch"],
                        "yes" if s["stopped_early"] else "no", s["wall_time_s"]]
                       for n, s in m.get("stages", {}).items()]))
    if params:
        out += ["", f"Encoder {params['encoder']:,} parameters; heads "
                + ", ".join(f"{h} {n:,}" for h, n in params["heads"].items())
                + f"; saved multi-head model {params['model_total']:,}"
                + (f", {params['flops_per_image'] / 1e9:.2f} GFLOPs per image (forward)" if "flops_per_image" in params
                   else "") + ".", ""]
    out += _results(m)
    if "comparison" in m:
        out += _comparison(m["comparison"])
    return "\n".join(out) + "\n"


def _ci_note(t):
    """"95% CIs: bootstrap over 20 patients (test)" from a task's test metrics."""
    b = t.get("test", {}).get("ci95_bootstrap")
    if not b:
        return []

    unit = ci_unit(None if b["over"] == "image" else b["over"], b["n"])
    out = ["", f"95% CIs: percentile bootstrap over {unit} (test split)"
           + ("; whole groups are resampled, so images of one group do not count as independent." if b["over"]
              != "image" else ".")]
    key = "dice" if t["type"] == "segmentation" else "accuracy"
    g = t["test"].get("by_group")
    if g:
        out += ["", f"Test {key} averaged per {b['over']} first (each of the {g['n']} counts once): {_fmt(g['mean'])}; "
                    f"the largest {b['over']} has {g['largest']} of the {t['test']['n']} test images"
                    + (f" ({g['largest_group']}: {key} {_fmt(g['largest_mean'])}; the other images "
                       f"{_fmt(g['others_mean'])})." if g.get("others_mean") is not None else ".")]
        if g.get("dice_pooled") is not None:
            lo, hi = g["dice_pooled_ci95"]
            per_class = g.get("dice_pooled_per_class") or {}
            out += ["", f"Test Dice with each {b['over']}'s pixels pooled (its images scored as one volume): "
                        f"{_fmt(g['dice_pooled'])} [{_fmt(lo)}, {_fmt(hi)}]"
                        + (" (" + ", ".join(f"{c} {_fmt(v)}" for c, v in per_class.items()) + ")"
                           if len(per_class) > 1 else "") + "."]
    src = t["test"].get("by_source")
    if src:
        out += ["", f"Test {key} per pooled data set (data.pool): " + "; ".join(
            f"{o} {_fmt(v[key])} [{_fmt(v[key + '_ci95'][0])}, {_fmt(v[key + '_ci95'][1])}] (n = {v['n']})"
            for o, v in src.items()) + "."]
    return out


def _results(m: dict) -> list:
    out = ["## Results", ""]
    for name, t in m.get("tasks", {}).items():
        if t["type"] == "classification":
            out += [f"### {name} (classification: {', '.join(t['classes'])})", ""]
            out.append(_table(["split", "n"] + list(CLS_KEYS) + ["accuracy 95% CI"],
                              [[s, t[s]["n"]] + [t[s].get(k) for k in CLS_KEYS] + [_interval(t[s], "accuracy")]
                               for s in ("val", "test") if s in t]))
            out += _ci_note(t)
            if "test" in t:
                cm = t["test"]["confusion_matrix"]
                out += ["", "Test confusion matrix (rows: true, columns: predicted):", "",
                        _table(["true \\ pred"] + t["classes"], [[c] + row for c, row in zip(t["classes"], cm)])]
                out += ["", _table(["class", "precision", "recall (sens.)", "specificity", "f1", "roc_auc", "support"],
                                   [[c, v.get("precision"), v.get("recall"), v.get("specificity"), v.get("f1"),
                                     v.get("roc_auc"), v.get("support")] for c, v in t["test"]["per_class"].items()])]
        elif t["type"] == "segmentation":
            out += [f"### {name} (segmentation: {', '.join(t['classes'])})", ""]
            out.append(_table(["split", "n"] + list(SEG_KEYS) + ["dice 95% CI"],
                              [[s, t[s]["n"]] + [t[s].get(k) for k in SEG_KEYS] + [_interval(t[s], "dice")]
                               for s in ("val", "test") if s in t]))
            out += _ci_note(t)
            if "test" in t and len(t["classes"]) > 1:
                out += ["", _table(["class", "dice", "iou", "dice (pooled pixels)"],
                                   [[c, v.get("dice"), v.get("iou"), v.get("dice_global")]
                                    for c, v in t["test"]["per_class"].items()])]
            if "test" in t and "without_postprocess" in t["test"]:
                w = t["test"]["without_postprocess"]
                out += ["", f"Without the task's post-processing (CRF / mask cleaning), test Dice {_fmt(w['dice'])}, "
                            f"IoU {_fmt(w['iou'])}, pixel accuracy {_fmt(w['pixel_accuracy'])}."]
            out += ["", "Dice/IoU are per-image means (an image with empty truth and empty prediction scores 1)."]
        elif t["type"] == "denoising" and "test" in t:
            out += ["### denoise (representation's denoising output, test split)", ""]
            nlm = all("nlm" in v for v in t["test"].values())
            out.append(_table(["noise", "PSNR noisy", "PSNR denoised", "SSIM noisy", "SSIM denoised",
                               "MS-SSIM noisy", "MS-SSIM denoised"] + (["PSNR / SSIM non-local means"] if nlm else []),
                              [[lv, v["noisy"]["psnr"], v["denoised"]["psnr"], v["noisy"]["ssim"],
                                v["denoised"]["ssim"], v["noisy"]["ms_ssim"], v["denoised"]["ms_ssim"]]
                               + ([f"{_fmt(v['nlm']['psnr'])} / {_fmt(v['nlm']['ssim'])}"] if nlm else [])
                               for lv, v in t["test"].items()]))
            if nlm:
                out += ["", "Non-local means: OpenCV's fastNlMeansDenoising on the same noisy images, its strength "
                            "from each image's noise estimate (umsrep/evaluate/classical.py) — a classical denoiser "
                            "for comparison."]
        out.append("")
    if isinstance(m.get("derive"), dict) and "skipped" not in m["derive"]:
        out += ["## Derived decisions", "",
                "Each rule is applied to the heads' predictions, and — on images where every head it reads has "
                "ground truth — to the true labels and masks; accuracy is their agreement (test split).", "",
                _table(["decision", "rule", "fires on", "n with truth", "accuracy", "sensitivity", "specificity"],
                       [[k, f"`{v['rule']}`", v.get("test", {}).get("positive_rate"),
                         v.get("test", {}).get("n_with_truth"), v.get("test", {}).get("accuracy"),
                         v.get("test", {}).get("sensitivity"), v.get("test", {}).get("specificity")]
                        for k, v in m["derive"].items()]), ""]
    if m.get("measurements"):
        out += _measurements(m["measurements"])
    if isinstance(m.get("patient"), dict):
        out += _patients(m["patient"])
    if m.get("explain"):
        out += ["## Grad-CAM localization", "",
                "Mean fraction of the Grad-CAM heat map's mass (true class) inside the annotated mask, vs the mean "
                "fraction of the image the mask covers (test split). A ratio above 1 means the heat map "
                "concentrates on the annotated region.", "",
                _table(["task", "layer", "mask", "class", "n", "Grad-CAM mass in mask", "mask area", "ratio"],
                       [[t, v["layer"], v["mask_task"], c, r["n"], r["cam_mass_in_mask"], r["mask_area_fraction"],
                         r["ratio"]] for t, v in m["explain"].items() for c, r in v["classes"].items()]), ""]
    return out


def _measurements(ms: dict) -> list:
    """Agreement of each measurement from the predicted masks with the same measurement from the true masks."""
    rows, grouped = [], False
    for name, v in ms.items():
        for block in v.get("by_data", []):
            ref = ", ".join(t for t, w in block["truth"].items() if w == "true masks") or "none"
            for split in ("val", "test"):
                for unit, a in block.get(split, {}).items():
                    if unit == "per_image" or a.get("mae") is None:
                        continue
                    g = a.get("by_group")
                    grouped |= g is not None
                    rows.append([name, "/".join(block["tasks"]), ref, split, a["n"], a["n_missing_pred"],
                                 a["n_missing_true"], f"{a['mae']:.2f} {unit}",
                                 "n/a" if a.get("mae_pct") is None else f"{a['mae_pct']:.1f} %",
                                 "n/a" if g is None else f"{g['mae']:.2f} {unit} ({g['n']})", a["bias"],
                                 f"[{a['loa_low']:.2f}, {a['loa_high']:.2f}]", a.get("pearson_r")])
    if not rows:
        return []
    return ["## Measurements", "",
            "Each measurement from the predicted masks against the same measurement from the true masks, on the "
            "original image grid (MAE: mean absolute error; bias and 95% limits of agreement: Bland-Altman, "
            "predicted minus true). Missing: images where the masks did not allow the measurement. Where a data "
            "set has no true masks of an input task (`true masks of` does not name it), its predicted masks are "
            "used on both sides, so the row measures the other tasks' effect only."
            + (" MAE per group: averaged within each group (patient, recording) first, then over the groups "
               "(their number in brackets); each group counts once." if grouped else ""), "",
            _table(["measurement", "images of", "true masks of", "split", "n", "missing (pred)", "missing (true)",
                    "MAE", "MAE %", "MAE per group", "bias", "limits of agreement", "pearson r"], rows), ""]


def _patients(p: dict) -> list:
    """The patient-level classifiers: per target, test accuracy on predicted-mask features (and true-mask ones)."""
    if "skipped" in p:
        return ["## Patient-level tasks", "", f"Skipped: {p['skipped']}", ""]
    rows = []
    for target, res in p.get("predicted_masks", {}).items():
        t = res.get("test")
        if not t:
            rows.append([target, res.get("skipped", "no test groups"), "", "", "", "", ""])
            continue
        ref = p.get("true_masks", {}).get(target, {}).get("test", {})
        ci = t.get("accuracy_ci95") or [None, None]
        rows.append([target, res["classifier"], t["n_groups"], t["accuracy"],
                     "n/a" if ci[0] is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]", t["mcc"], ref.get("accuracy")])
    return ["## Patient-level tasks", "",
            f"{p.get('n_groups')} groups; features {', '.join(p.get('features', []))} from the segmentation heads' "
            f"masks; the classifier is trained on the training groups ({p.get('train_features')} masks' features) "
            "and scored once per group of the test split (95% CI: bootstrap over groups).", "",
            _table(["target", "classifier", "test groups", "accuracy", "accuracy 95% CI", "mcc",
                    "accuracy on true-mask features"], rows), ""]


def _interval(t, key):
    ci = t.get(f"{key}_ci95")
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci and ci[0] is not None else "n/a"


def _ci(t, key):
    v, interval = t.get(key), _interval(t, key)
    if v is None:
        return "n/a"
    return f"{v:.4f}" + ("" if interval == "n/a" else f" {interval}")


def _comparison(c: dict) -> list:
    approaches = c["approaches"]
    out = ["## Strategy and baseline comparison", "",
           "Every UMS-Rep strategy fine-tunes the same trained representation; its time includes the "
           "representation stage. The baseline trains one separate model per task from random initialisation "
           "(on denoised images when the representation is a denoising autoencoder, whose training counts as "
           "the baseline's denoiser). Test split; 95% bootstrap CIs in brackets.", ""]
    tasks = list(next(iter(approaches.values()))["tasks"])
    for task in tasks:
        first = approaches[next(iter(approaches))]["tasks"][task]
        keys = ["dice", "iou"] if "dice" in first else ["accuracy", "f1", "mcc", "roc_auc"]
        out += [f"### {task}", "", _table(["approach"] + keys,
                [[a] + [_ci(v["tasks"][task], k) if k in ("dice", "accuracy") else v["tasks"][task].get(k)
                        for k in keys] for a, v in approaches.items()]), ""]
        tests = c.get("tests", {}).get(task, {})
        if tests:
            rows = []
            for pair, r in tests.items():
                if "mcnemar" in r:
                    t = r["mcnemar"]
                    rows.append([pair, f"McNemar ({t['method']}), b={t['b']}, c={t['c']}", t["p_value"]])
                else:
                    t = r["wilcoxon_dice"]
                    rows.append([pair, f"Wilcoxon on per-image Dice, mean difference {r['mean_dice_difference']:+.4f}",
                                 t["p_value"]])
            out += [_table(["pair", "test", "p-value"], rows), ""]
    out += ["### Cost", "", _table(["approach", "training wall time (s)", "epochs (all stages)", "parameters"],
                                   [[a, f"{v['wall_time_s']:.1f}", v["epochs"], f"{v['parameters']['total']:,}"]
                                    for a, v in approaches.items()]), ""]
    if "baseline" in approaches and "models" in approaches["baseline"]:
        out += [_table(["baseline model", "wall time (s)", "epochs", "parameters"],
                       [[k, f"{v['wall_time_s']:.1f}", v["epochs_run"], f"{v['parameters']['total']:,}"]
                        for k, v in approaches["baseline"]["models"].items()]), ""]
    if "reduction_vs_baseline" in c:
        out += [_table(["approach", "time reduction vs baseline (%)", "parameter reduction vs baseline (%)"],
                       [[a, f"{v['time_pct']:.1f}", f"{v['parameters_pct']:.1f}"]
                        for a, v in c["reduction_vs_baseline"].items()]), ""]
    return out


def render_cv_markdown(m: dict) -> str:
    """``report.md`` of a k-fold cross-validation run (the ``cv`` section of its metrics.json) or of a run over
    several training seeds (its ``seeds`` section)."""
    run = m.get("run", {})
    if "seeds" in m:
        cv = m["seeds"]
        out = [f"# umsrep training seeds `{run.get('name', '?')}`", "",
               f"The same recipe trained with {len(cv['seeds'])} training seeds ({', '.join(map(str, cv['seeds']))})"
               f" on one split (split seed {cv['split_seed']}); every seed is a complete run in `seed<s>/` with its "
               f"own report. Values are mean ± sample SD over the seeds' test results, then the value of each "
               f"seed. Total wall time {run.get('wall_time_s')} s, umsrep {run.get('umsrep_version')}.", ""]
        per = "per seed"
    else:
        cv = m["cv"]
        out = [f"# umsrep cross-validation `{run.get('name', '?')}`", "",
               f"{cv['folds']} folds: each fold was the test split once (stratified; grouped by patient when the "
               f"recipe's `group_by` is set); every fold is a complete run in `fold<i>/` with its own report. "
               f"Values are mean ± sample SD over the folds' test splits. Total wall time {run.get('wall_time_s')} "
               f"s, umsrep {run.get('umsrep_version')}.", ""]
        per = "per fold"
    approaches = cv["approaches"]
    tasks = list(next(iter(approaches.values()))["tasks"])
    for task in tasks:
        first = approaches[next(iter(approaches))]["tasks"][task]
        keys = [k for k in SEG_KEYS + CLS_KEYS if k in first]
        keys += [k for k in first if k not in keys and k.startswith("dice_") and not k.endswith(CLASS_KEY_CLASHES)]
        keys += [k for k in first if k.endswith("_by_group")]
        out += [f"## {task}", "", _table(["approach"] + keys + [f"{per} ({keys[0]})"],
                [[a] + [f"{v['tasks'][task][k]['mean']:.4f} ± {v['tasks'][task][k]['sd']:.4f}"
                        if k in v["tasks"][task] else "n/a" for k in keys]
                 + [", ".join(f"{x:.3f}" for x in v["tasks"][task][keys[0]]["values"])]
                 for a, v in approaches.items()]), ""]
        tests = cv["tests"].get(task, {})
        if tests:
            out += [_table(["pair", "metric", "mean difference", "paired t-test p", "Wilcoxon p"],
                           [[pair, r["metric"], f"{r['mean_difference']:+.4f}", r["t_test"]["p_value"],
                             r["wilcoxon"]["p_value"]] for pair, r in tests.items()]), ""]
    out += _cv_measurements(cv.get("measurements") or {}, per)
    out += _cv_patient(cv.get("patient") or {}, per)
    out += ["## Cost", "", _table(["approach", f"training wall time {per} (s)", "parameters"],
                                  [[a, f"{v['wall_time_s']['mean']:.1f} ± {v['wall_time_s']['sd']:.1f}",
                                    f"{v['parameters']:,}"] for a, v in approaches.items()]), ""]
    return "\n".join(out) + "\n"


def _mean_sd_cell(stats: dict, key: str, decimals: int = 2) -> str:
    return f"{stats[key]['mean']:.{decimals}f} ± {stats[key]['sd']:.{decimals}f}" if key in stats else "n/a"


def _cv_patient(ps: dict, per: str) -> list:
    """The patient-level decisions (test split, one value per group) over sub-runs, one row per feature source and
    target (the recipe's strategy: the patient section is computed for it)."""
    if not ps:
        return []
    rows = [[source.replace("_", " "), target, "/".join(map(str, r["n_groups"])) if isinstance(r.get("n_groups"), list)
             else r.get("n_groups")] + [_mean_sd_cell(r, k, 3) for k in
                                                                    ("accuracy", "balanced_accuracy", "mcc")]
            + [", ".join(f"{x:.3f}" for x in r["accuracy"]["values"]) if "accuracy" in r else "n/a"]
            for source, targets in ps.items() for target, r in targets.items()]
    return ["## Per patient (test split, features from the masks of the recipe's strategy)", "",
            _table(["features from", "target", "groups", "accuracy", "balanced accuracy", "MCC",
                    f"accuracy {per}"], rows), ""]


def _cv_measurements(ms: dict, per: str) -> list:
    """The measurements' agreement with the true masks (test split) over sub-runs, one row per measurement,
    image set and unit."""
    if not ms:
        return []
    rows = []
    for name, m in ms.items():
        for d in m["by_data"]:
            truth = ", ".join(f"{k}: {v}" for k, v in (d.get("truth") or {}).items())
            for unit, st in d.items():
                if unit in ("tasks", "truth"):
                    continue
                rows.append([name, ", ".join(d.get("tasks") or []), truth, unit]
                            + [_mean_sd_cell(st, k) for k in ("n", "mae", "mae_pct", "mae_by_group",
                                                               "mae_pct_by_group", "bias")]
                            + [", ".join(f"{x:.2f}" for x in st["mae"]["values"]) if "mae" in st else "n/a"])
    return ["## Measurements (test split, predicted vs true masks)", "",
            _table(["measurement", "images of", "truth", "unit", "n", "MAE", "MAE %", "MAE per group",
                    "MAE % per group", "bias", f"MAE {per}"], rows), ""]

