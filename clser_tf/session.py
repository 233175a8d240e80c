"""What one run's training protocols share, and where the run is."""

from __future__ import annotations

import dataclasses
import os
import time

import keras
import tensorflow as tf

from clser_tf.benchmarks import Benchmark, Setting
from clser_tf.callbacks import TrainingGuard
from clser_tf.checkpoint import Checkpointer, write_json
from clser_tf.config import RunConfig
from clser_tf.curve import AccuracyCurve
from clser_tf.errors import Interrupted, TrainingDiverged
from clser_tf.model import CLSER
from clser_tf.results import StreamResults, TaskSequenceResults
from clser_tf.signals import StopRequest
from clser_tf.variants import VARIANTS, Variant


@dataclasses.dataclass
class Position:
    """Where the run is: the task in progress and its global steps."""

    task: int = 0  # the task in progress; the number of tasks once every task is trained
    start_step: int = 0  # global step at which that task started
    end_step: int = 0  # global step at which its training ends
    tick: float = 0.0  # perf_counter() at the task's start, minus time trained before


@dataclasses.dataclass
class Session:
    """What one run's training paths share: settings, data, model, outputs, checkpoints,
    the results so far and where the run is."""

    config: RunConfig
    benchmark: Benchmark
    model: CLSER
    eval_models: dict[str, keras.Model]
    callbacks: list[keras.callbacks.Callback]
    eval_writer: tf.summary.SummaryWriter | None
    checkpointer: Checkpointer
    stop: StopRequest
    run_tick: float  # perf_counter() at the run's start, minus the time run before a resume
    results: TaskSequenceResults | StreamResults | None = None
    curve: AccuracyCurve | None = None
    position: Position = dataclasses.field(default_factory=Position)
    guard: TrainingGuard = dataclasses.field(init=False)

    def __post_init__(self):
        self.guard = TrainingGuard(self.stop, self.checkpoint, self._diverged)

    @property
    def general(self) -> bool:
        return self.benchmark.setting == Setting.GENERAL_CONTINUAL

    @property
    def variant(self) -> Variant:
        return VARIANTS[self.config.variant]

    @property
    def num_tasks(self) -> int:
        """The tasks trained: one for a stream or the joint task."""
        return 1 if self.general or self.variant.joint else len(self.benchmark.tasks)

    @property
    def results_path(self) -> str:
        return os.path.join(self.config.output_dir, "results.json")

    def save(self) -> None:
        write_json(self.results_path, self.results.to_json())

    def step(self) -> int:
        return int(self.model.global_step.numpy())

    def start_task(self, task: int, num_steps: int = 0, done_steps: int = 0,
                   trained_s: float = 0.0) -> None:
        """Task ``task`` (``num_steps`` steps) is in progress, ``done_steps`` steps
        (``trained_s`` s) into it."""
        start = self.step() - done_steps
        self.position = Position(task, start, start + num_steps,
                                 time.perf_counter() - trained_s)

    def where(self, first: int, last: int) -> str:
        """Global steps first..last as steps of the task in progress."""
        first, last = first - self.position.start_step, last - self.position.start_step
        steps = f"step {last}" if first >= last else f"steps {first}-{last}"
        what = "the stream" if self.general else f"task {self.position.task + 1}/{self.num_tasks}"
        return f"{what}, {steps} of it"

    def checkpoint(self, periodic: bool = False) -> None:
        """Writes a checkpoint of the run as it is now (a periodic one only when due, and
        not at the task's last step: the checkpoint after its evaluation follows)."""
        if not self.checkpointer.due(periodic) or (
                periodic and self.step() >= self.position.end_step):
            return
        now = time.perf_counter()
        self.checkpointer.write(
            task=self.position.task, task_start_step=self.position.start_step,
            results=self.results.to_json(), config=self.config, periodic=periodic,
            extra={"task_train_s": now - self.position.tick, "elapsed_s": now - self.run_tick,
                   "curve": self.curve.state() if self.curve is not None else None})

    def _diverged(self, loss: float, first: int, last: int) -> TrainingDiverged:
        """The error of a non-finite ``loss`` within global steps first..last."""
        steps = (f"at global step {last}" if first >= last else
                 f"within global steps {first}-{last}, one compiled call of "
                 f"--steps_per_execution={self.config.steps_per_execution}")
        return self.checkpointer.diverged(
            f"the loss is {loss} {steps} ({self.where(first, last)})")

    def stop_if_requested(self) -> None:
        """After a SIGINT/SIGTERM: writes a checkpoint and raises :class:`Interrupted`."""
        if self.stop.signum is None:
            return
        self.checkpoint()
        raise Interrupted(self.stop.signum, self.step(), self.checkpointer.directory)

    def raise_if_stopped(self) -> None:
        """After a ``fit``: raises what stopped it early (divergence or a signal), if any."""
        if self.guard.error is not None:
            raise self.guard.error
        self.stop_if_requested()
