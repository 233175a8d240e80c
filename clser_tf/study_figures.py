"""The figures of a study, drawn by matplotlib: accuracy after each task per variant with a
±1 std band, final accuracy per variant with 95 % CI bars, and CLS-ER's mean accuracy
matrix (general-continual streams: the accuracy curve with its band instead)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from clser_tf.figures import accuracy_matrix_figure, plt, style_accuracy_axes
from clser_tf.results import setting_name

Runs = Mapping[str, Mapping[int, Mapping[str, Any]]]  # variant -> seed -> results.json


def _curves(results: Mapping[str, Any], setting: str) -> tuple[list[int], list[float]]:
    """One run's reported model: mean accuracy over seen tasks after each task (x: the
    task; the joint task is after the last task), or the stream's curve."""
    model = results["models"][results["headline"]["model"]]
    if "matrix" not in model:
        return list(results["curve"]["steps"]), list(model["curve"])
    rows = model["matrix"][setting]
    num_tasks = results["benchmark"]["num_tasks"]
    x = [num_tasks] if len(rows) == 1 and num_tasks > 1 else list(range(1, len(rows) + 1))
    return x, [float(np.mean(row)) for row in rows]


def per_task_figure(runs: Runs, settings: list[str], title: str) -> plt.Figure:
    """Mean over seeds (±1 std band) of each variant's accuracy after each task."""
    first = next(iter(next(iter(runs.values())).values()))
    stream = "matrix" not in first["models"][first["headline"]["model"]]
    fig, axes = plt.subplots(1, len(settings), squeeze=False,
                             figsize=(5 * len(settings), 3.8), constrained_layout=True)
    for ax, setting in zip(axes[0], settings):
        for variant, by_seed in runs.items():
            curves = [_curves(results, setting) for results in by_seed.values()]
            x = curves[0][0]
            y = np.array([c[1] for c in curves])
            mean, std = y.mean(0), (y.std(0, ddof=1) if len(y) > 1 else np.zeros(y.shape[1]))
            line, = ax.plot(x, mean, marker="o" if len(x) < 30 else None, label=variant)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        if not stream:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        style_accuracy_axes(ax, "global step" if stream else "after task",
                            "accuracy (%)" if stream else "mean accuracy over seen tasks (%)",
                            setting_name(setting))
    fig.suptitle(title)
    return fig


def final_bars_figure(summary: Mapping[str, Any], title: str) -> plt.Figure:
    """Final accuracy of each variant's reported model: bars of the mean with 95 % CI."""
    variants = summary["variants"]
    settings = list(next(iter(variants.values()))["headline"])
    fig, axes = plt.subplots(1, len(settings), squeeze=False,
                             figsize=(max(4.0, 1.0 * len(variants) + 1.5) * len(settings), 3.8),
                             constrained_layout=True)
    for ax, setting in zip(axes[0], settings):
        entries = [variants[v]["headline"][setting] for v in variants]
        means = [e["mean"] for e in entries]
        errors = np.array([[e["mean"] - e["ci95"][0], e["ci95"][1] - e["mean"]]
                           if e["ci95"] else [0.0, 0.0] for e in entries]).T
        bars = ax.bar(list(variants), means, yerr=errors, capsize=4,
                      color=plt.cm.tab10(np.arange(len(variants)) % 10))
        ax.bar_label(bars, labels=[f"{m:.1f}" for m in means], fontsize=7, padding=2)
        ax.set_ylabel(f"final {setting_name(setting)} (%)")
        ax.set_ylim(0, 105)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title + " (mean, 95 % CI)")
    return fig


def mean_matrix_figure(by_seed: Mapping[int, Mapping[str, Any]], model: str,
                       title: str) -> plt.Figure:
    """The accuracy matrix of ``model``, averaged over seeds, one panel per setting."""
    runs = list(by_seed.values())
    matrices = runs[0]["models"][model]["matrix"]
    mean = {setting: [list(np.mean([r["models"][model]["matrix"][setting][i] for r in runs],
                                   axis=0)) for i in range(len(rows))]
            for setting, rows in matrices.items()}
    return accuracy_matrix_figure({model: mean}, title)
