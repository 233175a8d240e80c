"""The MNIST-360 stream (Buzzega et al., "Dark Experience for General Continual Learning").

Follows the reference's construction (Mammoth's ``MNIST360``): digits ``0..8``; the
training samples of digit ``j`` (``N_j``, in dataset order) are cut into ``2 * rounds``
chunks of ``N_j // (2 * rounds) + 1`` samples (the last one shorter), used last chunk
first. The stream visits the digit pairs ``(0, 1), (1, 2), ..., (8, 0)`` ``rounds`` times;
each pair streams one fresh chunk of each of its digits, in batches that split
``batch_size`` between the two in proportion to what each chunk has left
(``round(left_0 / (left_0 + left_1) * batch_size)`` for the first), until either chunk runs
out (the other chunk's leftovers are dropped). The ``n``-th sample of digit ``j`` drawn in
the whole stream is rotated by ``((j - 1) * 60 + n * 360 / N_j) mod 360`` degrees, so each
digit turns once through 360 degrees over the stream. Test sample ``i`` of digit ``j``
(``M_j`` test samples, dataset order) is rotated by ``i * 360 / M_j``.

Departure: the reference draws each sample of a chunk with replacement (a fresh shuffled
loader per sample); here a chunk is streamed once in a random order, so every sample of a
chunk is seen exactly once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

NUM_DIGITS = 9
ROUNDS = 3


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Every sample of the stream in order, and how the stream is cut into batches."""

    digits: np.ndarray  # int64 [S]: the digit (label) of each streamed sample
    indices: np.ndarray  # int64 [S]: its index among that digit's training samples
    angles: np.ndarray  # float64 [S]: its rotation in degrees, in [0, 360)
    batch_sizes: np.ndarray  # int64 [steps]: consecutive samples forming each batch


def _chunks(num_samples: int, rounds: int, digit: int) -> list[np.ndarray]:
    per_chunk = num_samples // (2 * rounds) + 1
    chunks = [np.arange(k * per_chunk, min((k + 1) * per_chunk, num_samples))
              for k in range(2 * rounds)]
    if any(len(chunk) == 0 for chunk in chunks):
        raise ValueError(f"digit {digit} has {num_samples} training samples: too few to cut "
                         f"into {2 * rounds} non-empty chunks of {per_chunk}.")
    return chunks


def train_schedule(class_sizes: Sequence[int], batch_size: int, rng: np.random.Generator,
                   rounds: int = ROUNDS) -> Schedule:
    """The training stream for digits with ``class_sizes[j]`` training samples each.

    ``rng`` only orders the samples within each chunk.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid: it must be >= 1.")
    num_digits = len(class_sizes)
    chunks = [_chunks(n, rounds, j) for j, n in enumerate(class_sizes)]
    drawn = [0] * num_digits  # the reference's per-digit rotation counters
    digits, indices, angles, batch_sizes = [], [], [], []
    pair, completed_rounds = [0, 1], 0
    active = [rng.permutation(chunks[d].pop()) for d in pair]
    taken = [0, 0]
    while True:
        left = [len(active[i]) - taken[i] for i in range(2)]
        first = min(int(round(left[0] / (left[0] + left[1]) * batch_size)), left[0])
        sizes = (first, min(batch_size - first, left[1]))
        for i, size in enumerate(sizes):
            digit = pair[i]
            indices.append(active[i][taken[i]:taken[i] + size])
            counter = drawn[digit] + np.arange(size)
            angles.append(((digit - 1) * 60 + counter * (360.0 / class_sizes[digit])) % 360)
            digits.append(np.full(size, digit))
            taken[i] += size
            drawn[digit] += size
        batch_sizes.append(sum(sizes))
        if left[0] - sizes[0] <= 0 or left[1] - sizes[1] <= 0:
            pair = [(d + 1) % num_digits for d in pair]
            if pair[0] == 0:
                completed_rounds += 1
                if completed_rounds == rounds:
                    break
            active = [rng.permutation(chunks[d].pop()) for d in pair]
            taken = [0, 0]
    return Schedule(np.concatenate(digits).astype(np.int64),
                    np.concatenate(indices).astype(np.int64),
                    np.concatenate(angles).astype(np.float64),
                    np.asarray(batch_sizes, np.int64))


def evaluation_angles(num_samples: int) -> np.ndarray:
    """Rotations of a digit's test samples, in dataset order: ``i * 360 / num_samples``."""
    return np.arange(num_samples) * (360.0 / num_samples)
