"""Cost growth with the number of tasks (the paper's Tables 4/6/10): UMS-Rep (one shared denoising-autoencoder
encoder trained once + k light heads on it, `independent` strategy) vs the baseline (a separate model per task),
for k = 1..4 tasks on BUSI or ACDC, at equal epochs and early-stopping rules, with test quality beside each.

    python bench/ums_vs_baseline.py [--data busi|acdc] [--size 128] [--epochs 15] [--ks 1 2 3 4] [--out DIR]
                                    [--one-run]
    python bench/ums_vs_baseline.py --quick          # tiny synthetic smoke run (no real data), size 32, 1 epoch

Tasks, in order (k uses the first k): the set's segmentation task; + its classification task; + two
one-class-vs-rest tasks (binary, by `label_map`). BUSI (recipes/busi.yaml): lesion, diagnosis (benign / malignant
/ normal), malignant vs rest, normal vs rest. ACDC (recipes/acdc.yaml, slices split by patient): heart (RV,
myocardium, LV), diagnosis (5 classes, per slice), DCM vs rest, HCM vs rest; its patient-level section is left
out (it needs the heart task; equal evaluation work for every k). Every run is `umsrep fit` of a recipe built
here from the set's recipe (its representation section from the first of the set's recipe and the sources
listed in DATASETS that trains the denoising autoencoder), written as DIR/k<k>/recipe.yaml and run in
DIR/k<k>/run as its own process, with ``baseline: true``: umsrep trains the representation, the k heads on the
frozen encoder, and k baseline models (fresh encoder + the same head, all trainable, on images denoised by the
representation's autoencoder) under the same per-task epochs and early stopping. Nothing is re-measured here:
times, parameter counts and test metrics are read from each run's metrics.json (`comparison.approaches`,
`stages`, `comparison.tests`):

- UMS-Rep time = representation stage + the k head stages; parameters = encoder + denoising decoder + k heads;
- baseline time = the k task models + the denoiser (umsrep counts the representation's autoencoder as one of
  the baseline's models: the baseline trains on its denoised images); parameters likewise. The table also shows
  the baseline without the denoiser;
- marginal cost of the k-th head: its own stage time, and the change of the UMS-Rep total from the run with
  k - 1 tasks (noisier: it adds the run-to-run spread of the representation stage), each as a fraction of one
  baseline task model's mean time;
- quality: test Dice (segmentation), MCC and accuracy (classification), for both, with the run's paired test
  (Wilcoxon on per-image Dice, McNemar) p-value.

Time to quality, beside total time: per task the validation metric (Dice / MCC) that both sides reach (the lower
of their best), and each side's training time until it first gets there, read from the per-epoch stage histories;
the denoising autoencoder counts on both sides (UMS-Rep's representation stage, the baseline's denoiser).

Targets, printed as met / not met: for 3 tasks, UMS-Rep's total training time <= 30 % of the baseline's at equal
or better quality (per task: UMS-Rep's metric >= the baseline's, or no significant difference, p >= 0.05); the
marginal cost of each added head (its own stage time) <= 15 % of one baseline model.

``--one-run`` trains only the largest k and derives the smaller ones from it (the heads and the baseline models
are trained one after another and independently, so the cost of k tasks is the representation + the first k
heads); about a quarter of the work. Runs already complete in DIR with the same recipe are reused, interrupted ones
resumed. Writes bench/results/ums_vs_baseline.json (ACDC: ums_vs_baseline_acdc.json; ``--quick``:
DIR/ums_vs_baseline.json; or ``--json``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path

import yaml
from _common import REPO, machine, run_fit, save

TIME_TARGET, HEAD_TARGET, ALPHA = 0.30, 0.15, 0.05


# per data set: its recipe, where a trained denoising-autoencoder representation comes from (the first that trains
# one), its segmentation and classification tasks, and the classes of the two one-vs-rest tasks
DATASETS = {
    "busi": {"recipe": "busi.yaml", "rep_sources": ("busi.yaml", "busi_strategies.yaml", "pretrain/us-cdae.yaml"),
             "segmentation": "lesion", "classification": "diagnosis", "vs_rest": ("malignant", "normal")},
    "acdc": {"recipe": "acdc.yaml", "rep_sources": ("acdc.yaml", "pretrain/cmr-cdae.yaml"),
             "segmentation": "heart", "classification": "diagnosis", "vs_rest": ("DCM", "HCM")},
}


def suffix(data: str) -> str:
    """Run names, run folders and the results file: BUSI keeps the names it had before other sets existed."""
    return "" if data == "busi" else f"_{data}"


def base_recipe(data: str = "busi") -> dict:
    """The set's recipe (data, tasks), with a representation trained in the run: the recipe's own if it trains the
    denoising autoencoder, else the first of the set's rep_sources that does (the recipe may load a shipped
    encoder, which the baseline cannot rebuild)."""
    spec = DATASETS[data]
    base = yaml.safe_load((REPO / "recipes" / spec["recipe"]).read_text())
    for name in spec["rep_sources"]:
        rep = yaml.safe_load((REPO / "recipes" / name).read_text()).get("representation", {})
        if rep.get("kind") == "denoising_autoencoder" and not (rep.get("name") or rep.get("init_from")):
            if name != spec["recipe"]:
                print(f"representation: recipes/{spec['recipe']}'s is {base['representation'].get('kind')!r} (not "
                      f"trained here): using the trained denoising autoencoder of recipes/{name}")
            base["representation"] = rep
            return base
    raise SystemExit(f"none of recipes/{', '.join(spec['rep_sources'])} trains a denoising-autoencoder "
                     f"representation")


def task_specs(base: dict, data: str = "busi") -> list:
    """[(name, task config)] in the order tasks are added."""
    spec = DATASETS[data]
    seg, cls = base["tasks"][spec["segmentation"]], base["tasks"][spec["classification"]]

    def vs_rest(one):
        t = copy.deepcopy(cls)
        t["classes"] = [one, "rest"]
        t["label_map"] = {c: (one if c == one else "rest") for c in cls["classes"]}
        return t

    return [(spec["segmentation"], copy.deepcopy(seg)), (spec["classification"], copy.deepcopy(cls))] + [
        (f"{one.lower()}_vs_rest", vs_rest(one)) for one in spec["vs_rest"]]


def build_recipe(base: dict, k: int, a) -> dict:
    r = copy.deepcopy(base)
    r["name"] = f"ums_vs_baseline_k{k}{suffix(a.data)}"
    r.pop("derive", None)                      # rules name tasks that small k lacks; equal evaluation work
    r.pop("patient", None)
    r["tasks"] = {}
    for name, t in task_specs(base, a.data)[:k]:
        t["epochs"] = a.epochs
        r["tasks"][name] = t
    r["representation"]["epochs"] = a.epochs
    r["strategy"] = {"kind": "independent"}
    r["baseline"] = True
    r["output"] = {"tensorboard": False, "html": False}
    r["data"]["image_size"] = a.size
    if a.quick:
        quick = yaml.safe_load((REPO / "recipes" / "quickstart.yaml").read_text())
        data = quick["data"]
        data["synthetic"].update({"size": a.size, "n": 60})
        data["image_size"] = a.size
        r["data"] = data
    return r


# ------------------------------------------------------------------------------------------------ reading

def quality(task_type: str, test: dict) -> dict:
    keys = ("dice",) if task_type == "segmentation" else ("mcc", "accuracy")
    return {k: test.get(k) for k in keys}


def paired_p(tests: dict, task: str):
    t = tests.get(task, {}).get("independent vs baseline", {})
    test = t.get("wilcoxon_dice") or t.get("mcnemar") or {}
    return test.get("p_value")


def read_run(run: Path, tasks: list, k: int) -> dict:
    """Times, parameters and test quality of the first ``k`` of ``tasks`` (names) from one run's metrics.json."""
    m = json.loads((run / "metrics.json").read_text())
    cmp_, stages = m["comparison"], m["stages"]
    ums, base = cmp_["approaches"]["independent"], cmp_["approaches"]["baseline"]
    models = base["models"]
    names = tasks[:k]
    rep_t = stages["representation"]["wall_time_s"]
    head_t = {t: stages[t]["wall_time_s"] for t in names}
    base_t = {t: models[t]["wall_time_s"] for t in names}
    den_t = models.get("denoiser", {}).get("wall_time_s", 0.0)
    p = m["parameters"]
    den_p = models.get("denoiser", {}).get("parameters", {}).get("total", 0)
    all_k = len(names) == len(m["tasks"]) - ("denoise" in m["tasks"])
    types = {t: m["tasks"][t]["type"] for t in names}
    out = {
        "k": k, "tasks": names, "run": str(run),
        "representation_s": rep_t, "head_s": head_t,
        "ums_time_s": ums["wall_time_s"] if all_k else rep_t + sum(head_t.values()),
        "baseline_model_s": base_t, "denoiser_s": den_t,
        "baseline_time_s": base["wall_time_s"] if all_k else den_t + sum(base_t.values()),
        "ums_parameters": ums["parameters"]["total"] if all_k else
        p["encoder"] + p["heads"].get("denoise", 0) + sum(p["heads"][t] for t in names),
        "baseline_parameters": base["parameters"]["total"] if all_k else
        den_p + sum(models[t]["parameters"]["total"] for t in names),
        "baseline_parameters_without_denoiser": sum(models[t]["parameters"]["total"] for t in names),
        "epochs": {"representation": stages["representation"]["epochs_run"],
                   **{f"head/{t}": stages[t]["epochs_run"] for t in names},
                   **{f"baseline/{t}": models[t]["epochs_run"] for t in names}},
        "quality": {t: {"type": types[t], "ums": quality(types[t], ums["tasks"].get(t, {})),
                        "baseline": quality(types[t], base["tasks"].get(t, {})),
                        "p_value": paired_p(cmp_.get("tests", {}), t)} for t in names},
    }
    out["baseline_time_without_denoiser_s"] = sum(base_t.values())
    out["time_ratio"] = out["ums_time_s"] / out["baseline_time_s"]
    out["time_ratio_without_denoiser"] = out["ums_time_s"] / max(out["baseline_time_without_denoiser_s"], 1e-9)
    out["parameter_ratio"] = out["ums_parameters"] / out["baseline_parameters"]
    out["mean_baseline_model_s"] = sum(base_t.values()) / len(base_t)
    add_time_to_quality(out, run)
    return out


def _metric_key(history: list, task: str):
    """The per-epoch validation metric key of ``task`` in a stage history (``val_dice/<t>``, ``val_mcc/<t>``)."""
    for key in (f"val_dice/{task}", f"val_mcc/{task}"):
        if history and key in history[0]:
            return key
    return None


def time_to(history: list, key: str, target: float):
    """Training seconds until the first epoch whose ``key`` reaches ``target`` (None if never)."""
    t = 0.0
    for h in history:
        t += h.get("time_s", 0.0)
        if h.get(key) is not None and h[key] >= target:
            return t
    return None


def add_time_to_quality(row: dict, run: Path):
    """Time-to-quality beside total time: per task, the validation metric (Dice / MCC) both sides reach — the
    lower of the two sides' best — and the training time until each first reaches it; UMS-Rep adds its
    representation stage, the baseline its denoiser (the same autoencoder: a cost on both sides)."""
    m = json.loads((run / "metrics.json").read_text())
    stages, models = m["stages"], m["comparison"]["approaches"]["baseline"]["models"]
    ums_t, base_t, per = row["representation_s"], row["denoiser_s"], {}
    for t in row["tasks"]:
        hu, hb = stages[t].get("history", []), models[t].get("history", [])
        key = _metric_key(hu, t)
        if key is None or _metric_key(hb, t) != key:
            row["time_to_quality"] = {"why": f"no per-epoch validation metric for {t} (a run before issue #13)"}
            return
        target = min(max(h[key] for h in hu), max(h[key] for h in hb))
        tu, tb = time_to(hu, key, target), time_to(hb, key, target)
        per[t] = {"metric": key.split("/")[0][4:], "target": target, "ums_s": tu, "baseline_s": tb}
        ums_t += tu
        base_t += tb
    row["time_to_quality"] = {"tasks": per, "ums_s": ums_t, "baseline_s": base_t, "ratio": ums_t / max(base_t, 1e-9),
                              "on_both_sides": "the denoising autoencoder (UMS-Rep's representation stage is the "
                                               "baseline's denoiser)"}


def add_marginals(rows: list):
    prev = None
    for r in rows:
        mean_base = r["mean_baseline_model_s"]
        r["kth_head_s"] = r["head_s"][r["tasks"][-1]]
        r["kth_head_fraction"] = r["kth_head_s"] / mean_base
        if prev is not None and prev["k"] == r["k"] - 1:
            r["delta_s"] = r["ums_time_s"] - prev["ums_time_s"]
        elif r["k"] == 1:
            r["delta_s"] = r["ums_time_s"] - r["representation_s"]
        if "delta_s" in r:
            r["delta_fraction"] = r["delta_s"] / mean_base
        prev = r


def not_worse(q: dict) -> tuple:
    """(equal or better?, why) for one task: UMS-Rep's main metric >= the baseline's, or no significant
    difference by the run's paired test."""
    main = "dice" if q["type"] == "segmentation" else "mcc"
    u, b, p = q["ums"].get(main), q["baseline"].get(main), q["p_value"]
    if u is None or b is None:
        return False, f"{main} missing"
    if u >= b:
        return True, f"{main} {u:.3f} >= {b:.3f}"
    if p is not None and p >= ALPHA:
        return True, f"{main} {u:.3f} < {b:.3f}, not significant (p {p:.3f})"
    return False, f"{main} {u:.3f} < {b:.3f}" + (f", p {p:.3f}" if p is not None else "")


def targets(rows: list) -> dict:
    out = {}
    r3 = next((r for r in rows if r["k"] == 3), None)
    if r3 is not None:
        checks = {t: not_worse(q) for t, q in r3["quality"].items()}
        ok_time = r3["time_ratio"] <= TIME_TARGET
        ok_q = all(ok for ok, _ in checks.values())
        out["three_tasks_time_and_quality"] = {
            "target": f"UMS-Rep time <= {TIME_TARGET:.0%} of the baseline's for 3 tasks, equal or better quality",
            "time_ratio": r3["time_ratio"], "time_met": ok_time,
            "quality": {t: {"met": ok, "why": why} for t, (ok, why) in checks.items()}, "quality_met": ok_q,
            "met": ok_time and ok_q}
    heads = {r["k"]: r["kth_head_fraction"] for r in rows}
    deltas = {r["k"]: r["delta_fraction"] for r in rows if "delta_fraction" in r}
    added = {k: v for k, v in heads.items() if k > 1}       # the first head is not an *added* one
    added_d = {k: v for k, v in deltas.items() if k > 1}
    out["marginal_head_cost"] = {
        "target": f"each added head's (k >= 2) training time <= {HEAD_TARGET:.0%} of one baseline model's (mean)",
        "kth_head_fraction": heads, "met": all(v <= HEAD_TARGET for v in added.values()) if added else None,
        "delta_fraction_between_runs": deltas,
        "met_by_delta": all(v <= HEAD_TARGET for v in added_d.values()) if added_d else None}
    return out


def fmt_q(q: dict) -> str:
    def one(d):
        return "/".join("-" if v is None else f"{v:.3f}" for v in d.values())

    p = q["p_value"]
    return f"{one(q['ums'])} vs {one(q['baseline'])}" + ("" if p is None else f" (p {p:.2g})")


def print_tables(rows: list, tg: dict):
    print("\nk = tasks; times in s (training stages only, from metrics.json); 'base' includes the denoiser, "
          "'base-den' (b-d) does not")
    h = (f"{'k':>2s} {'UMS s':>8s} {'base s':>8s} {'UMS/base':>8s} {'base-den s':>10s} {'UMS/b-d':>7s} "
         f"{'UMS params':>11s} {'base params':>11s} {'ratio':>6s} {'k-th head':>9s} {'Δ k-1→k':>8s}")
    print(h)
    print("-" * len(h))
    for r in rows:
        delta = f"{r['delta_fraction']:.0%}" if "delta_fraction" in r else "-"
        print(f"{r['k']:2d} {r['ums_time_s']:8.1f} {r['baseline_time_s']:8.1f} {r['time_ratio']:8.2f} "
              f"{r['baseline_time_without_denoiser_s']:10.1f} {r['time_ratio_without_denoiser']:7.2f} "
              f"{r['ums_parameters']:11,d} "
              f"{r['baseline_parameters']:11,d} {r['parameter_ratio']:6.2f} {r['kth_head_fraction']:9.0%} "
              f"{delta:>8s}")
    print("(k-th head, Δ k-1→k: the added head's own time / the UMS-Rep total's change, as a fraction of one "
          "baseline model's mean time)")
    print("\ntime to quality (training s until each side first reaches, per task, the validation Dice/MCC both "
          "reach; + representation / denoiser): UMS-Rep, baseline, ratio")
    for r in rows:
        q = r.get("time_to_quality", {})
        if "ratio" in q:
            print(f"k={r['k']}: {q['ums_s']:8.1f} {q['baseline_s']:8.1f} {q['ratio']:6.2f}   " + ", ".join(
                f"{t} {v['metric']} >= {v['target']:.3f}" for t, v in q["tasks"].items()))
        else:
            print(f"k={r['k']}: {q.get('why', 'n/a')}")
    print("\ntest quality, UMS-Rep vs baseline: Dice (segmentation), MCC/accuracy (classification); "
          "paired-test p")
    for r in rows:
        print(f"k={r['k']}: " + "; ".join(f"{t} {fmt_q(q)}" for t, q in r["quality"].items()))
        print("     epochs run: " + ", ".join(f"{s} {e}" for s, e in r["epochs"].items()))
    print("\ntargets")
    t3 = tg.get("three_tasks_time_and_quality")
    if t3:
        print(f"  3 tasks: UMS-Rep / baseline time {t3['time_ratio']:.2f} (target <= {TIME_TARGET:.2f}): "
              f"{'met' if t3['time_met'] else 'NOT met'}; quality: "
              + ", ".join(f"{t} {'ok' if v['met'] else 'WORSE'} ({v['why']})" for t, v in t3["quality"].items())
              + f" -> {'met' if t3['met'] else 'NOT met'}")
    else:
        print("  3 tasks: not run (add 3 to --ks)")
    mh = tg["marginal_head_cost"]
    print(f"  marginal cost of each added head (k >= 2) <= {HEAD_TARGET:.0%} of a baseline model: "
          + ", ".join(f"k={k} {v:.0%}" for k, v in mh["kth_head_fraction"].items())
          + f" -> {'met' if mh['met'] else 'NOT met'}"
          + ("" if mh["met_by_delta"] is None else
             f" (by the change between runs: {'met' if mh['met_by_delta'] else 'not met'})"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", choices=sorted(DATASETS), default="busi", help="the real data set (default busi)")
    ap.add_argument("--size", type=int, default=None, help="image size (default 128; --quick: 32)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="epochs of the representation, every head and every baseline model (default 15; --quick: 1)")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 4], choices=[1, 2, 3, 4])
    ap.add_argument("--out", default=None, help="folder of the runs (default runs/ums_vs_baseline[_acdc|_quick])")
    ap.add_argument("--one-run", action="store_true", help="train only the largest k, derive the smaller ones")
    ap.add_argument("--quick", action="store_true", help="tiny synthetic smoke run instead of BUSI")
    ap.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="passed to every `umsrep fit` (e.g. representation.batch_size=8)")
    ap.add_argument("--json", help="write the results here (default bench/results/ums_vs_baseline.json; --quick: "
                                   "OUT/ums_vs_baseline.json)")
    a = ap.parse_args()
    a.size = a.size or (32 if a.quick else 128)
    a.epochs = a.epochs or (1 if a.quick else 15)
    if a.quick and a.data != "busi":
        raise SystemExit("--quick runs the BUSI task list on synthetic data: leave --data out")
    out = Path(a.out or REPO / "runs" / ("ums_vs_baseline_quick" if a.quick else f"ums_vs_baseline{suffix(a.data)}"))
    out = out.resolve()
    ks = sorted(set(a.ks))

    from umsrep.paths import data_root
    from umsrep.recipe import expand_env

    env = dict(os.environ)
    base = base_recipe(a.data)
    if not a.quick:
        folder = Path(expand_env(base["data"]["root"], "data.root"))     # where the set's own recipe reads it
        if not folder.is_dir():
            raise SystemExit(f"{a.data} not found at {folder}: set UMSREP_DATA to the shared data folder (or use "
                             f"--quick)")
        env["UMSREP_DATA"] = str(data_root())
    names = [n for n, _ in task_specs(base, a.data)]
    print(f"UMS-Rep vs baseline, k = {ks}, size {a.size}, {a.epochs} epochs, "
          f"{'synthetic (quick)' if a.quick else a.data.upper()}; runs in {out}")
    rows = []
    if a.one_run:
        kmax = ks[-1]
        run = run_fit(build_recipe(base, kmax, a), out / f"k{kmax}", env, a.set)
        rows = [read_run(run, names, k) for k in ks]
    else:
        for k in ks:
            run = run_fit(build_recipe(base, k, a), out / f"k{k}", env, a.set)
            rows.append(read_run(run, names, k))
    add_marginals(rows)
    tg = targets(rows)
    print_tables(rows, tg)
    res = {"size": a.size, "epochs": a.epochs, "ks": ks, "quick": a.quick, "one_run": a.one_run,
           "data": "synthetic" if a.quick else a.data, "runs_dir": str(out), "set": a.set, "tasks": names,
           "rows": rows, "targets": tg}
    dest = a.json or (str(out / "ums_vs_baseline.json") if a.quick else None)
    if dest:
        Path(dest).write_text(json.dumps({"machine": machine(), **res}, indent=2) + "\n")
        print(f"wrote {dest}")
    else:
        save(f"ums_vs_baseline{suffix(a.data)}", res)


if __name__ == "__main__":
    main()
