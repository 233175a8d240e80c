"""An accuracy curve along a training stream, as a Keras callback."""

from __future__ import annotations

import time
from collections.abc import Callable

import keras
import tensorflow as tf


class AccuracyCurve(keras.callbacks.Callback):
    """Records each model's accuracy every ``every_steps`` optimizer steps during ``fit``.

    ``evaluate()`` returns ``{model name: accuracy in %}`` (on a fixed held-out set). A
    point is recorded before the first step, whenever the optimizer's step count is a
    multiple of ``every_steps`` at the end of a compiled call (so every multiple, when
    ``every_steps`` is a multiple of ``steps_per_execution``), and at the end of training.
    With a ``writer``, each point also goes to TensorBoard as ``<model>/curve_accuracy``.
    ``seconds`` is the time spent evaluating. :meth:`state` and ``state=`` carry the curve
    across a checkpoint: a resumed curve adds no point where its ``fit`` starts.
    """

    def __init__(self, evaluate: Callable[[], dict[str, float]], every_steps: int,
                 writer: tf.summary.SummaryWriter | None = None, state: dict | None = None):
        super().__init__()
        if every_steps < 1:
            raise ValueError(f"every_steps={every_steps!r} is invalid: it must be >= 1.")
        self._evaluate = evaluate
        self._every_steps = every_steps
        self._writer = writer
        state = state or {"steps": [], "accuracy": {}, "seconds": 0.0}
        self.steps: list[int] = list(state["steps"])
        self.accuracy: dict[str, list[float]] = {k: list(v) for k, v in state["accuracy"].items()}
        self.seconds = float(state["seconds"])

    def state(self) -> dict:
        """The points so far and the evaluation time, JSON-ready."""
        return {"steps": list(self.steps), "accuracy": {k: list(v) for k, v in
                                                        self.accuracy.items()},
                "seconds": self.seconds}

    def on_train_begin(self, logs=None):
        if not self.steps:
            self._record()

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        if step % self._every_steps == 0 and step != self.steps[-1]:
            self._record()

    def on_train_end(self, logs=None):
        if self._step() != self.steps[-1]:
            self._record()

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def _record(self) -> None:
        tick = time.perf_counter()
        step = self._step()
        accuracies = self._evaluate()
        self.steps.append(step)
        for name, accuracy in accuracies.items():
            self.accuracy.setdefault(name, []).append(accuracy)
        if self._writer is not None:
            with self._writer.as_default(step=step):
                for name, accuracy in accuracies.items():
                    tf.summary.scalar(f"{name}/curve_accuracy", accuracy)
        self.seconds += time.perf_counter() - tick
