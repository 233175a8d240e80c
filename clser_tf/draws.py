"""The step's random draws: one stateless stream per kind of draw, keyed on
(seed, stream, global step), so every replica and every resumed run draws the same."""

from __future__ import annotations

import tensorflow as tf

REPLAY_STREAM, AUGMENT_STREAM, RESERVOIR_STREAM, PLASTIC_STREAM, STABLE_STREAM = range(5)
_NUM_STREAMS = 8


def stream_seed(seed: int | tf.Tensor, stream: int, step: int | tf.Tensor) -> tf.Tensor:
    """The stateless seed ``[2]`` of one random stream at one global step.

    Identical on every replica and after a save/load round trip, since it is derived
    only from the model's seed and its saved global step.
    """
    return tf.stack([tf.cast(seed, tf.int64) * _NUM_STREAMS + stream, tf.cast(step, tf.int64)])
