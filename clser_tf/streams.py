"""The ``tf.data`` streams of a benchmark: a task's shuffled training batches (resumable at
any batch), its test batches, the general-continual stream and its held-out slice."""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

from clser_tf import mnist360
from clser_tf.benchmarks import Benchmark, Task
from clser_tf.image_transforms import TaskTransform, rotate


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid: it must be an int >= 1.")


def _slices(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    """(image, int32 label) pairs, images in their raw dtype."""
    return tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))


def train_stream(task: Task, batch_size: int, seed: int, epoch: int = 0,
                 start_batch: int = 0) -> tf.data.Dataset:
    """Epoch ``epoch`` of ``task``: shuffled, full, raw training batches from ``start_batch``.

    The last partial batch is dropped. The order of epoch ``e`` is a stateless permutation
    keyed on ``(seed, e)``: every epoch is shuffled afresh, and any epoch can be rebuilt
    from any batch without replaying the ones before it, which is what resuming from a
    checkpoint needs. Batches carry the task's transform (domain-IL) but no augmentation:
    CLSER augments in-graph (``augment_current_batch``) so that its buffer stores the
    un-augmented samples, as the reference does.
    """
    _check_batch_size(batch_size)
    num_samples = len(task.y_train)
    if batch_size > num_samples:
        raise ValueError(f"batch_size={batch_size} exceeds the {num_samples} training samples of "
                         f"task {task.classes}: every batch would be dropped.")
    num_batches = num_samples // batch_size
    _check_index("epoch", epoch, None)
    _check_index("start_batch", start_batch, num_batches)
    with tf.device("/CPU:0"):  # one algorithm on every device: the same order everywhere
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_samples, dtype=tf.int64),
            seed=tf.constant([seed, epoch], tf.int64), alg="philox").numpy()
    picked = order[start_batch * batch_size:num_batches * batch_size]
    ds = _slices(task.x_train[picked], task.y_train[picked])
    return _transformed(ds.batch(batch_size, drop_remainder=True), task.transform)


def _check_index(name: str, value: int, upper: int | None) -> None:
    """``value`` must be an int >= 0 (and <= ``upper`` when given)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0
            or (upper is not None and value > upper)):
        allowed = "an int >= 0" + (f" and <= {upper}" if upper is not None else "")
        raise ValueError(f"{name}={value!r} is invalid: it must be {allowed}.")


def test_stream(task: Task, batch_size: int) -> tf.data.Dataset:
    """The test samples of ``task`` in order, batched (last batch may be smaller).

    The task's transform (domain-IL) is applied as in :func:`train_stream`, on the first
    pass only: the transformed batches are cached in memory for later evaluations.
    """
    _check_batch_size(batch_size)
    return _transformed(_slices(task.x_test, task.y_test).batch(batch_size), task.transform,
                        cache=True)


def _transformed(batches: tf.data.Dataset, transform: TaskTransform | None,
                 cache: bool = False) -> tf.data.Dataset:
    if transform is not None:
        batches = batches.map(lambda x, y: (transform(x), y))
        if cache:
            batches = batches.cache()
    return prefetched(batches)


def prefetched(ds: tf.data.Dataset) -> tf.data.Dataset:
    """``ds`` with prefetching, and without tf.data's autotuning thread.

    Every ``fit``/evaluation makes and drops an iterator; dropping an autotuned one waits
    for its tuning thread (``RootDataset::Iterator::~Iterator``), measured here at 1-4 s
    per ``fit`` of a ResNet-18 step with the CPU idle. Nothing here needs the tuning: the
    maps are sequential and prefetching keeps its own adaptive buffer.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def general_stream(benchmark: Benchmark, batch_size: int, seed: int,
                   start_batch: int = 0) -> tuple[tf.data.Dataset, mnist360.Schedule]:
    """The single training stream of mnist-360, rotated batch by batch, and its schedule.

    Batches have at most ``batch_size`` samples (fewer where a digit pair's chunks run
    out, as in the reference); ``seed`` orders the samples within each chunk. The stream
    starts at batch ``start_batch`` (to resume from a checkpoint); the schedule is whole.
    """
    _check_batch_size(batch_size)
    schedule = mnist360.train_schedule([len(t.y_train) for t in benchmark.tasks], batch_size,
                                       np.random.default_rng(seed))
    _check_index("start_batch", start_batch, len(schedule.batch_sizes))
    x = np.empty((len(schedule.digits), *benchmark.input_shape), np.uint8)
    for digit, task in enumerate(benchmark.tasks):
        mask = schedule.digits == digit
        x[mask] = task.x_train[schedule.indices[mask]]

    def batched(values: np.ndarray) -> tf.RaggedTensor:
        return tf.RaggedTensor.from_row_lengths(values, schedule.batch_sizes)

    ds = tf.data.Dataset.from_tensor_slices(
        (batched(x), batched(schedule.digits.astype(np.int32)), batched(schedule.angles)))
    ds = ds.skip(start_batch)
    return prefetched(ds.map(lambda x, y, a: (rotate(x, a), y))), schedule


def held_out_slice(tasks: tuple[Task, ...], size: int, batch_size: int) -> tf.data.Dataset:
    """``size`` test samples evenly spaced over the tasks' test sets, concatenated in order.

    For mnist-360 the test sets are per digit and in rotation order, so the slice covers
    every digit at angles spread over the whole circle. All samples if ``size`` is larger.
    """
    _check_batch_size(batch_size)
    x = np.concatenate([task.x_test for task in tasks])
    y = np.concatenate([task.y_test for task in tasks])
    picked = np.unique(np.linspace(0, len(y) - 1, min(size, len(y))).round().astype(np.int64))
    return _transformed(_slices(x[picked], y[picked]).batch(batch_size), None)
