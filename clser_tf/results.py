"""The results of a run, typed: what ``<output_dir>/results.json`` holds.

A task sequence (:class:`TaskSequenceResults`) keeps, per evaluated model and setting
(``class_il``, ``task_il`` or ``domain_il``), the random-initialised accuracies, the
accuracies just before each task, the accuracy matrix and, once every task is trained, the
summary of :func:`clser_tf.evaluation.summarize`. A general-continual stream
(:class:`StreamResults`) keeps each model's accuracy, per-digit accuracies and curve.
``to_json`` writes results.json's schema; ``from_json`` reads a checkpoint's results back.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from clser_tf.evaluation import summarize

Accuracies = dict[str, dict[str, list[float]]]  # model -> setting -> one accuracy per test set


def setting_name(setting: str) -> str:
    """How a setting is written in tables and figures: ``class_il`` -> ``class-IL``."""
    return setting.replace("_il", "-IL")


def benchmark_record(benchmark) -> dict[str, Any]:
    """What results.json says of a :class:`~clser_tf.benchmarks.Benchmark`: its name,
    setting and draws."""
    return {"name": benchmark.name, "setting": benchmark.setting, **benchmark.details}


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _headline(models: dict[str, Any], preferred: str) -> str:
    """``preferred`` if it was evaluated, else the first evaluated model."""
    return preferred if preferred in models else next(iter(models))


def _joint_summary(matrix: list[list[float]]) -> dict[str, float | None]:
    """The joint task's summary: its one row's mean; no task came before another."""
    return {"final_mean": float(np.mean(matrix[-1])), "forgetting": None,
            "backward_transfer": None, "forward_transfer": None}


@dataclasses.dataclass
class ModelResults:
    """One model's accuracies over a task sequence, each by setting."""

    random_init: dict[str, list[float]]  # every task, before any training
    before_task: dict[str, list[float | None]]  # task t just before training it (t=0: None)
    matrix: dict[str, list[list[float]]]  # row i: every task seen, after training task i
    summary: dict[str, dict[str, float | None]] | None = None


@dataclasses.dataclass
class TaskSequenceResults:
    """The results of a task sequence (class-IL, domain-IL, GCIL), filled in task by task."""

    config: dict[str, Any]
    benchmark: dict[str, Any]
    models: dict[str, ModelResults]
    timings: dict[str, Any]  # train_s and eval_s per task; total_s at the end
    headline: dict[str, Any] | None = None

    @classmethod
    def start(cls, config: dict[str, Any], benchmark: dict[str, Any],
              task_classes: list[list[int]], random_init: Accuracies) -> TaskSequenceResults:
        """A new sequence's results: its random-init accuracies and empty matrices."""
        settings = list(next(iter(random_init.values())))
        return cls(config, {**benchmark, "num_tasks": len(task_classes),
                            "task_classes": task_classes},
                   {name: ModelResults(accs, {s: [None] for s in settings},
                                       {s: [] for s in settings})
                    for name, accs in random_init.items()},
                   {"train_s": [], "eval_s": []})

    @property
    def settings(self) -> list[str]:
        """The settings evaluated: class_il and task_il, or domain_il, or class_il alone."""
        return list(next(iter(self.models.values())).matrix)

    def owes_before_task(self, task: int) -> bool:
        """Whether task ``task``'s accuracy just before training it is still to be taken."""
        first = next(iter(self.models.values())).before_task[self.settings[0]]
        return 0 < task == len(first)

    def add_before_task(self, accs: Accuracies) -> None:
        """Each model's accuracy on the next task, just before training it."""
        for name, result in self.models.items():
            for s in self.settings:
                result.before_task[s].append(accs[name][s][0])

    def add_task(self, accs: Accuracies, train_s: float, eval_s: float) -> None:
        """The accuracies on every task seen after training one more, and its timings."""
        self.timings["train_s"].append(train_s)
        self.timings["eval_s"].append(eval_s)
        for name, result in self.models.items():
            for s in self.settings:
                result.matrix[s].append(accs[name][s])

    def finish(self, preferred_headline: str, joint: bool = False) -> None:
        """The summaries of every model and the headline model's final mean accuracies
        (``joint``: one task evaluated on every test set; only its final mean is defined)."""
        for result in self.models.values():
            result.summary = {s: _joint_summary(result.matrix[s]) if joint else
                              summarize(result.matrix[s], result.random_init[s],
                                        result.before_task[s]) for s in self.settings}
        name = _headline(self.models, preferred_headline)
        self.headline = {"model": name, **{
            s: self.models[name].summary[s]["final_mean"] for s in self.settings}}

    def matrices(self) -> dict[str, dict[str, list[list[float]]]]:
        """Each model's accuracy matrix by setting."""
        return {name: result.matrix for name, result in self.models.items()}

    def to_json(self) -> dict[str, Any]:
        return _without_none({
            "config": self.config, "benchmark": self.benchmark,
            "models": {name: _without_none(dataclasses.asdict(result))
                       for name, result in self.models.items()},
            "timings": self.timings, "headline": self.headline})

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> TaskSequenceResults:
        return cls(payload["config"], payload["benchmark"],
                   {name: ModelResults(**result) for name, result in payload["models"].items()},
                   payload["timings"], payload.get("headline"))


@dataclasses.dataclass
class StreamModelResults:
    """One model's accuracy after a general-continual stream, per digit and along it."""

    accuracy: float  # over every digit's test samples
    per_digit: list[float]
    curve: list[float]  # on the held-out slice, at the curve's steps


@dataclasses.dataclass
class StreamResults:
    """The results of a general-continual stream (mnist-360)."""

    config: dict[str, Any]
    benchmark: dict[str, Any]
    timings: dict[str, Any] | None = None  # train_s, curve_eval_s, eval_s, total_s
    curve: dict[str, Any] | None = None  # its held-out sample count and steps
    models: dict[str, StreamModelResults] | None = None
    headline: dict[str, Any] | None = None

    def finish(self, models: dict[str, StreamModelResults], curve: dict[str, Any],
               preferred_headline: str) -> None:
        """The models' final accuracies, the curve's steps and the headline."""
        self.models, self.curve = models, curve
        name = _headline(models, preferred_headline)
        self.headline = {"model": name, "accuracy": models[name].accuracy}

    def to_json(self) -> dict[str, Any]:
        models = (None if self.models is None else
                  {name: dataclasses.asdict(result) for name, result in self.models.items()})
        return _without_none({
            "config": self.config, "benchmark": self.benchmark, "timings": self.timings,
            "curve": self.curve, "models": models, "headline": self.headline})

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> StreamResults:
        models = payload.get("models")
        return cls(payload["config"], payload["benchmark"], payload.get("timings"),
                   payload.get("curve"),
                   None if models is None else {
                       name: StreamModelResults(**result) for name, result in models.items()},
                   payload.get("headline"))
