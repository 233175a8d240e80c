"""The lock-step check's files and comparison, in NumPy only: both sides import this module
(our side under TensorFlow, the reference side under torch, which has no TensorFlow).

A check folder holds ``recipe.json`` (the settings and shapes), ``init.npz`` (the three
models' initial weights), and per step ``k``: ``step_k.npz`` (the batch and every random
draw of the step, written by our side before the reference runs it) and ``state_k.npz``
(our state after the step). A state maps names to arrays:

- ``working/NAME``, ``plastic/NAME``, ``stable/NAME``: every weight and BatchNorm statistic,
  under the reference's ``state_dict`` name and in its layout;
- ``buffer/examples`` (uint8, our layout), ``buffer/labels``, ``buffer/num_seen``;
- ``loss/total``, ``loss/ce``, ``loss/consistency``;
- ``teacher/stable_chosen``: per replay sample, 1 if the stable model was the teacher.

The reference side (:func:`serve`) reads a step number per line on stdin, runs that step,
and prints one JSON line comparing its state with ours.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable

import numpy as np

MODELS = ("working", "plastic", "stable")
LOSSES = ("total", "ce", "consistency")


def step_path(folder: str, kind: str, step: int) -> str:
    """``folder/{kind}_{step:05d}.npz`` (``kind``: ``step`` or ``state``)."""
    return os.path.join(folder, f"{kind}_{step:05d}.npz")


def write(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Writes ``arrays`` to ``path`` (npz), complete or not at all."""
    partial = path + ".partial.npz"
    np.savez(partial, **arrays)
    os.replace(partial, path)


def read(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def relative_difference(ours: np.ndarray, ref: np.ndarray) -> float:
    """``max|ours - ref| / max|ref|`` over one tensor (its own scale: an element-wise ratio
    explodes where a BatchNorm mean is near zero); the absolute difference if ``ref`` is 0."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        raise ValueError(f"shapes differ: ours {ours.shape}, reference {ref.shape}")
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    diff = float(np.max(np.abs(ours - ref))) if ref.size else 0.0
    return diff / scale if scale > 0 else diff


def compare(step: int, ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict:
    """One step's figures: per model the largest relative difference of any tensor and which
    tensor it is, the loss terms' absolute differences, and whether the teacher choices and
    the buffer are identical."""
    missing = sorted(set(ours) ^ set(ref))
    if missing:
        raise ValueError(f"step {step}: the states name different tensors: {missing[:5]}")
    report = {"step": step, "max_rel": {}, "worst": {}}
    for model in MODELS:
        names = [name for name in ours if name.startswith(model + "/")]
        diffs = {name: relative_difference(ours[name], ref[name]) for name in names}
        if diffs:
            worst = max(diffs, key=diffs.get)
            report["max_rel"][model], report["worst"][model] = diffs[worst], worst
    report["loss_abs"] = {term: abs(float(ours[f"loss/{term}"]) - float(ref[f"loss/{term}"]))
                          for term in LOSSES}
    chosen_ours, chosen_ref = ours["teacher/stable_chosen"], ref["teacher/stable_chosen"]
    report["teacher_choices"] = int(chosen_ref.size)
    report["teacher_mismatches"] = (int(np.sum(chosen_ours != chosen_ref))
                                    if chosen_ours.shape == chosen_ref.shape
                                    else int(max(chosen_ours.size, chosen_ref.size)))
    report["buffer_equal"] = all(
        ours[name].shape == ref[name].shape and np.array_equal(ours[name], ref[name])
        for name in ("buffer/examples", "buffer/labels", "buffer/num_seen"))
    return report


def serve(folder: str, run_step: Callable[[int, dict[str, np.ndarray]], dict[str, np.ndarray]],
          resync: Callable[[dict[str, np.ndarray]], None] | None = None,
          stdin=sys.stdin, stdout=sys.stdout) -> None:
    """The reference side's loop: for each step number read from ``stdin``, runs
    ``run_step(step, step_file)`` (which returns the reference's state after the step) and
    prints ``compare(...)`` of it against ``state_k.npz`` as one JSON line. With ``resync``
    the reference then takes our state (``resync(state)``), so that every step starts from
    the same weights and each report measures one step alone."""
    for line in stdin:
        stdout.write(json.dumps(check_step(folder, int(line), run_step, resync)) + "\n")
        stdout.flush()


def check_step(folder: str, step: int,
               run_step: Callable[[int, dict[str, np.ndarray]], dict[str, np.ndarray]],
               resync: Callable[[dict[str, np.ndarray]], None] | None = None) -> dict:
    """Runs the reference's step ``step`` on its file and compares it with our state
    (which the reference then takes, with ``resync``)."""
    state = run_step(step, read(step_path(folder, "step", step)))
    ours = read(step_path(folder, "state", step))
    report = compare(step, ours, state)
    if resync is not None:
        resync(ours)
    return report
