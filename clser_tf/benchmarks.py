"""The benchmarks: their declarations, loaders and task splits (streams: ``clser_tf.streams``).

Class-incremental (seq-fmnist, seq-mnist, seq-cifar10, seq-cifar100, seq-tinyimg): a
dataset's classes, in label order, split into equally sized tasks. Domain-incremental
(perm-mnist, rot-mnist): 20 tasks over all ten classes, each with its own pixel permutation
or rotation. GCIL (gcil-cifar100): 20 phases drawn by :mod:`clser_tf.gcil`. General
continual (mnist-360): one stream without task boundaries, built by :mod:`clser_tf.mnist360`.
The streams keep the raw dtype (uint8 images, int32 labels); normalisation is the model's job,
using :attr:`Benchmark.mean` / :attr:`Benchmark.std`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from typing import Callable

import numpy as np

from clser_tf import gcil, mnist360, sources
from clser_tf.errors import DatasetError
from clser_tf.image_transforms import TaskTransform, draw_task_transforms, rotate

DEFAULT_FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


@dataclasses.dataclass(frozen=True)
class Task:
    """One task: its classes and train/test samples, with the task's fixed input transform.

    The samples are stored raw; ``transform`` (domain-IL: a permutation or rotation) is
    applied by :func:`train_stream` and :func:`test_stream` alike, so the model (and its
    buffer) sees the transformed inputs.
    """

    classes: tuple[int, ...]  # task k of a 5x2 split holds classes (2k, 2k+1)
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    transform: TaskTransform | None = None


class Setting(str, enum.Enum):
    """The continual-learning setting of a benchmark (its value is what results.json says)."""

    CLASS_IL = "class-il"
    DOMAIN_IL = "domain-il"
    GENERAL_CONTINUAL = "general-continual"


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A benchmark: its tasks and the training settings that go with it.

    ``setting`` is a :class:`Setting`. In the
    general-continual setting ``tasks`` holds one entry per class, the pools that
    :func:`general_stream` draws its single stream from and the per-class test sets; no
    task boundary reaches the model. ``task_il`` says whether task-IL accuracy is defined.
    ``details`` are the benchmark's draws (permutations, angles, phases) for results.json.
    """

    name: str
    input_shape: tuple[int, ...]  # raw input shape, e.g. (28, 28) or (32, 32, 3)
    num_classes: int
    tasks: tuple[Task, ...]
    backbone: str  # "mlp" or "resnet18"
    augment: bool  # crop (pad 4) + flip, in-graph on current and replay batches
    mean: tuple[float, ...] | None  # per-channel normalisation; None: pixels / 255 only
    std: tuple[float, ...] | None
    setting: Setting = Setting.CLASS_IL
    task_il: bool = True
    details: dict = dataclasses.field(default_factory=dict)
    class_names: tuple[str, ...] | None = None  # of the labels, when known (for the export)


def _load_fmnist(data_dir: str | None) -> sources.ArrayDataset:
    """Fashion-MNIST from ``data_dir``, else the Debian package's folder, else tfds."""
    if data_dir is not None:
        return sources.read_idx_dir(data_dir)
    try:
        return sources.read_idx_dir(DEFAULT_FMNIST_DIR)
    except DatasetError as dir_error:
        try:
            return sources.load_tfds("fashion_mnist")
        except DatasetError as tfds_error:
            raise DatasetError(
                f"Fashion-MNIST not found anywhere. 1) {DEFAULT_FMNIST_DIR!r}: {dir_error} "
                f"2) tfds 'fashion_mnist': {tfds_error}") from tfds_error


def _load_dir_or_tfds(reader: Callable[[str], sources.ArrayDataset], tfds_name: str,
                      data_dir: str | None) -> sources.ArrayDataset:
    """``reader(data_dir)`` if a directory is given, else tensorflow-datasets ``tfds_name``."""
    return reader(data_dir) if data_dir is not None else sources.load_tfds(tfds_name)


def _load_tinyimg(data_dir: str | None) -> sources.ArrayDataset:
    if data_dir is None:
        raise DatasetError(
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

# Label names of the datasets that have them, by ``_SPECS`` entry (recorded in the export).
CLASS_NAMES = {
    "seq-fmnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"),
    "seq-mnist": tuple(str(digit) for digit in range(10)),
    "seq-cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                    "ship", "truck"),
}
DOMAIN_IL_TRANSFORMS = {"perm-mnist": "permutation", "rot-mnist": "rotation"}
GENERAL_CONTINUAL = ("mnist-360",)
GCIL = ("gcil-cifar100",)
SOURCE_BENCHMARKS = (*DOMAIN_IL_TRANSFORMS, *GENERAL_CONTINUAL)  # take --source
SOURCES = {"mnist": "seq-mnist", "fmnist": "seq-fmnist"}  # --source: whose data to read
DOMAIN_IL_TASKS = 20
BENCHMARKS: tuple[str, ...] = (*_SPECS, *SOURCE_BENCHMARKS, *GCIL)


def _check_data(name: str, spec: _Spec, data: sources.ArrayDataset) -> None:
    """Raises DatasetError unless images have the benchmark's shape and labels its range."""
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        if x.shape[1:] != spec.input_shape:
            raise DatasetError(f"{name}: {split} images have shape {x.shape[1:]}; "
                                       f"expected {spec.input_shape}.")
        bad = y[(y < 0) | (y >= spec.num_classes)]
        if bad.size:
            raise DatasetError(f"{name}: {split} label {bad[0]} is outside "
                                       f"[0, {spec.num_classes}).")


def _make_task(data: sources.ArrayDataset, classes: tuple[int, ...]) -> Task:
    """Selects the samples of ``classes`` once per split, keeping dataset order."""
    train = np.isin(data.y_train, classes)
    test = np.isin(data.y_test, classes)
    return Task(classes, data.x_train[train], data.y_train[train], data.x_test[test],
                data.y_test[test])


def load_benchmark(name: str, data_dir: str | None = None, *, source: str | None = None,
                   seed: int = 0, weight_dist: str = "uniform",
                   gcil_seed: int = 1993) -> Benchmark:
    """Loads benchmark ``name`` (one of :data:`BENCHMARKS`) and splits it into tasks.

    Class-IL: task ``k`` holds classes ``[k * c, (k + 1) * c)`` with
    ``c = num_classes / num_tasks``. ``data_dir`` points at the raw files; when it is None,
    seq-fmnist tries :data:`DEFAULT_FMNIST_DIR` then tensorflow-datasets, seq-mnist and the
    CIFAR benchmarks use tensorflow-datasets, and seq-tinyimg fails. perm-mnist, rot-mnist
    and mnist-360 read the data of ``source`` (``"mnist"``, the default, as seq-mnist does;
    ``"fmnist"`` as seq-fmnist does) and draw their permutations / angles from ``seed``.
    gcil-cifar100 reads CIFAR-100 as seq-cifar100 does and draws its phases from
    ``gcil_seed`` with ``weight_dist`` (``"uniform"`` or ``"longtail"``).
    """
    if name not in BENCHMARKS:
        raise ValueError(f"Unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}.")
    if name not in SOURCE_BENCHMARKS and source is not None:
        raise ValueError(f"source={source!r} is invalid for {name}: only "
                         f"{', '.join(SOURCE_BENCHMARKS)} take a source.")
    if name in SOURCE_BENCHMARKS:
        source = source or "mnist"
        if source not in SOURCES:
            raise ValueError(f"source={source!r} is invalid: use one of {', '.join(SOURCES)}.")
        data = _load_checked(SOURCES[source], data_dir)
        if name in DOMAIN_IL_TRANSFORMS:
            return _domain_il(name, data, source, seed)
        return _mnist360(name, data, source)
    if name in GCIL:
        return _gcil(name, _load_checked("seq-cifar100", data_dir), weight_dist, gcil_seed)
    spec = _SPECS[name]
    data = _load_checked(name, data_dir)
    per_task = spec.num_classes // spec.num_tasks
    tasks = tuple(_make_task(data, tuple(range(k * per_task, (k + 1) * per_task)))
                  for k in range(spec.num_tasks))
    for k, task in enumerate(tasks):
        if not len(task.y_train):
            raise DatasetError(f"{name}: task {k} (classes {task.classes}) has no "
                                       f"training samples in the loaded data.")
    return _with_spec(name, name, tasks)


def _load_checked(spec_name: str, data_dir: str | None) -> sources.ArrayDataset:
    """The data of ``_SPECS[spec_name]``, checked against its shape and label range."""
    spec = _SPECS[spec_name]
    data = spec.load(data_dir)
    _check_data(spec_name, spec, data)
    return data


def _with_spec(spec_name: str, name: str, tasks: tuple[Task, ...], **fields) -> Benchmark:
    """A benchmark with the input, backbone and normalisation of ``_SPECS[spec_name]``."""
    spec = _SPECS[spec_name]
    return Benchmark(name, spec.input_shape, spec.num_classes, tasks, spec.backbone,
                     spec.augment, spec.mean, spec.std, class_names=CLASS_NAMES.get(spec_name),
                     **fields)


def _domain_il(name: str, data: sources.ArrayDataset, source: str, seed: int) -> Benchmark:
    """20 tasks over all the data, each with its own permutation or rotation from ``seed``.

    Every task shares the raw arrays (no copies); the transform is applied in the streams.
    """
    transforms = draw_task_transforms(DOMAIN_IL_TRANSFORMS[name], DOMAIN_IL_TASKS,
                                      int(np.prod(data.x_train.shape[1:])), seed)
    classes = tuple(range(_SPECS[SOURCES[source]].num_classes))
    tasks = tuple(Task(classes, data.x_train, data.y_train, data.x_test, data.y_test, t)
                  for t in transforms)
    return _with_spec(SOURCES[source], name, tasks, setting=Setting.DOMAIN_IL, task_il=False,
                      details={"source": source,
                               "task_transforms": [t.describe() for t in transforms]})


def _mnist360(name: str, data: sources.ArrayDataset, source: str) -> Benchmark:
    """One pool per digit 0..8: raw training samples, test samples rotated as in the reference.

    The output layer keeps the source's 10 units, as the reference's MLP does.
    """
    tasks = []
    for digit in range(mnist360.NUM_DIGITS):
        train, test = data.y_train == digit, data.y_test == digit
        if not train.any() or not test.any():
            raise DatasetError(f"{name}: digit {digit} has {train.sum()} training and "
                                       f"{test.sum()} test samples; it needs both.")
        x_test = rotate(data.x_test[test], mnist360.evaluation_angles(int(test.sum()))).numpy()
        tasks.append(Task((digit,), data.x_train[train], data.y_train[train], x_test,
                          data.y_test[test]))
    details = {"source": source, "digits": list(range(mnist360.NUM_DIGITS)),
               "rounds": mnist360.ROUNDS,
               "train_samples_per_digit": [len(t.y_train) for t in tasks],
               "test_samples_per_digit": [len(t.y_test) for t in tasks]}
    return _with_spec(SOURCES[source], name, tuple(tasks), setting=Setting.GENERAL_CONTINUAL,
                      task_il=False, details=details)


def _gcil(name: str, data: sources.ArrayDataset, weight_dist: str, gcil_seed: int) -> Benchmark:
    """20 GCIL phases; labels remapped by first appearance; cumulative test sets.

    The test set is sorted by remapped label once, so phase ``t``'s test set (every class
    seen up to ``t``) is a prefix of it: the phases share one array.
    """
    phases = gcil.sample_phases(data.y_train, weight_dist, gcil_seed)
    order = gcil.first_appearance_order(phases)
    label_of = np.full(int(data.y_train.max()) + 1, -1, np.int64)
    label_of[order] = np.arange(len(order))
    test_labels = label_of[data.y_test]
    by_label = np.argsort(np.where(test_labels < 0, len(order), test_labels), kind="stable")
    x_test, y_test = data.x_test[by_label], test_labels[by_label]
    tasks, seen = [], 0
    for t, phase in enumerate(phases):
        seen = max(seen, int(label_of[list(phase.classes)].max()) + 1)
        cut = int(((y_test >= 0) & (y_test < seen)).sum())
        if cut == 0:
            raise DatasetError(f"{name}: phase {t} has no test samples of its classes.")
        tasks.append(Task(tuple(int(label_of[c]) for c in phase.classes),
                          data.x_train[phase.train_indices],
                          label_of[data.y_train[phase.train_indices]],
                          x_test[:cut], y_test[:cut]))
    details = {"weight_dist": weight_dist, "gcil_seed": gcil_seed, "label_order": order,
               "phases": [{"classes": list(p.classes), "labels": list(t.classes),
                           "counts": list(p.counts)} for p, t in zip(phases, tasks)]}
    return _with_spec("seq-cifar100", name, tuple(tasks), task_il=False, details=details)
