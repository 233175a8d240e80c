"""Checkpoints of a run: everything that decides its future, written so a kill loses nothing.

A checkpoint directory is ``tf.train.CheckpointManager``'s::

    checkpoint                        TF's state file naming the checkpoints, newest last
    ckpt-<n>.index, ckpt-<n>.data-*   tf.train.Checkpoint(model=..., optimizer=...,
                                      run_state=...): the three models, the buffer (inputs,
                                      labels, seen count), the global step, the optimizer's
                                      slots and iteration count, and the run state

The run state (where the run is: task, steps done in it; the results so far; the deciding
settings) is a ``tf.train.experimental.PythonState`` inside the same checkpoint, so the two
can never disagree. The manager numbers the checkpoints (its save counter), keeps the newest
``keep``, writes the state file last (a kill at any moment leaves the previous checkpoint
readable) and decides when a periodic one is due from the global step (its
``step_counter`` and ``checkpoint_interval``): at most one checkpoint per global step, a
periodic one at least ``every_steps`` steps after the previous one. Nothing else needs
saving: every random draw of the step is keyed on (seed, stream, global step), and the data
order of a task's epoch on (seed, epoch).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import sys
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from clser_tf.config import RunConfig, changed_settings, deciding_settings
from clser_tf.errors import CheckpointError, TrainingDiverged, WriteFailed, first_line

RUN_STATE_FORMAT = "clser_tf run state"
RUN_STATE_VERSION = 2  # 1: a ckpt-<n>.json file beside each checkpoint
PREFIX = "ckpt"
_RUN_STATE_KEY = "run_state/.ATTRIBUTES/py_state"  # the run state's tensor in a checkpoint
_RESTART = "add --restart to start over (it removes the checkpoints)"


def write_json(path: str, payload: Any) -> None:
    """Writes ``payload`` atomically: a temporary file renamed over ``path``."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=1)
        os.replace(tmp, path)
    except OSError as error:
        raise WriteFailed(path, error) from None


@dataclasses.dataclass
class RunState:
    """One checkpoint's run state; ``path`` is the TF checkpoint's prefix."""

    path: str
    global_step: int
    task: int  # the task in progress; the number of tasks once every task is done
    task_start_step: int  # global step when that task started
    results: dict[str, Any]
    extra: dict[str, Any]  # what else the runner keeps (timings so far, the accuracy curve)

    @property
    def position(self) -> int:
        """Steps done within the task in progress."""
        return self.global_step - self.task_start_step


class _RunStateSlot(tf.train.experimental.PythonState):
    """The run state as JSON inside the TF checkpoint."""

    def __init__(self):
        self.payload: dict[str, Any] = {}

    def serialize(self) -> str:
        return json.dumps(self.payload)

    def deserialize(self, string_value) -> None:
        self.payload = json.loads(string_value)


def kept_checkpoints(directory: str) -> list[str]:
    """The kept checkpoints' prefixes in ``directory``, newest first (none without a state
    file), from TF's state file (``tf.train.get_checkpoint_state``).

    Raises :class:`CheckpointError` (one line) if the state file is corrupt or names no
    checkpoint whose files exist.
    """
    state_file = os.path.join(directory, "checkpoint")
    if not os.path.isfile(state_file):
        return []
    try:
        state = tf.train.get_checkpoint_state(directory)
    except (tf.errors.OpError, ValueError) as error:
        state, detail = None, f": {first_line(error)}"
    else:
        detail = ""
    paths = [] if state is None else (list(state.all_model_checkpoint_paths)
                                      or [state.model_checkpoint_path])
    paths = [p if os.path.isabs(p) else os.path.join(directory, p)
             for p in reversed(paths) if p]
    existing = [p for p in paths if os.path.isfile(p + ".index")]
    if not existing:
        raise CheckpointError(f"the checkpoint state file {state_file!r} is corrupt or names "
                              f"no checkpoint that exists{detail}; {_RESTART}.")
    return existing


def latest_checkpoint(directory: str) -> str | None:
    """The newest kept checkpoint's prefix in ``directory`` (None if there is none)."""
    paths = kept_checkpoints(directory)
    return paths[0] if paths else None


def warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"clser_tf: warning: {message}", file=sys.stderr, flush=True)


def _without_hint(error: CheckpointError) -> str:
    """``error``'s message without the --restart hint (for a warning: the run goes on)."""
    return str(error).removesuffix(f"; {_RESTART}.")


def _unrestorable(path: str, error: Exception) -> CheckpointError:
    return CheckpointError(f"the checkpoint {path!r} cannot be restored into this model "
                           f"({type(error).__name__}: {first_line(error)}); {_RESTART}.")


def read_run_state(path: str) -> dict[str, Any]:
    """The run state inside checkpoint ``path``, checked to be one of this version."""
    try:
        reader = tf.train.load_checkpoint(path)
        if not reader.has_tensor(_RUN_STATE_KEY):
            raise CheckpointError(f"{path!r} is not a clser_tf checkpoint: it holds no run "
                                  f"state; {_RESTART}.")
        text = reader.get_tensor(_RUN_STATE_KEY)
    except CheckpointError:
        raise
    except Exception as error:  # truncated files raise IndexError, others OpError
        raise _unrestorable(path, error) from None
    try:
        payload = json.loads(text)
    except ValueError as error:
        raise CheckpointError(f"the run state of {path!r} is unreadable or corrupt "
                              f"({first_line(error)}); {_RESTART}.") from None
    keys = ("format", "version", "global_step", "task", "task_start_step", "results", "extra",
            "config")
    if not isinstance(payload, dict) or payload.get("format") != RUN_STATE_FORMAT or (
            any(key not in payload for key in keys)):
        raise CheckpointError(f"the run state of {path!r} is not a clser_tf run state; "
                              f"{_RESTART}.")
    if payload["version"] != RUN_STATE_VERSION:
        raise CheckpointError(f"{path!r} holds a version {payload['version']!r} run state; "
                              f"this clser_tf reads version {RUN_STATE_VERSION}; {_RESTART}.")
    return payload


def find_run_states(directory: str, config: RunConfig) -> list[RunState]:
    """The run states of the kept checkpoints in ``directory``, newest first, checked
    against ``config``; empty when the directory holds no checkpoint state file.

    A checkpoint whose run state cannot be read is skipped with a one-line warning (the
    previous kept one is the fallback). Raises :class:`CheckpointError` (one line) when
    none can be read (the newest one's error), or for a run with other deciding settings.
    """
    states, errors = [], []
    for path in kept_checkpoints(directory):
        try:
            payload = read_run_state(path)
        except CheckpointError as error:
            errors.append(error)
            continue
        if not states:  # the newer ones could not be read: say so, now that one can
            for error in errors:
                warn(f"{_without_hint(error)}; trying the previous kept checkpoint.")
        _check_config(payload["config"], deciding_settings(config), directory)
        states.append(RunState(path, payload["global_step"], payload["task"],
                               payload["task_start_step"], payload["results"],
                               payload["extra"]))
    if errors and not states:
        raise errors[0]
    return states


def _check_config(saved: dict[str, Any], current: dict[str, Any], directory: str) -> None:
    changes = changed_settings(saved, current)
    if changes:
        raise CheckpointError(
            f"the checkpoint in {directory!r} is of a run with other settings: {changes}. "
            f"Run with the checkpoint's settings to resume it, or {_RESTART}.")


def remove_checkpoints(directory: str) -> None:
    """Removes ``directory``'s checkpoints (``--restart``); other files are left alone."""
    patterns = ("checkpoint", f"{PREFIX}-*.index", f"{PREFIX}-*.data-*", f"{PREFIX}-*_temp",
                f"{PREFIX}-*.json", f"{PREFIX}-*.json.tmp")  # .json: version 1 run states
    for pattern in patterns:
        for path in glob.glob(os.path.join(glob.escape(directory), pattern)):
            if os.path.isdir(path):
                tf.io.gfile.rmtree(path)
            else:
                os.remove(path)


class Checkpointer:
    """Writes and restores the checkpoints of one run's model, optimizer and run state.

    ``directory`` receives the checkpoints; the newest ``keep`` are kept; a periodic
    checkpoint (:meth:`write` with ``periodic=True``) is due ``every_steps`` global steps
    after the previous checkpoint (0: never).
    """

    def __init__(self, model: keras.Model, directory: str, keep: int, every_steps: int):
        if keep < 1:
            raise ValueError(f"keep={keep!r} is invalid: keep at least one checkpoint.")
        self.directory = directory
        self._model = model
        self._state = _RunStateSlot()
        self._checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                               run_state=self._state)
        self._every = every_steps
        self._keep = keep
        self.last_step: int | None = None  # global step of the newest checkpoint
        self._manager: tf.train.CheckpointManager | None = None  # made after a restore

    def manager(self) -> tf.train.CheckpointManager:
        """The checkpoint manager, counting its interval from the restored step, if any."""
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(
                self._checkpoint, self.directory, max_to_keep=self._keep,
                checkpoint_name=PREFIX, step_counter=self._model.global_step,
                checkpoint_interval=self._every or None, last_checkpoint_step=self.last_step)
        return self._manager

    def restore_newest(self, states: list[RunState]) -> RunState:
        """Restores the newest of ``states`` that can be restored, warning in one line for
        each that cannot; raises the newest one's :class:`CheckpointError` if none can."""
        errors = []
        for state in states:
            try:
                self.restore(state)
            except CheckpointError as error:
                errors.append(error)
                continue
            for error in errors:
                warn(f"{_without_hint(error)}; resuming from the previous kept checkpoint.")
            return state
        raise errors[0]

    def restore(self, state: RunState) -> None:
        """Loads ``state``'s TF checkpoint into the model and optimizer (built beforehand)."""
        try:
            self._checkpoint.restore(state.path).assert_consumed()
        except Exception as error:  # truncated files raise IndexError, foreign ones others
            raise _unrestorable(state.path, error) from None
        step = int(self._model.global_step.numpy())
        if step != state.global_step:
            raise CheckpointError(
                f"the checkpoint {state.path!r} holds global step {step} but its run state "
                f"says {state.global_step}: they do not belong together; {_RESTART}.")
        self.last_step = step

    def write(self, *, task: int, task_start_step: int, results: dict[str, Any],
              extra: dict[str, Any], config: RunConfig, periodic: bool = False) -> str | None:
        """Writes a checkpoint of the model, optimizer and run state; returns its path.

        None when none is written: a periodic one that is not due, or any one at a global
        step that already has its checkpoint. Raises :class:`TrainingDiverged` instead when
        a weight is not finite, so the newest checkpoint is always the last finite state.
        """
        if not self.due(periodic):
            return None
        step = self._step()
        floats = [v for v in self._model.weights if tf.as_dtype(v.dtype).is_floating]
        if not bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in floats])):
            raise TrainingDiverged(
                f"training diverged: a weight is not finite at global step {step}; no "
                f"checkpoint was written of it{self._last_good()}")
        os.makedirs(self.directory, exist_ok=True)
        self._state.payload = {
            "format": RUN_STATE_FORMAT, "version": RUN_STATE_VERSION,
            "global_step": step, "task": task, "task_start_step": task_start_step,
            "config": deciding_settings(config), "extra": extra, "results": results}
        try:
            saved = self.manager().save(check_interval=periodic)
        except (OSError, tf.errors.OpError) as error:
            raise WriteFailed(self.directory, error) from None
        self.last_step = step
        return saved

    def due(self, periodic: bool = False) -> bool:
        """Whether :meth:`write` would write now: the manager's own rule (one checkpoint per
        global step; a periodic one ``every_steps`` after the previous), asked first so that
        the run state is built and the weights checked only when a checkpoint is written."""
        step = self._step()
        if periodic:
            return self._every > 0 and step >= (self.last_step or 0) + self._every
        return step != self.last_step

    def _step(self) -> int:
        return int(self._model.global_step.numpy())

    def _last_good(self) -> str:
        if self.manager().latest_checkpoint is None:
            return " (no checkpoint was written before it)."
        return (f"; the newest checkpoint, of global step {self.last_step}, is the last "
                f"finite state (in {self.directory!r}).")

    def diverged(self, what: str) -> TrainingDiverged:
        """The error of a non-finite ``what`` (e.g. "the loss is nan at global step 7")."""
        return TrainingDiverged(f"training diverged: {what}; stopped without writing a "
                                f"checkpoint of it{self._last_good()} A lower --lr usually "
                                "avoids it (BUILD_NOTES.md: perm-mnist at lr 0.2).")


def finite(values: Any) -> bool:
    """Whether every entry of ``values`` (a number, array or tensor) is finite."""
    return bool(np.all(np.isfinite(np.asarray(values, dtype=np.float64))))
