"""Tests of clser_tf.buffer.ReservoirBuffer: Algorithm R statistics, batch insertion, sampling."""

import math

import numpy as np
import pytest
import tensorflow as tf

from clser_tf.buffer import ReservoirBuffer

TRIALS, CAPACITY, STREAM, BATCH = 2000, 5, 20, 5


def _seed(a, b) -> tf.Tensor:
    return tf.stack([tf.cast(a, tf.int64), tf.cast(b, tf.int64)])


class AlwaysReplaceBuffer(ReservoirBuffer):
    """A deliberately biased reservoir: once full, every new sample replaces a random slot."""

    def reservoir_slots(self, batch_size, seed):
        seen = self.num_seen.value + tf.range(tf.cast(batch_size, tf.int64), dtype=tf.int64)
        draws = tf.random.stateless_uniform([batch_size], seed, dtype=tf.float64)
        j = tf.cast(tf.floor(draws * self.capacity), tf.int64)
        return tf.where(seen < self.capacity, seen, j)


def _kept_counts(buffer_cls) -> np.ndarray:
    """How often each of the STREAM items is in the buffer at the end, over TRIALS seeds."""
    buffer = buffer_cls(CAPACITY, (), "int32")

    @tf.function
    def run():
        counts = tf.zeros([STREAM], tf.int32)
        for trial in tf.range(TRIALS):
            buffer.num_seen.assign(0)
            for b in range(STREAM // BATCH):
                items = tf.range(b * BATCH, (b + 1) * BATCH)
                buffer.add(items, items, _seed(trial, b))
            counts += tf.math.bincount(buffer.labels.value, minlength=STREAM, maxlength=STREAM)
        return counts

    return run().numpy()


def _within_binomial_band(counts: np.ndarray, sigmas: float = 5.0) -> bool:
    p = CAPACITY / STREAM
    mean, sd = TRIALS * p, math.sqrt(TRIALS * p * (1 - p))
    return bool(np.all(np.abs(counts - mean) <= sigmas * sd))


def _sequential_algorithm_r(store_x, store_y, num_seen, xs, ys, draws):
    """Vitter's Algorithm R, one sample at a time, in NumPy (draws: the model's uniforms)."""
    store_x, store_y, capacity, slots = store_x.copy(), store_y.copy(), len(store_y), []
    for k in range(len(ys)):
        n = num_seen + k
        slot = n if n < capacity else int(math.floor(draws[k] * (n + 1)))
        if slot < capacity:
            store_x[slot], store_y[slot] = xs[k], ys[k]
            slots.append(slot)
    return store_x, store_y, slots


def _filled_buffer(capacity: int, num_seen: int) -> ReservoirBuffer:
    buffer = ReservoirBuffer(capacity, (), "int32")
    buffer.num_seen.assign(num_seen)
    return buffer


def test_reservoir_keeps_each_stream_item_with_probability_capacity_over_n():
    counts = _kept_counts(ReservoirBuffer)
    assert counts.sum() == TRIALS * CAPACITY  # always full of distinct items
    assert _within_binomial_band(counts), counts


def test_binomial_band_rejects_a_biased_reservoir():
    counts = _kept_counts(AlwaysReplaceBuffer)
    assert not _within_binomial_band(counts), counts


def test_batch_insertion_equals_sequential_algorithm_r_with_colliding_slots():
    capacity, collisions = 3, 0
    for trial in range(30):
        buffer = ReservoirBuffer(capacity, (2,), "float32")
        store_x, store_y, seen = np.zeros((capacity, 2), np.float32), np.zeros(capacity, int), 0
        for b, size in enumerate([5, 8]):  # the first batch overflows the capacity itself
            ys = np.arange(seen, seen + size) + 100
            xs = np.stack([ys, -ys], 1).astype(np.float32)
            seed = _seed(trial, b)
            buffer.add(tf.constant(xs), tf.constant(ys), seed)
            draws = tf.random.stateless_uniform([size], seed, dtype=tf.float64).numpy()
            store_x, store_y, slots = _sequential_algorithm_r(
                store_x, store_y, seen, xs, ys, draws)
            collisions += len(slots) - len(set(slots))
            seen += size
            np.testing.assert_array_equal(buffer.stored_inputs().numpy(), store_x)
            np.testing.assert_array_equal(buffer.labels.numpy(), store_y)
            assert int(buffer.num_seen.numpy()) == seen
    assert collisions > 0  # the in-batch "later sample wins" case was exercised


@pytest.mark.parametrize("size", [1, 5, 8, 12])
def test_sample_indices_never_repeat(size):
    buffer = _filled_buffer(capacity=8, num_seen=20)
    for trial in range(100):
        indices = buffer.sample_indices(size, _seed(trial, 7)).numpy()
        assert len(indices) == min(size, 8)
        assert len(set(indices.tolist())) == len(indices)
        assert np.all((indices >= 0) & (indices < 8))


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_partly_filled_buffer_samples_only_filled_slots(size):
    buffer = _filled_buffer(capacity=10, num_seen=3)
    buffer.labels.assign(np.arange(10, dtype=np.int32) + 50)
    seen_slots = set()
    for trial in range(50):
        indices = buffer.sample_indices(size, _seed(trial, 1)).numpy()
        assert len(indices) == min(size, 3)
        assert len(set(indices.tolist())) == len(indices)
        assert set(indices.tolist()) <= {0, 1, 2}
        seen_slots |= set(indices.tolist())
        _, labels = buffer.sample(size, _seed(trial, 1))
        np.testing.assert_array_equal(labels.numpy(), indices + 50)
    assert seen_slots == {0, 1, 2}


def test_empty_buffer_samples_nothing():
    buffer = _filled_buffer(capacity=4, num_seen=0)
    inputs, labels = buffer.sample(3, _seed(0, 0))
    assert inputs.shape[0] == 0 and labels.shape[0] == 0


@pytest.mark.parametrize("dtype", ["uint8", "int16", "bfloat16", "float32"])
def test_inputs_round_trip_in_their_dtype_at_their_size(dtype):
    """Narrow types are packed into int32 words (odd sizes padded) and come back exact."""
    buffer = ReservoirBuffer(3, (5, 3), dtype)
    x = tf.cast(np.arange(45).reshape(3, 5, 3) % 120, dtype)
    buffer.add(x, tf.constant([0, 1, 2]), tf.constant([0, 0], tf.int64))
    assert buffer.stored_inputs().dtype == dtype
    np.testing.assert_array_equal(buffer.stored_inputs().numpy(), x.numpy())
    itemsize = tf.as_dtype(dtype).size
    assert buffer.inputs.numpy().nbytes == 3 * 4 * -(-15 * itemsize // 4)
