"""The strategy/baseline comparison of one run (metrics.json ``comparison``): per approach the test metrics, time
and parameters, pairwise tests, and the reduction of time and parameters against the baseline."""

from __future__ import annotations


def approach_summary(stage_list, task_metrics):
    time_s = sum(s["wall_time_s"] for s in stage_list)
    return {"wall_time_s": round(time_s, 3), "epochs": sum(s["epochs_run"] for s in stage_list),
            "tasks": {n: {k: v for k, v in t.get("test", {}).items() if not isinstance(v, (dict, list))
                          or k.endswith("_ci95")} for n, t in task_metrics.items() if n != "denoise"}}


def compare_approaches(approaches: dict, outcomes: dict, recipe) -> dict:
    """Paper-style comparison: per approach the test metrics, time and parameters; pairwise McNemar
    (classification) or Wilcoxon on per-image Dice (segmentation); time and parameter reduction vs baseline."""
    from umsrep.evaluate.stats import mcnemar, paired_tests

    names = list(approaches)
    tests = {}
    for task, t in recipe.tasks.items():
        per = {}
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                ya, yb = outcomes[a][task]["test"], outcomes[b][task]["test"]
                if t.type == "classification":
                    per[f"{a} vs {b}"] = {"mcnemar": mcnemar(ya > 0.5, yb > 0.5)}
                else:
                    r = paired_tests(ya, yb)
                    per[f"{a} vs {b}"] = {"wilcoxon_dice": r["wilcoxon"], "mean_dice_difference": r["mean_difference"]}
        tests[task] = per
    out = {"approaches": approaches, "tests": tests}
    if "baseline" in approaches:
        base = approaches["baseline"]
        out["reduction_vs_baseline"] = {
            a: {"time_pct": round(100 * (1 - v["wall_time_s"] / base["wall_time_s"]), 1),
                "parameters_pct": round(100 * (1 - v["parameters"]["total"] / base["parameters"]["total"]), 1)}
            for a, v in approaches.items() if a != "baseline"}
    return out
