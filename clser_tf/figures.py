"""The figures of a run, drawn by matplotlib (Agg: no display needed).

A task-sequence run writes ``accuracy_matrix.png`` (one heat-map panel per evaluated
model and setting: class-IL, and task-IL where defined) and ``accuracy_per_task.png``
(the mean accuracy over the tasks seen so far after each task, one line per model, one
panel per setting); mnist-360 writes ``accuracy_curve.png`` (accuracy along the stream,
one line per model). Each also goes to TensorBoard as an image.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from clser_tf.errors import WriteFailed  # noqa: E402
from clser_tf.results import setting_name  # noqa: E402

Matrix = Sequence[Sequence[float]]


def check_matrix(matrix: Matrix, joint: bool = False) -> list[list[float]]:
    """``matrix`` (row i: accuracies on tasks 0..i after task i) as floats, or ValueError.

    With ``joint`` it is the joint task's one row, evaluated on every task's test set.
    """
    if len(matrix) == 0:
        raise ValueError("matrix is empty: it needs one row per trained task.")
    if joint and len(matrix) != 1:
        raise ValueError(f"matrix has {len(matrix)} rows; the joint task's has one.")
    for i, row in enumerate(matrix):
        if len(row) > i + 1 and not joint:
            raise ValueError(f"matrix row {i} has {len(row)} entries {list(row)!r}; a "
                             f"lower-triangular matrix allows at most i + 1 = {i + 1}.")
        for j, value in enumerate(row):
            if not (isinstance(value, (int, float, np.integer, np.floating))
                    and 0.0 <= value <= 100.0):
                raise ValueError(f"matrix[{i}][{j}]={value!r} is not an accuracy in 0..100.")
    return [[float(value) for value in row] for row in matrix]


def style_accuracy_axes(ax: plt.Axes, xlabel: str, ylabel: str, title: str,
                        title_size: float | str = 9) -> None:
    """The axes of an accuracy plot: labels, a 0-100 % range, a light grid, a legend
    (``title_size``: small for a panel under a figure title)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=title_size)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def accuracy_matrix_figure(matrices: Mapping[str, Mapping[str, Matrix]], title: str,
                           joint: bool = False) -> plt.Figure:
    """One heat-map panel per model (columns) and setting (rows); ``matrices[model][setting]``
    is a lower-triangular accuracy matrix (``joint``: the joint task's one row). Missing
    cells are grey and blank."""
    models = list(matrices)
    settings = list(next(iter(matrices.values())))
    n = max(map(len, check_matrix(matrices[models[0]][settings[0]], joint)))
    size = max(3.0, 0.45 * n + 1.5)
    fig, axes = plt.subplots(len(settings), len(models), squeeze=False,
                             figsize=(size * len(models) + 1, size * len(settings) + 0.6),
                             constrained_layout=True)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    for row, setting in enumerate(settings):
        for col, model in enumerate(models):
            ax, rows = axes[row][col], check_matrix(matrices[model][setting], joint)
            grid = np.full((len(rows), max(len(rows), *map(len, rows))), np.nan)
            for i, values in enumerate(rows):
                grid[i, :len(values)] = values
            image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=100)
            if n <= 12:
                for (i, j), value in np.ndenumerate(grid):
                    if not math.isnan(value):
                        ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7,
                                color="black" if value > 60 else "white")
            ax.set_xticks(range(grid.shape[1]), [str(t + 1) for t in range(grid.shape[1])],
                          fontsize=7)
            ax.set_yticks(range(grid.shape[0]), [str(t + 1) for t in range(grid.shape[0])],
                          fontsize=7)
            ax.set_xlabel("task")
            ax.set_ylabel("after task")
            ax.set_title(f"{model} {setting_name(setting)}", fontsize=9)
    fig.colorbar(image, ax=axes, shrink=0.8, label="accuracy (%)")
    fig.suptitle(title)
    return fig


def accuracy_per_task_figure(matrices: Mapping[str, Mapping[str, Matrix]], title: str,
                             joint: bool = False) -> plt.Figure:
    """Mean accuracy over the tasks seen after each task: one line per model, one panel
    per setting (``joint``: the joint task's one point)."""
    settings = list(next(iter(matrices.values())))
    fig, axes = plt.subplots(1, len(settings), squeeze=False,
                             figsize=(4.5 * len(settings), 3.5), constrained_layout=True)
    for ax, setting in zip(axes[0], settings):
        for model, per_setting in matrices.items():
            rows = check_matrix(per_setting[setting], joint)
            ax.plot(range(1, len(rows) + 1), [sum(r) / len(r) for r in rows], marker="o",
                    label=model)
        style_accuracy_axes(ax, "after task", "mean accuracy over seen tasks (%)",
                            setting_name(setting))
    fig.suptitle(title)
    return fig


def accuracy_curve_figure(steps: Sequence[int], curves: Mapping[str, Sequence[float]],
                          title: str) -> plt.Figure:
    """Accuracy along the stream (mnist-360): one line per model."""
    fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    for model, accuracy in curves.items():
        ax.plot(steps, accuracy, label=model)
    style_accuracy_axes(ax, "global step", "accuracy (%)", title,
                        title_size=plt.rcParams["axes.titlesize"])
    return fig


def figure_png(fig: plt.Figure) -> bytes:
    """``fig`` as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def save_figure(fig: plt.Figure, path: str) -> bytes:
    """Writes ``fig`` as a PNG file at ``path`` (creating its folder), closes it and returns
    the PNG bytes; a failed write is :class:`~clser_tf.errors.WriteFailed`."""
    png = figure_png(fig)
    plt.close(fig)
    try:
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(path, "wb") as f:
            f.write(png)
    except OSError as error:
        raise WriteFailed(path, error) from None
    return png


def save_figures(figures: Mapping[str, plt.Figure], output_dir: str,
                 writer: tf.summary.SummaryWriter | None, step: int) -> None:
    """Writes each figure as ``<output_dir>/<name>.png`` and, with a ``writer``, as a
    TensorBoard image ``figures/<name>`` at ``step``; closes them."""
    for name, fig in figures.items():
        png = save_figure(fig, os.path.join(output_dir, f"{name}.png"))
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.image(f"figures/{name}", tf.io.decode_png(png, channels=4)[None])
