"""What one run's training protocols share, and where the run is."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import keras
import tensorflow as tf

from clser_tf.benchmarks import Benchmark, Setting
from clser_tf.callbacks import TrainingGuard
from clser_tf.checkpoint import Checkpointer, write_json
from clser_tf.config import RunConfig
from clser_tf.curve import AccuracyCurve
from clser_tf.errors import Interrupted
from clser_tf.model import CLSER
from clser_tf.signals import StopRequest


@dataclasses.dataclass
class Session:
    """What one run's training paths share: settings, data, model, outputs, checkpoints,
    and where the run is (the task in progress and the global step it started at)."""

    config: RunConfig
    benchmark: Benchmark
    model: CLSER
    eval_models: dict[str, keras.Model]
    callbacks: list[keras.callbacks.Callback]
    eval_writer: tf.summary.SummaryWriter | None
    results: dict[str, Any]
    results_path: str
    checkpointer: Checkpointer
    stop: StopRequest
    run_tick: float  # perf_counter() at the run's start, minus the time run before a resume
    num_tasks: int = 1
    task: int = 0  # the task in progress; num_tasks once every task is trained
    task_start_step: int = 0
    task_tick: float = 0.0  # perf_counter() at the task's start, minus time trained before
    curve: AccuracyCurve | None = None
    written: tuple[int, int] | None = None  # (task, global step) of the newest checkpoint
    guard: TrainingGuard | None = None

    def save(self) -> None:
        write_json(self.results_path, self.results)

    def step(self) -> int:
        return int(self.model.global_step.numpy())

    def start_task(self, task: int, done_steps: int = 0, trained_s: float = 0.0) -> None:
        """Task ``task`` is in progress, ``done_steps`` steps (``trained_s`` s) into it."""
        self.task = task
        self.task_start_step = self.step() - done_steps
        self.task_tick = time.perf_counter() - trained_s

    def where(self, first: int, last: int) -> str:
        """Global steps first..last as steps of the task in progress."""
        first, last = first - self.task_start_step, last - self.task_start_step
        steps = f"step {last}" if first >= last else f"steps {first}-{last}"
        what = "the stream" if self.benchmark.setting == Setting.GENERAL_CONTINUAL else (
            f"task {self.task + 1}/{self.num_tasks}")
        return f"{what}, {steps} of it"

    def checkpoint_due(self, step: int) -> bool:
        every, last = self.config.checkpoint_every_steps, self.checkpointer.last_step or 0
        return every > 0 and step // every > last // every

    def checkpoint(self) -> None:
        """Writes a checkpoint of the run as it is now (once per task and global step)."""
        step = self.step()
        if self.written == (self.task, step):
            return
        now = time.perf_counter()
        self.checkpointer.write(
            task=self.task, task_start_step=self.task_start_step, results=self.results,
            extra={"task_train_s": now - self.task_tick, "elapsed_s": now - self.run_tick,
                   "curve": self.curve.state() if self.curve is not None else None},
            config=self.config)
        self.written = (self.task, step)

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
