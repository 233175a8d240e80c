"""A study's statistics over seeds: mean, standard deviation, 95 % confidence interval,
Welch's t-test against CLS-ER, written as ``study.json`` and a paper-ready ``study.md``.

The distributions come from :mod:`scipy.stats` (Student t quantiles, Welch's test).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from clser_tf.results import setting_name

METRICS = ("final_mean", "forgetting", "backward_transfer", "forward_transfer")
BASELINE = "clser"


def describe(values: Sequence[float]) -> dict[str, Any]:
    """n, mean, standard deviation (n − 1), 95 % Student-t confidence interval, min, max
    (std and CI are None below two values)."""
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci95": None, "min": None, "max": None}
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else None
    ci = None
    if std is not None:
        half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
        ci = [mean - half, mean + half]
    return {"n": n, "mean": mean, "std": std, "ci95": ci, "min": float(x.min()),
            "max": float(x.max())}


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, float] | None:
    """Welch's t-test of ``a`` against ``b``: t, degrees of freedom, two-sided p (None
    unless both have two values or more)."""
    if len(a) < 2 or len(b) < 2:
        return None
    result = stats.ttest_ind(np.asarray(a, float), np.asarray(b, float), equal_var=False)
    return {"t": float(result.statistic), "df": float(result.df), "p": float(result.pvalue)}


def _metrics(results: Mapping[str, Any], model: str) -> dict[str, dict[str, float | None]]:
    """setting -> metric -> value of one run's ``model``."""
    entry = results["models"][model]
    if "summary" in entry:  # a task sequence
        return {setting: dict(summary) for setting, summary in entry["summary"].items()}
    return {"accuracy": {"final_mean": entry["accuracy"]}}  # a general-continual stream


def _headline(results: Mapping[str, Any]) -> dict[str, float]:
    return {k: v for k, v in results["headline"].items() if k != "model"}


def aggregate(runs: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> dict[str, Any]:
    """``runs[variant][seed]`` (each run's results.json) summarised per variant, evaluated
    model, setting and metric, with the headline and Welch's test against ``clser``."""
    out: dict[str, Any] = {"variants": {}}
    headlines: dict[str, dict[str, list[float]]] = {}
    for variant, by_seed in runs.items():
        seeds = sorted(by_seed)
        first = by_seed[seeds[0]]
        models: dict[str, Any] = {}
        for model in first["models"]:
            per_run = [_metrics(by_seed[s], model) for s in seeds]
            models[model] = {
                setting: {metric: describe([m[setting][metric] for m in per_run
                                            if m[setting].get(metric) is not None])
                          for metric in METRICS if metric in per_run[0][setting]}
                for setting in per_run[0]}
        headlines[variant] = {setting: [_headline(by_seed[s])[setting] for s in seeds]
                              for setting in _headline(first)}
        out["variants"][variant] = {
            "seeds": seeds, "reported_model": first["headline"]["model"],
            "headline": {s: describe(v) for s, v in headlines[variant].items()},
            "models": models}
    if BASELINE in headlines:
        out["welch_vs_clser"] = {
            variant: {s: welch(values, headlines[BASELINE][s])
                      for s, values in per_setting.items() if s in headlines[BASELINE]}
            for variant, per_setting in headlines.items() if variant != BASELINE}
    return out


def _mean_std(entry: Mapping[str, Any] | None) -> str:
    if not entry or entry["mean"] is None:
        return "–"
    if entry["std"] is None:
        return f"{entry['mean']:.2f}"
    return f"{entry['mean']:.2f} ± {entry['std']:.2f}"


def _p_value(test: Mapping[str, float] | None) -> str:
    if test is None:
        return "–"
    return f"{test['p']:.2g}" + (" *" if test["p"] < 0.05 else "")


def markdown(summary: Mapping[str, Any], title: str) -> str:
    """The paper's table: one row per variant, "mean ± std" over seeds of the reported
    model's final accuracy per setting and its forgetting, and Welch's p against CLS-ER
    (* : p < 0.05)."""
    variants = summary["variants"]
    settings = list(next(iter(variants.values()))["headline"])
    tests = summary.get("welch_vs_clser", {})
    first = settings[0]
    header = (["variant", "model", "seeds"] + [setting_name(s) for s in settings]
              + [f"forgetting ({setting_name(first)})"]
              + [f"p vs clser ({setting_name(s)})" for s in settings])
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, entry in variants.items():
        model = entry["models"][entry["reported_model"]]
        cells = [name, entry["reported_model"], str(len(entry["seeds"]))]
        cells += [_mean_std(entry["headline"][s]) for s in settings]
        cells.append(_mean_std(model[first].get("forgetting")))
        cells += ["–" if name == BASELINE else _p_value(tests.get(name, {}).get(s))
                  for s in settings]
        rows.append("| " + " | ".join(cells) + " |")
    return (f"# {title}\n\nFinal mean accuracy (%) of the reported model, mean ± std over "
            "seeds (std with n − 1); p: Welch's two-sided t-test against clser "
            "(* : p < 0.05).\n\n" + "\n".join(rows) + "\n")


def write(summary: Mapping[str, Any], study_dir: str, title: str) -> None:
    """Writes ``study.json`` and ``study.md`` into ``study_dir``."""
    with open(os.path.join(study_dir, "study.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(study_dir, "study.md"), "w", encoding="utf-8") as f:
        f.write(markdown(summary, title))
