"""The reservoir replay buffer of CLS-ER, held in variables and updated in-graph."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from clser_tf.draws import uniform


@keras.saving.register_keras_serializable(package="clser_tf")
class ReservoirBuffer(keras.layers.Layer):
    """A fixed-capacity reservoir of raw ``(input, label)`` pairs (Vitter's Algorithm R).

    Inputs keep their ``storage_dtype`` and its size (a uint8 image costs one byte per
    pixel). Types narrower than 32 bits are held packed in int32 words, since
    MultiWorkerMirroredStrategy broadcasts initial values with collectives that take no
    8/16-bit types; ``stored_inputs()`` gives them back as stored. All state (inputs,
    labels, number of samples seen) lives in non-trainable variables, so it is saved
    with the model and restored by ``keras.models.load_model``. Every random draw takes
    an explicit stateless ``seed`` of shape ``[2]``.
    """

    def __init__(self, capacity: int, sample_shape: tuple[int, ...],
                 storage_dtype: str = "float32", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"buffer_size={capacity!r} is invalid: it must be an integer >= 1.")
        self.capacity = capacity
        self.sample_shape = tuple(int(d) for d in sample_shape)
        self.storage_dtype = keras.backend.standardize_dtype(storage_dtype)
        itemsize = np.dtype(tf.as_dtype(self.storage_dtype).as_numpy_dtype).itemsize
        self._per_word = 4 // itemsize if itemsize < 4 else 0  # 0: stored as is
        sample_size = math.prod(self.sample_shape)
        stored_shape = ((-(-sample_size // self._per_word),) if self._per_word
                        else self.sample_shape)
        self.inputs = self.add_weight(
            shape=(capacity, *stored_shape),
            dtype="int32" if self._per_word else self.storage_dtype,
            initializer="zeros", trainable=False, name="inputs")
        self.labels = self.add_weight(
            shape=(capacity,), dtype="int32", initializer="zeros", trainable=False,
            name="labels")
        self.num_seen = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False, name="num_seen")
        self.built = True

    def _pack(self, inputs: tf.Tensor) -> tf.Tensor:
        """``[B, *sample_shape]`` inputs as stored (int32 words for narrow types)."""
        inputs = tf.cast(inputs, self.storage_dtype)
        if not self._per_word:
            return inputs
        sample_size = math.prod(self.sample_shape)
        flat = tf.reshape(inputs, [-1, sample_size])
        flat = tf.pad(flat, [[0, 0], [0, self.inputs.shape[1] * self._per_word - sample_size]])
        return tf.bitcast(tf.reshape(flat, [-1, self.inputs.shape[1], self._per_word]), tf.int32)

    def _unpack(self, stored: tf.Tensor) -> tf.Tensor:
        """Inverse of ``_pack``."""
        if not self._per_word:
            return stored
        flat = tf.reshape(tf.bitcast(stored, self.storage_dtype), [tf.shape(stored)[0], -1])
        return tf.reshape(flat[:, :math.prod(self.sample_shape)], [-1, *self.sample_shape])

    def stored_inputs(self) -> tf.Tensor:
        """Every slot's input, ``[capacity, *sample_shape]`` in ``storage_dtype``."""
        return self._unpack(self.inputs.value)

    def num_filled(self) -> tf.Tensor:
        """Number of valid slots: ``min(num_seen, capacity)`` (int32 scalar)."""
        return tf.cast(tf.minimum(self.num_seen.value, self.capacity), tf.int32)

    def sample_indices(self, size: int, seed: tf.Tensor, full: bool = False) -> tf.Tensor:
        """Up to ``size`` distinct filled slots, uniformly at random (fewer if fewer are
        filled). ``full``: at least ``min(size, capacity)`` slots are filled, so the result
        has that static size."""
        keys = uniform([self.capacity], seed)
        filled = tf.range(self.capacity) < self.num_filled()
        keys = tf.where(filled, keys, 2.0)  # unfilled slots sort last
        _, indices = tf.math.top_k(-keys, k=min(size, self.capacity))
        return indices if full else indices[: tf.minimum(size, self.num_filled())]

    def sample(self, size: int, seed: tf.Tensor, full: bool = False
               ) -> tuple[tf.Tensor, tf.Tensor]:
        """Draws a replay batch ``(inputs, labels)`` without replacement (``full``: as
        :meth:`sample_indices`)."""
        indices = self.sample_indices(size, seed, full)
        return (self._unpack(tf.gather(self.inputs.value, indices)),
                tf.gather(self.labels.value, indices))

    def reservoir_slots(self, batch_size: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Algorithm R's slot for each incoming sample, or ``capacity`` for "discard".

        Sample k has ``n = num_seen + k`` samples before it: it goes to slot n while
        n < capacity, else to slot j ~ U[0, n] when j < capacity.
        """
        seen = self.num_seen.value + tf.range(tf.cast(batch_size, tf.int64), dtype=tf.int64)
        draws = uniform([batch_size], seed, tf.float64)
        j = tf.cast(tf.floor(draws * tf.cast(seen + 1, tf.float64)), tf.int64)
        slots = tf.where(seen < self.capacity, seen, j)
        return tf.minimum(slots, self.capacity)

    def add(self, inputs: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor) -> None:
        """Inserts a batch one sample at a time (Algorithm R), as one in-graph scatter.

        When two samples of the batch land on one slot the later one wins, as in the
        sequential algorithm. Every row is scattered: rows that do not survive are
        redirected to the last surviving row's slot and value, so duplicate indices
        always carry identical values and the result does not depend on scatter order.
        """
        batch_size = tf.shape(labels)[0]
        slots = self.reservoir_slots(batch_size, seed)
        order = tf.range(batch_size)
        same_slot = tf.equal(slots[:, None], slots[None, :])
        later = order[None, :] > order[:, None]
        overwritten = tf.reduce_any(same_slot & later, axis=1)
        survives = (slots < self.capacity) & ~overwritten
        last_survivor = tf.reduce_max(tf.where(survives, order, -1))
        source = tf.where(survives, order, last_survivor)

        def write():  # assign, not scatter: mirrored variables take assign in replica context
            indices = tf.gather(slots, source)[:, None]
            self.inputs.assign(tf.tensor_scatter_nd_update(
                self.inputs.value, indices, tf.gather(self._pack(inputs), source)))
            self.labels.assign(tf.tensor_scatter_nd_update(
                self.labels.value, indices, tf.gather(tf.cast(labels, tf.int32), source)))
            return tf.constant(True)

        tf.cond(last_survivor >= 0, write, lambda: tf.constant(False))
        self.num_seen.assign_add(tf.cast(batch_size, tf.int64))

    def get_config(self):
        return {**super().get_config(), "capacity": self.capacity,
                "sample_shape": self.sample_shape, "storage_dtype": self.storage_dtype}
