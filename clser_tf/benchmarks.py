"""Class-incremental benchmarks (seq-fmnist, seq-mnist, seq-cifar10, ...) and their tf.data streams.

A benchmark splits a dataset's classes, in label order, into equally sized tasks. Streams
keep the raw dtype (uint8 images, int32 labels); normalisation is the model's job, using
:attr:`Benchmark.mean` / :attr:`Benchmark.std`.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import Callable

import numpy as np
import tensorflow as tf

from clser_tf import sources

DEFAULT_FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


@dataclasses.dataclass(frozen=True)
class Task:
    """One task: its classes and the train/test samples of those classes, in dataset order."""

    classes: tuple[int, ...]  # task k of a 5x2 split holds classes (2k, 2k+1)
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A class-incremental benchmark: its tasks and the training settings that go with it."""

    name: str
    input_shape: tuple[int, ...]  # raw input shape, e.g. (28, 28) or (32, 32, 3)
    num_classes: int
    tasks: tuple[Task, ...]
    backbone: str  # "mlp" or "resnet18"
    augment: bool  # crop (pad 4) + flip, in-graph on current and replay batches
    mean: tuple[float, ...] | None  # per-channel normalisation; None: pixels / 255 only
    std: tuple[float, ...] | None


def _load_fmnist(data_dir: str | None) -> sources.ArrayDataset:
    """Fashion-MNIST from ``data_dir``, else the Debian package's folder, else tfds."""
    if data_dir is not None:
        return sources.read_idx_dir(data_dir)
    try:
        return sources.read_idx_dir(DEFAULT_FMNIST_DIR)
    except sources.DatasetError as dir_error:
        try:
            return sources.load_tfds("fashion_mnist")
        except sources.DatasetError as tfds_error:
            raise sources.DatasetError(
                f"Fashion-MNIST not found anywhere. 1) {DEFAULT_FMNIST_DIR!r}: {dir_error} "
                f"2) tfds 'fashion_mnist': {tfds_error}") from tfds_error


def _load_dir_or_tfds(reader: Callable[[str], sources.ArrayDataset], tfds_name: str,
                      data_dir: str | None) -> sources.ArrayDataset:
    """``reader(data_dir)`` if a directory is given, else tensorflow-datasets ``tfds_name``."""
    return reader(data_dir) if data_dir is not None else sources.load_tfds(tfds_name)


def _load_tinyimg(data_dir: str | None) -> sources.ArrayDataset:
    if data_dir is None:
        raise sources.DatasetError(
            "seq-tinyimg needs data_dir (tensorflow-datasets has no Tiny ImageNet): download "
            "http://cs231n.stanford.edu/tiny-imagenet-200.zip, unzip it and pass "
            "--data_dir=<the tiny-imagenet-200 folder or its parent>.")
    return sources.read_tinyimg_dir(data_dir)


@dataclasses.dataclass(frozen=True)
class _Spec:
    input_shape: tuple[int, ...]
    num_classes: int
    num_tasks: int
    backbone: str
    augment: bool
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    load: Callable[[str | None], sources.ArrayDataset]


_CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR10_STD = (0.2470, 0.2435, 0.2615)
_SPECS = {
    "seq-fmnist": _Spec((28, 28), 10, 5, "mlp", False, None, None, _load_fmnist),
    "seq-mnist": _Spec((28, 28), 10, 5, "mlp", False, None, None,
                       functools.partial(_load_dir_or_tfds, sources.read_idx_dir, "mnist")),
    "seq-cifar10": _Spec((32, 32, 3), 10, 5, "resnet18", True, _CIFAR10_MEAN, _CIFAR10_STD,
                         functools.partial(
                             _load_dir_or_tfds,
                             functools.partial(sources.read_cifar_dir, num_classes=10),
                             "cifar10")),
    # CIFAR-100 is normalised with the CIFAR-10 statistics, as in the reference implementation
    # (its seq-cifar100 reuses the seq-cifar10 transform).
    "seq-cifar100": _Spec((32, 32, 3), 100, 5, "resnet18", True, _CIFAR10_MEAN, _CIFAR10_STD,
                          functools.partial(
                              _load_dir_or_tfds,
                              functools.partial(sources.read_cifar_dir, num_classes=100),
                              "cifar100")),
    "seq-tinyimg": _Spec((64, 64, 3), 200, 10, "resnet18", True, (0.4802, 0.4480, 0.3975),
                         (0.2770, 0.2691, 0.2821), _load_tinyimg),
}

BENCHMARKS: tuple[str, ...] = tuple(_SPECS)


def _check_data(name: str, spec: _Spec, data: sources.ArrayDataset) -> None:
    """Raises DatasetError unless images have the benchmark's shape and labels its range."""
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        if x.shape[1:] != spec.input_shape:
            raise sources.DatasetError(f"{name}: {split} images have shape {x.shape[1:]}; "
                                       f"expected {spec.input_shape}.")
        bad = y[(y < 0) | (y >= spec.num_classes)]
        if bad.size:
            raise sources.DatasetError(f"{name}: {split} label {bad[0]} is outside "
                                       f"[0, {spec.num_classes}).")


def _make_task(data: sources.ArrayDataset, classes: tuple[int, ...]) -> Task:
    """Selects the samples of ``classes`` once per split, keeping dataset order."""
    train = np.isin(data.y_train, classes)
    test = np.isin(data.y_test, classes)
    return Task(classes, data.x_train[train], data.y_train[train], data.x_test[test],
                data.y_test[test])


def load_benchmark(name: str, data_dir: str | None = None) -> Benchmark:
    """Loads benchmark ``name`` (one of :data:`BENCHMARKS`) and splits it into tasks.

    Task ``k`` holds classes ``[k * c, (k + 1) * c)`` with ``c = num_classes / num_tasks``.
    ``data_dir`` points at the raw files; when it is None, seq-fmnist tries
    :data:`DEFAULT_FMNIST_DIR` then tensorflow-datasets, seq-mnist and the CIFAR benchmarks
    use tensorflow-datasets, and seq-tinyimg fails.
    """
    if name not in _SPECS:
        raise ValueError(f"Unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}.")
    spec = _SPECS[name]
    data = spec.load(data_dir)
    _check_data(name, spec, data)
    per_task = spec.num_classes // spec.num_tasks
    tasks = tuple(_make_task(data, tuple(range(k * per_task, (k + 1) * per_task)))
                  for k in range(spec.num_tasks))
    for k, task in enumerate(tasks):
        if not len(task.y_train):
            raise sources.DatasetError(f"{name}: task {k} (classes {task.classes}) has no "
                                       f"training samples in the loaded data.")
    return Benchmark(name, spec.input_shape, spec.num_classes, tasks, spec.backbone,
                     spec.augment, spec.mean, spec.std)


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid: it must be an int >= 1.")


def _slices(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    """(image, int32 label) pairs, images in their raw dtype."""
    return tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))


def train_stream(task: Task, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled, full, raw training batches of ``task`` (the last partial batch is dropped).

    The order is reshuffled every epoch, deterministically for a given ``seed``. Batches
    stay raw: CLSER augments in-graph (``augment_current_batch``) so that its buffer
    stores the raw samples, as the reference does.
    """
    _check_batch_size(batch_size)
    num_samples = len(task.y_train)
    if batch_size > num_samples:
        raise ValueError(f"batch_size={batch_size} exceeds the {num_samples} training samples of "
                         f"task {task.classes}: every batch would be dropped.")
    ds = _slices(task.x_train, task.y_train)
    ds = ds.shuffle(num_samples, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def test_stream(task: Task, batch_size: int) -> tf.data.Dataset:
    """The test samples of ``task`` in order, batched (last batch may be smaller)."""
    _check_batch_size(batch_size)
    return _slices(task.x_test, task.y_test).batch(batch_size).prefetch(tf.data.AUTOTUNE)
