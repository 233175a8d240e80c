"""Every error a user can fix, and the one-line form in which the command line reports it.

Each ends a run from ``python -m clser_tf.main`` with one ``clser_tf: error: ...`` line and
exit code 1 (``Interrupted``: a ``clser_tf: ...`` line and exit code 128 + signal), before
anything is overwritten.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence


class DatasetError(ValueError):
    """Data missing or malformed; the message names where it looked and how to get the data."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed (corrupt, foreign, or from other settings)."""


class TrainingDiverged(RuntimeError):
    """The loss or the weights became non-finite; no checkpoint was written of that state."""


class FolderError(ValueError):
    """An output, checkpoint or export folder that cannot be created, written, or is in use
    by another run."""


class WriteFailed(OSError):
    """Writing a checkpoint, results.json, a figure or the export failed (a full disk, an
    I/O error); the previous checkpoint and results.json stay valid."""

    def __init__(self, path: str, error: BaseException):
        reason = getattr(error, "strerror", None) or _os_reason(first_line(error))
        super().__init__(
            f"could not write {path!r}: {reason}. The previous checkpoint and results.json "
            "are kept: free space (or fix the disk) and run the same command again to "
            "resume.")


_TASK = r"/job:\w+/replica:\d+/task:\d+"  # a task's device prefix in an error


class WorkerLost(RuntimeError):
    """Under multi-worker training another worker stopped answering (it died or its
    machine did); every worker stops, and running them all again resumes.

    The lost worker is named from the coordination service's heartbeat report when the
    error carries one; else from the peers (``peers``: every other task of the cluster)
    that the error names, or the only peer; else the error's own first line.
    """

    def __init__(self, error: BaseException, checkpoint_dir: str, peers: Sequence[str] = ()):
        text = str(error)
        tasks = sorted(set(re.findall(_TASK, text.split("unhealthy", 1)[-1]))) if (
            "unhealthy" in text) else []
        named = sorted(set(re.findall(_TASK, text)) & set(peers))
        if tasks:
            what = f"{', '.join(tasks)} stopped sending heartbeats"
        elif named or len(peers) == 1:
            what = f"{', '.join(named or peers)} stopped answering"
        else:
            what = f"{type(error).__name__}: {first_line(error)}"
        super().__init__(
            f"a worker was lost ({what}); "
            f"the newest checkpoint is in {checkpoint_dir!r}: start every worker again with "
            "the same command to resume.")


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the run; a checkpoint of where it stopped was written."""

    def __init__(self, signum: int, step: int, checkpoint_dir: str):
        self.signum, self.step = signum, step
        self.exit_code = 128 + signum  # what a shell reports for a death by that signal
        super().__init__(
            f"stopped by {signal.Signals(signum).name} at global step {step}; the checkpoint "
            f"is in {checkpoint_dir!r}. Run the same command again to resume.")


# What the command line reports as one line and exit code 1.
USER_ERRORS = (DatasetError, CheckpointError, TrainingDiverged, FolderError, WriteFailed,
               WorkerLost)


def _os_reason(message: str) -> str:
    """The OS error at the end of a TensorFlow I/O message ("...; No space left on device
    [Op:SaveV2]"), else the message."""
    match = re.search(r";\s*([^;\[]+?)\s*(\[Op:\w+\])?$", message)
    return match[1] if match else message


def first_line(err: BaseException) -> str:
    """The first line of an error message (tfds' not-found error lists every dataset)."""
    return str(err).strip().split("\n", 1)[0]


def error_line(error: BaseException | str, program: str = "clser_tf") -> str:
    """``error`` as the line the command line prints: ``<program>: error: ...``."""
    return f"{program}: error: {error}"
