"""The input checks of ``CLSER``: its constructor arguments and the labels given to fit."""

from __future__ import annotations

from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf


def check_unit_interval(name: str, value: Any, closed: bool) -> float:
    """``value`` as a float in [0, 1] (``closed``) or [0, 1); else ``ValueError``."""
    upper_ok = value <= 1 if closed else value < 1
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0 <= value and upper_ok):
        allowed = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{name}={value!r} is invalid: it must be a number in {allowed}.")
    return float(value)


def check_positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1; else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r} is invalid: it must be an integer >= 1.")
    return int(value)


def check_arguments(backbone: keras.Model, reg_weight: Any, seed: Any,
                    replay_augment: Callable | None, augment_current_batch: bool) -> None:
    """Raises ``ValueError`` (one line) on the first invalid ``CLSER`` argument."""
    if not isinstance(backbone, keras.Model):
        raise ValueError(f"backbone={backbone!r} is invalid: it must be a keras.Model.")
    if not backbone.built or len(backbone.inputs or []) != 1:
        raise ValueError(
            f"backbone={backbone.name!r} is invalid: it must be a built model with one "
            "input (e.g. start it with keras.Input(shape=..., dtype=...)).")
    if isinstance(reg_weight, bool) or not isinstance(reg_weight, (int, float)) or (
            reg_weight < 0):
        raise ValueError(f"reg_weight={reg_weight!r} is invalid: it must be a number >= 0.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed={seed!r} is invalid: it must be an integer.")
    if replay_augment is not None and not callable(replay_augment):
        raise ValueError(f"replay_augment={replay_augment!r} is invalid: it must be "
                         "None or a callable/Keras layer.")
    if augment_current_batch and replay_augment is None:
        raise ValueError("augment_current_batch=True is invalid without a replay_augment.")


def check_memories(memories: Any) -> tuple[str, ...]:
    """``semantic_memories`` as a tuple in canonical order, or ValueError (one line)."""
    names = ("plastic", "stable")
    if isinstance(memories, str) or not all(m in names for m in memories) or (
            len(set(memories)) != len(memories)):
        raise ValueError(f"semantic_memories={memories!r} is invalid: it must be a subset of "
                         f"{names!r}, each at most once.")
    return tuple(m for m in names if m in memories)


def checked_labels(x: Any, y: Any, num_classes: int) -> tuple[Any, Any]:
    """Rejects labels outside ``[0, num_classes)`` before any step runs."""
    if isinstance(x, tf.data.Dataset):
        def check(*element):
            labels = element[1]
            tf.debugging.assert_non_negative(labels, message="CLSER: labels must be >= 0")
            tf.debugging.assert_less(
                tf.cast(labels, tf.int64), tf.constant(num_classes, tf.int64),
                message=f"CLSER: labels must be < num_classes={num_classes}")
            return element
        return x.map(check), y
    if y is not None:
        labels = np.asarray(y)
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if bad.size:
            raise ValueError(f"label {bad.flat[0].item()!r} is invalid: labels must be "
                             f"integers in [0, {num_classes}) for this backbone.")
    return x, y
