"""A stop request shared by every worker of a cluster: a SIGINT/SIGTERM on any worker stops
them all at the same step, through TensorFlow's ``PreemptionCheckpointHandler``."""

from __future__ import annotations

import shutil
import tempfile

import tensorflow as tf
from tensorflow.python.eager import context

from clser_tf.signals import StopRequest

# The coordination-service key under which the first signalled worker publishes its signal.
_SIGNUM_KEY = "clser_tf_stop_signum"


class ClusterStopRequest(StopRequest):
    """:class:`StopRequest` for multi-worker training: a signal on one worker stops every
    worker after the same step, with that signal's exit code.

    TensorFlow's ``tf.distribute.experimental.PreemptionCheckpointHandler`` agrees on the
    step: the signalled worker publishes "save after the next step" through the
    coordination service, every worker acknowledges, and at that step every worker's
    ``poll`` sets ``signum``; the training guard then writes the checkpoint (ours, with the
    run state) and stops, as on one machine. The handler's own checkpoint is not used (it
    would hold no run state): it gets an empty one in a temporary folder and no-op save.
    """

    def __init__(self, cluster_resolver: tf.distribute.cluster_resolver.ClusterResolver):
        super().__init__(install=True)
        self._received: int | None = None  # this worker's own signal
        self._folder = tempfile.mkdtemp(prefix="clser_tf_preemption_")
        self._handler = tf.distribute.experimental.PreemptionCheckpointHandler(
            cluster_resolver, tf.train.Checkpoint(), checkpoint_dir=self._folder,
            termination_config=tf.distribute.experimental.TerminationConfig(
                termination_watcher_fn=self._published, exit_fn=self._agreed,
                save_fn=lambda: None, grace_period=0))

    def _note(self, signum: int) -> None:
        self._received = signum  # ``signum`` waits for the cluster's agreed step

    def _published(self) -> bool:
        """Polled about once a second by the handler's thread: whether this worker got a
        signal, published (first signal in the cluster wins) before the handler acts."""
        if self._received is None:
            return False
        try:
            context.context().set_config_key_value(_SIGNUM_KEY, str(self._received))
        except tf.errors.AlreadyExistsError:  # another worker was signalled first
            pass
        return True

    def _agreed(self) -> None:
        """Called by the handler on every worker at the agreed step (its ``exit_fn``)."""
        self.signum = int(context.context().get_config_key_value(_SIGNUM_KEY))

    def poll(self) -> None:
        self._handler.save_checkpoint_if_preempted()

    def __exit__(self, *exc_info) -> None:
        super().__exit__(*exc_info)
        # The handler's watcher threads hold a reference to it, so its __del__ (which stops
        # them) would never run on its own.
        self._handler.__del__()
        shutil.rmtree(self._folder, ignore_errors=True)
