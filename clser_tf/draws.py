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


def uniform(shape, seed: tf.Tensor, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """``tf.random.stateless_uniform(shape, seed, dtype=dtype)`` (in [0, 1)), bit for bit,
    with and without XLA: XLA's own kernel turns the same Philox bits into other floats.

    Built as TensorFlow's kernel builds it, from the random bits (which both draw alike):
    the low 23 (float32) or 52 (float64) bits are the mantissa of a number in [1, 2), minus
    1; a float64 takes two 32-bit words, the first as its low half.
    """
    if dtype == tf.float32:
        bits = tf.random.stateless_uniform(shape, seed, minval=None, maxval=None,
                                           dtype=tf.uint32)
        return tf.bitcast((bits & 0x7FFFFF) | 0x3F800000, tf.float32) - 1.0
    if dtype == tf.float64:
        bits = tf.random.stateless_uniform(shape, seed, minval=None, maxval=None,
                                           dtype=tf.uint64)
        half = tf.constant(32, tf.uint64)
        bits = tf.bitwise.left_shift(bits, half) | tf.bitwise.right_shift(bits, half)
        return tf.bitcast((bits & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000, tf.float64) - 1.0
    raise ValueError(f"dtype={dtype!r} is invalid: it must be tf.float32 or tf.float64.")
