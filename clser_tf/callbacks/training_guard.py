"""The training guard: a non-finite loss, a stop request and periodic checkpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np

from clser_tf.checkpoint import finite
from clser_tf.errors import TrainingDiverged

if TYPE_CHECKING:
    from clser_tf.session import Session


class TrainingGuard(keras.callbacks.Callback):
    """Watches ``fit`` at the end of every compiled call (Keras's batch end), in order:

    1. a non-finite loss (the running mean over the epoch, so non-finite from the first
       bad step on) stops training with an error naming the step, and no checkpoint;
    2. a pending SIGINT/SIGTERM writes a checkpoint and stops training;
    3. a checkpoint is written at the first call end at or past every multiple of
       ``checkpoint_every_steps``.

    With ``one_epoch`` it also stops ``fit`` after one epoch: each epoch of a task gets its
    own ``fit``, with its own data order (Keras would iterate one dataset every epoch).
    """

    def __init__(self, session: Session):
        super().__init__()
        self._session = session
        self.one_epoch = False
        self.error: TrainingDiverged | None = None
        self._call_start = 0  # global step before the current compiled call

    def on_train_begin(self, logs=None):
        self._call_start = self._session.step()

    def on_train_batch_end(self, batch, logs=None):
        session = self._session
        step = session.step()
        loss = (logs or {}).get("loss")
        if loss is not None and not finite(loss):
            first = self._call_start + 1
            steps = (f"at global step {step}" if first >= step else
                     f"within global steps {first}-{step}, one compiled call of "
                     f"--steps_per_execution={session.config.steps_per_execution}")
            value = float(np.asarray(loss).reshape(-1)[0])
            self.error = session.checkpointer.diverged(
                f"the loss is {value} {steps} ({session.where(first, step)})")
            self.model.stop_training = True
            return
        self._call_start = step
        if session.stop.signum is not None:
            session.checkpoint()
            self.model.stop_training = True
        elif session.checkpoint_due(step):
            session.checkpoint()

    def on_epoch_end(self, epoch, logs=None):
        if self.one_epoch:
            self.model.stop_training = True
