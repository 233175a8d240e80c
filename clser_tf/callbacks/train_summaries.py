"""TensorBoard summaries of the step logs at the global step."""

from __future__ import annotations

import keras
import tensorflow as tf


class TrainSummaries(keras.callbacks.Callback):
    """``fit``'s step logs (running means over the epoch) to TensorBoard at the global step.

    Written at the first compiled-call end at or past every multiple of ``every_steps``.
    Keras's TensorBoard callback numbers compiled calls from 0 in every ``fit`` (here one
    per epoch, and again after a resume), so its steps would restart and its period would
    count calls, not steps.
    """

    def __init__(self, writer: tf.summary.SummaryWriter, every_steps: int):
        super().__init__()
        self._writer, self._every = writer, every_steps
        self._last: int | None = None

    def on_train_begin(self, logs=None):
        if self._last is None:
            self._last = int(self.model.global_step.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.global_step.numpy())
        if step // self._every <= self._last // self._every:
            return
        self._last = step
        with self._writer.as_default(step=step):
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"batch_{name}", tf.reduce_mean(value))
