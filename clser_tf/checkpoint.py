"""Checkpoints of a run: everything that decides its future, written so a kill loses nothing.

A checkpoint directory is ``tf.train.CheckpointManager``'s, plus one JSON run state per
checkpoint::

    checkpoint                        TF's state file naming the checkpoints, newest last
    ckpt-<n>.index, ckpt-<n>.data-*   tf.train.Checkpoint(model=..., optimizer=...): the three
                                      models, the buffer (inputs, labels, seen count), the
                                      global step, the optimizer's slots and iteration count
    ckpt-<n>.json                     the run state: where the run is (task, steps done in
                                      it), the results so far, and the deciding settings

The run state of checkpoint ``n`` is written (atomically: a temporary file renamed) before
the TF checkpoint, and TF writes its state file last, so a kill at any moment leaves the
previous checkpoint readable. Nothing else needs saving: every random draw of the step is
keyed on (seed, stream, global step), and the data order of a task's epoch on (seed, epoch).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from clser_tf.config import RunConfig, deciding_settings
from clser_tf.errors import CheckpointError, TrainingDiverged, first_line

RUN_STATE_FORMAT = "clser_tf run state"
RUN_STATE_VERSION = 1
PREFIX = "ckpt"

def write_json(path: str, payload: Any) -> None:
    """Writes ``payload`` atomically: a temporary file renamed over ``path``."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, path)


def _flag(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "" if value is None else str(value)


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


def find_run_state(directory: str, config: RunConfig) -> RunState | None:
    """The newest checkpoint's run state in ``directory``, checked against ``config``.

    None when the directory holds no checkpoint state file. Raises
    :class:`CheckpointError` (one line) when it names a checkpoint that is not a readable
    clser_tf run state, or one of a run with other deciding settings.
    """
    if not os.path.isfile(os.path.join(directory, "checkpoint")):
        return None
    try:
        state = tf.train.get_checkpoint_state(directory)
    except (tf.errors.OpError, ValueError) as error:
        state, detail = None, f": {first_line(error)}"
    else:
        detail = ""
    if state is None or not state.model_checkpoint_path:
        raise CheckpointError(
            f"the checkpoint state file {os.path.join(directory, 'checkpoint')!r} is "
            f"corrupt{detail}; {_RESTART}.")
    path = state.model_checkpoint_path
    if not os.path.isabs(path):
        path = os.path.join(directory, path)
    payload = _read_run_state(path)
    _check_config(payload["config"], deciding_settings(config), directory)
    return RunState(path, payload["global_step"], payload["task"], payload["task_start_step"],
                    payload["results"], payload["extra"])


_RESTART = "add --restart to start over (it removes the checkpoints)"


def _read_run_state(path: str) -> dict[str, Any]:
    json_path = path + ".json"
    try:
        with open(json_path, encoding="utf-8") as f:
            payload = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path!r} is not a clser_tf checkpoint: its run state "
                              f"{json_path!r} is missing; {_RESTART}.") from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"the run state {json_path!r} is unreadable or corrupt "
                              f"({first_line(error)}); {_RESTART}.") from None
    keys = ("format", "version", "global_step", "task", "task_start_step", "results", "extra",
            "config")
    if not isinstance(payload, dict) or payload.get("format") != RUN_STATE_FORMAT or (
            any(key not in payload for key in keys)):
        raise CheckpointError(f"{json_path!r} is not a clser_tf run state; {_RESTART}.")
    if payload["version"] != RUN_STATE_VERSION:
        raise CheckpointError(f"{json_path!r} is a version {payload['version']!r} run state; "
                              f"this clser_tf reads version {RUN_STATE_VERSION}; {_RESTART}.")
    return payload


def _check_config(saved: dict[str, Any], current: dict[str, Any], directory: str) -> None:
    names = [name for name in {**saved, **current} if saved.get(name) != current.get(name)]
    if names:
        changes = ", ".join(f"--{name}={_flag(saved.get(name))} (now "
                            f"{_flag(current.get(name))})" for name in names)
        raise CheckpointError(
            f"the checkpoint in {directory!r} is of a run with other settings: {changes}. "
            f"Run with the checkpoint's settings to resume it, or {_RESTART}.")


class Checkpointer:
    """Writes and restores the checkpoints of one run's model and optimizer.

    ``directory`` receives the checkpoints; the newest ``keep`` are kept.
    """

    def __init__(self, model: keras.Model, directory: str, keep: int):
        if keep < 1:
            raise ValueError(f"keep={keep!r} is invalid: keep at least one checkpoint.")
        self.directory = directory
        self._model = model
        self._checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        self._keep = keep
        self._manager: tf.train.CheckpointManager | None = None
        self.last_step: int | None = None  # global step of the newest checkpoint

    def restore(self, state: RunState) -> None:
        """Loads ``state``'s TF checkpoint into the model and optimizer (built beforehand)."""
        try:
            self._checkpoint.restore(state.path).assert_consumed()
        except Exception as error:  # truncated files raise IndexError, foreign ones others
            raise CheckpointError(
                f"the checkpoint {state.path!r} cannot be restored into this model "
                f"({type(error).__name__}: {first_line(error)}); {_RESTART}.") from None
        step = int(self._model.global_step.numpy())
        if step != state.global_step:
            raise CheckpointError(
                f"the checkpoint {state.path!r} holds global step {step} but its run state "
                f"says {state.global_step}: they do not belong together; {_RESTART}.")
        self.last_step = step

    # ------------------------------------------------------------------ writing
    def write(self, *, task: int, task_start_step: int, results: dict[str, Any],
              extra: dict[str, Any], config: RunConfig) -> str:
        """Writes checkpoint ``n + 1`` of the current model and optimizer; returns its path.

        Raises :class:`TrainingDiverged` instead when a weight is not finite, so the
        newest checkpoint is always the last finite state.
        """
        step = int(self._model.global_step.numpy())
        floats = [v for v in self._model.weights if tf.as_dtype(v.dtype).is_floating]
        if not bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in floats])):
            raise TrainingDiverged(
                f"training diverged: a weight is not finite at global step {step}; no "
                f"checkpoint was written of it{self._last_good()}")
        if self._manager is None:
            os.makedirs(self.directory, exist_ok=True)
            self._manager = tf.train.CheckpointManager(
                self._checkpoint, self.directory, max_to_keep=self._keep,
                checkpoint_name=PREFIX)
        number = 1 + max([0, *(_number(p) for p in self._manager.checkpoints)])
        path = os.path.join(self.directory, f"{PREFIX}-{number}")
        write_json(path + ".json", {
            "format": RUN_STATE_FORMAT, "version": RUN_STATE_VERSION,
            "global_step": step, "task": task, "task_start_step": task_start_step,
            "config": deciding_settings(config), "extra": extra, "results": results})
        saved = self._manager.save(checkpoint_number=number)
        self.last_step = step
        kept = {os.path.basename(p) for p in self._manager.checkpoints}
        for stale in glob.glob(os.path.join(glob.escape(self.directory), f"{PREFIX}-*.json")):
            if os.path.basename(stale)[:-len(".json")] not in kept:
                os.remove(stale)
        return saved

    def _last_good(self) -> str:
        if self.last_step is None:
            return " (no checkpoint was written before it)."
        return (f"; the newest checkpoint, of global step {self.last_step}, is the last "
                f"finite state (in {self.directory!r}).")

    def diverged(self, what: str) -> TrainingDiverged:
        """The error of a non-finite ``what`` (e.g. "the loss is nan at global step 7")."""
        return TrainingDiverged(f"training diverged: {what}; stopped without writing a "
                                f"checkpoint of it{self._last_good()} A lower --lr usually "
                                "avoids it (BUILD_NOTES.md: perm-mnist at lr 0.2).")

    def clear(self) -> None:
        """Removes this directory's checkpoints (``--restart``); other files are left alone."""
        patterns = ("checkpoint", f"{PREFIX}-*.index", f"{PREFIX}-*.data-*", f"{PREFIX}-*.json",
                    f"{PREFIX}-*.json.tmp", f"{PREFIX}-*_temp")
        for pattern in patterns:
            for path in glob.glob(os.path.join(glob.escape(self.directory), pattern)):
                if os.path.isdir(path):
                    tf.io.gfile.rmtree(path)
                else:
                    os.remove(path)
        self._manager, self.last_step = None, None


def _number(path: str) -> int:
    return int(os.path.basename(path).rsplit("-", 1)[1])


def finite(values: Any) -> bool:
    """Whether every entry of ``values`` (a number, array or tensor) is finite."""
    return bool(np.all(np.isfinite(np.asarray(values, dtype=np.float64))))
