"""The training guard: a non-finite loss, a stop request and periodic checkpoints."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from clser_tf.checkpoint import finite
from clser_tf.errors import TrainingDiverged
from clser_tf.signals import StopRequest


class TrainingGuard(keras.callbacks.Callback):
    """Watches ``fit`` at the end of every compiled call (Keras's batch end), in order:

    1. a non-finite loss (the running mean over the epoch, so non-finite from the first
       bad step on) stops training with the error ``diverged(loss, first, last)`` of global
       steps first..last, and no checkpoint;
    2. a pending SIGINT/SIGTERM (``stop``) writes a checkpoint (``checkpoint()``) and stops
       training;
    3. otherwise ``checkpoint(periodic=True)`` writes a checkpoint if one is due.

    With ``one_epoch`` it also stops ``fit`` after one epoch: each epoch of a task gets its
    own ``fit``, with its own data order (Keras would iterate one dataset every epoch).
    """

    def __init__(self, stop: StopRequest, checkpoint: Callable[..., None],
                 diverged: Callable[[float, int, int], TrainingDiverged]):
        super().__init__()
        self._stop, self._checkpoint, self._diverged = stop, checkpoint, diverged
        self.one_epoch = False
        self.error: TrainingDiverged | None = None
        self._call_start = 0  # global step before the current compiled call

    def on_train_begin(self, logs=None):
        self._call_start = int(self.model.global_step.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.global_step.numpy())
        loss = (logs or {}).get("loss")
        if loss is not None and not finite(loss):
            value = float(np.asarray(loss).reshape(-1)[0])
            self.error = self._diverged(value, self._call_start + 1, step)
            self.model.stop_training = True
            return
        self._call_start = step
        self._stop.poll()
        if self._stop.signum is not None:
            self._checkpoint()
            self.model.stop_training = True
        else:
            self._checkpoint(periodic=True)

    def on_epoch_end(self, epoch, logs=None):
        if self.one_epoch:
            self.model.stop_training = True
