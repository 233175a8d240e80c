"""Tests of the MNIST-360 stream construction (clser_tf.mnist360)."""

import numpy as np
import pytest

from clser_tf import mnist360

SIZES = [40, 43, 41, 47, 52, 40, 45, 44, 49]  # training samples per digit


def _schedule(batch_size=16, seed=0, sizes=SIZES):
    return mnist360.train_schedule(sizes, batch_size, np.random.default_rng(seed))


PAIRS = [{d, (d + 1) % 9} for d in range(9)] * 3  # (0, 1), (1, 2), ..., (8, 0), 3 rounds


def test_digits_come_in_pairs_0_1_to_8_0_three_rounds():
    schedule = _schedule()
    batches = np.split(schedule.digits, np.cumsum(schedule.batch_sizes)[:-1])
    segment, batches_per_segment = 0, [0] * len(PAIRS)
    for batch in batches:
        while not set(batch.tolist()) <= PAIRS[segment]:
            segment += 1  # raises IndexError if a batch fits no later pair
        batches_per_segment[segment] += 1
    assert min(batches_per_segment) >= 1  # every pair of every round streamed, in order


def test_every_digit_streams_its_chunks_last_first_each_sample_once_per_chunk():
    schedule = _schedule()
    for digit, size in enumerate(SIZES):
        streamed = schedule.indices[schedule.digits == digit]
        per_chunk = size // 6 + 1
        chunk_of = streamed // per_chunk
        # the six chunks are used in the order 5, 4, ..., 0, each as one contiguous run
        runs = [c for i, c in enumerate(chunk_of) if i == 0 or c != chunk_of[i - 1]]
        assert runs == [5, 4, 3, 2, 1, 0]
        for chunk in set(runs):
            seen = streamed[chunk_of == chunk]
            assert len(set(seen.tolist())) == len(seen)  # no sample twice within a chunk


def test_rotation_angle_follows_the_draw_count_of_each_digit():
    schedule = _schedule()
    for digit, size in enumerate(SIZES):
        angles = schedule.angles[schedule.digits == digit]
        n = np.arange(len(angles))
        np.testing.assert_allclose(angles, ((digit - 1) * 60 + n * 360.0 / size) % 360)
        assert len(angles) <= size  # about one full turn over the stream


def test_batches_split_the_batch_size_in_proportion_to_what_is_left():
    schedule = _schedule(batch_size=16)
    assert schedule.batch_sizes.sum() == len(schedule.digits)
    assert schedule.batch_sizes.max() == 16 and schedule.batch_sizes.min() >= 1
    # first batch: digit 0's last chunk (40 - 5 * 7 = 5 left) vs digit 1's (43 - 5 * 8 = 3)
    first = schedule.digits[:schedule.batch_sizes[0]]
    assert (first == 0).sum() == min(round(5 / 8 * 16), 5) and (first == 1).sum() == 3


def test_schedule_is_reproducible_and_the_seed_only_reorders_within_chunks():
    a, b, c = _schedule(seed=1), _schedule(seed=1), _schedule(seed=2)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.digits, c.digits)
    np.testing.assert_array_equal(a.batch_sizes, c.batch_sizes)
    assert not np.array_equal(a.indices, c.indices)


def test_too_few_samples_for_six_chunks_is_rejected():
    with pytest.raises(ValueError, match="digit 2 has 30 training samples"):
        _schedule(sizes=[40, 40, 30, 40, 40, 40, 40, 40, 40])


def test_evaluation_angles_spread_evenly_over_the_circle():
    np.testing.assert_allclose(mnist360.evaluation_angles(4), [0, 90, 180, 270])
