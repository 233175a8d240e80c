"""The benchmark registry: one :class:`Declaration` per benchmark in :data:`BENCHMARKS`, and
:func:`load_benchmark`, which reads a benchmark's files and splits them into tasks.

Class-incremental (seq-fmnist, seq-mnist, seq-cifar10, seq-cifar100, seq-tinyimg): a
dataset's classes, in label order, split into equally sized tasks. Domain-incremental
(perm-mnist, rot-mnist): 20 tasks over all ten classes, each with its own pixel permutation
or rotation. GCIL (gcil-cifar100): 20 phases drawn by :mod:`clser_tf.gcil`. General
continual (mnist-360): one stream without task boundaries, built by :mod:`clser_tf.mnist360`.
The splits are :mod:`clser_tf.splits`; the streams :mod:`clser_tf.streams`. The streams keep
the raw dtype (uint8 images, int32 labels); normalisation is the model's job, using
:attr:`Benchmark.mean` / :attr:`Benchmark.std`.

Everything else reads the registry: the configuration (the choices of ``--benchmark`` and
``--source``, which benchmark-specific settings a benchmark accepts, the run name), the
runner (the protocol, by ``setting``) and the speed benchmark's recipes. Adding a benchmark
is one entry of :data:`BENCHMARKS` (with its reader, and a splitter of :mod:`clser_tf.splits`
unless one there fits); see README, "Adding a benchmark".
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from typing import Callable, Mapping

from clser_tf import mnist360, sources, splits
from clser_tf.errors import DatasetError
from clser_tf.splits import LoadOptions, Task

DEFAULT_FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


class Setting(str, enum.Enum):
    """The continual-learning setting of a benchmark (its value is what results.json says)."""

    CLASS_IL = "class-il"
    DOMAIN_IL = "domain-il"
    GENERAL_CONTINUAL = "general-continual"


Reader = Callable[[str | None], sources.ArrayDataset]  # data_dir (None: default) -> arrays


@dataclasses.dataclass(frozen=True)
class Declaration:
    """One benchmark, declared once: what it is, how it is trained and how it is loaded.

    Its data are its own files (``read``) or another benchmark's (``sources``: a source name
    -> the benchmark whose files, checks and label names are used; the first is the default,
    and ``--source`` picks another when ``"source"`` is in ``settings``). ``split`` turns the
    data into tasks (:mod:`clser_tf.splits`). ``settings`` names the benchmark-specific
    settings it reads; any other benchmark refuses them. In the general-continual setting
    the tasks are the class pools the single stream is drawn from.
    """

    setting: Setting
    input_shape: tuple[int, ...]  # raw input shape, e.g. (28, 28) or (32, 32, 3)
    num_classes: int
    num_tasks: int  # tasks, domains, GCIL phases or (general continual) class pools
    backbone: str  # "mlp" or "resnet18"
    augment: bool  # crop (pad 4) + flip, in-graph on current and replay batches
    mean: tuple[float, ...] | None  # per-channel normalisation; None: pixels / 255 only
    std: tuple[float, ...] | None
    split: splits.Splitter
    read: Reader | None = None
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)
    class_names: tuple[str, ...] | None = None  # of its files' labels, when known (export)
    task_il: bool = True  # whether task-IL accuracy is defined
    settings: tuple[str, ...] = ()  # e.g. ("source",), ("weight_dist", "gcil_seed")

    def __post_init__(self) -> None:
        if (self.read is None) == (not self.sources):
            raise ValueError("A benchmark reads its own files (read=) or another "
                             "benchmark's (sources=): exactly one of the two.")


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A loaded benchmark: its declaration's fields and its tasks.

    In the general-continual setting ``tasks`` holds one entry per class, the pools that
    :func:`clser_tf.streams.general_stream` draws its single stream from and the per-class
    test sets; no task boundary reaches the model. ``details`` are the benchmark's draws
    (permutations, angles, phases) for results.json.
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


def _cifar_reader(num_classes: int) -> Reader:
    """CIFAR-``num_classes`` from a folder, else tensorflow-datasets."""
    return functools.partial(
        _load_dir_or_tfds, functools.partial(sources.read_cifar_dir, num_classes=num_classes),
        f"cifar{num_classes}")


_CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR10_STD = (0.2470, 0.2435, 0.2615)
_MNIST_SOURCES = {"mnist": "seq-mnist", "fmnist": "seq-fmnist"}  # --source: whose files

# The registry: every benchmark, by its --benchmark name, in the order --help lists them.
BENCHMARKS: dict[str, Declaration] = {
    "seq-fmnist": Declaration(
        Setting.CLASS_IL, (28, 28), num_classes=10, num_tasks=5, backbone="mlp", augment=False,
        mean=None, std=None, split=splits.class_il, read=_load_fmnist,
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot")),
    "seq-mnist": Declaration(
        Setting.CLASS_IL, (28, 28), num_classes=10, num_tasks=5, backbone="mlp", augment=False,
        mean=None, std=None, split=splits.class_il,
        read=functools.partial(_load_dir_or_tfds, sources.read_idx_dir, "mnist"),
        class_names=tuple(str(digit) for digit in range(10))),
    "seq-cifar10": Declaration(
        Setting.CLASS_IL, (32, 32, 3), num_classes=10, num_tasks=5, backbone="resnet18",
        augment=True, mean=_CIFAR10_MEAN, std=_CIFAR10_STD, split=splits.class_il,
        read=_cifar_reader(10),
        class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                     "ship", "truck")),
    # CIFAR-100 is normalised with the CIFAR-10 statistics, as in the reference implementation
    # (its seq-cifar100 reuses the seq-cifar10 transform).
    "seq-cifar100": Declaration(
        Setting.CLASS_IL, (32, 32, 3), num_classes=100, num_tasks=5, backbone="resnet18",
        augment=True, mean=_CIFAR10_MEAN, std=_CIFAR10_STD, split=splits.class_il,
        read=_cifar_reader(100)),
    "seq-tinyimg": Declaration(
        Setting.CLASS_IL, (64, 64, 3), num_classes=200, num_tasks=10, backbone="resnet18",
        augment=True, mean=(0.4802, 0.4480, 0.3975), std=(0.2770, 0.2691, 0.2821),
        split=splits.class_il, read=_load_tinyimg),
    "perm-mnist": Declaration(
        Setting.DOMAIN_IL, (28, 28), num_classes=10, num_tasks=20, backbone="mlp",
        augment=False, mean=None, std=None,
        split=functools.partial(splits.domain_il, "permutation"), sources=_MNIST_SOURCES,
        task_il=False, settings=("source",)),
    "rot-mnist": Declaration(
        Setting.DOMAIN_IL, (28, 28), num_classes=10, num_tasks=20, backbone="mlp",
        augment=False, mean=None, std=None,
        split=functools.partial(splits.domain_il, "rotation"), sources=_MNIST_SOURCES,
        task_il=False, settings=("source",)),
    # The output layer keeps the source's 10 units, as the reference's MLP does.
    "mnist-360": Declaration(
        Setting.GENERAL_CONTINUAL, (28, 28), num_classes=10, num_tasks=mnist360.NUM_DIGITS,
        backbone="mlp", augment=False, mean=None, std=None, split=splits.mnist360_pools,
        sources=_MNIST_SOURCES, task_il=False,
        settings=("source", "eval_every_steps", "curve_samples")),
    # Reads CIFAR-100 as seq-cifar100 does; its labels are remapped, so they have no names.
    "gcil-cifar100": Declaration(
        Setting.CLASS_IL, (32, 32, 3), num_classes=100, num_tasks=20, backbone="resnet18",
        augment=True, mean=_CIFAR10_MEAN, std=_CIFAR10_STD, split=splits.gcil_phases,
        sources={"cifar100": "seq-cifar100"}, task_il=False,
        settings=("weight_dist", "gcil_seed")),
}


def names() -> tuple[str, ...]:
    """Every registered benchmark (the choices of ``--benchmark``)."""
    return tuple(BENCHMARKS)


def accepting(setting: str) -> tuple[str, ...]:
    """The benchmarks that read the benchmark-specific ``setting`` (none: it is general)."""
    return tuple(name for name, declared in BENCHMARKS.items() if setting in declared.settings)


def source_names() -> tuple[str, ...]:
    """The choices of ``--source``: the sources of every benchmark that reads ``source``."""
    return tuple(dict.fromkeys(source for name in accepting("source")
                               for source in BENCHMARKS[name].sources))


def _read_checked(name: str, data_dir: str | None) -> sources.ArrayDataset:
    """Benchmark ``name``'s own files; DatasetError unless images have its shape and labels
    its range."""
    declared = BENCHMARKS[name]
    data = declared.read(data_dir)
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        if x.shape[1:] != declared.input_shape:
            raise DatasetError(f"{name}: {split} images have shape {x.shape[1:]}; "
                               f"expected {declared.input_shape}.")
        bad = y[(y < 0) | (y >= declared.num_classes)]
        if bad.size:
            raise DatasetError(f"{name}: {split} label {bad[0]} is outside "
                               f"[0, {declared.num_classes}).")
    return data


def load_benchmark(name: str, data_dir: str | None = None, *, source: str | None = None,
                   seed: int = 0, weight_dist: str = "uniform",
                   gcil_seed: int = 1993) -> Benchmark:
    """Loads benchmark ``name`` (a key of :data:`BENCHMARKS`) and splits it into tasks.

    ``data_dir`` points at the raw files; when it is None, seq-fmnist tries
    :data:`DEFAULT_FMNIST_DIR` then tensorflow-datasets, seq-mnist and the CIFAR benchmarks
    use tensorflow-datasets, and seq-tinyimg fails. perm-mnist, rot-mnist and mnist-360 read
    the data of ``source`` (``"mnist"``, the default, as seq-mnist does; ``"fmnist"`` as
    seq-fmnist does) and draw their permutations / angles from ``seed``. gcil-cifar100 reads
    CIFAR-100 as seq-cifar100 does and draws its phases from ``gcil_seed`` with
    ``weight_dist`` (``"uniform"`` or ``"longtail"``).
    """
    if name not in BENCHMARKS:
        raise ValueError(f"Unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}.")
    declared = BENCHMARKS[name]
    if source is not None and "source" not in declared.settings:
        raise ValueError(f"source={source!r} is invalid for {name}: only "
                         f"{', '.join(accepting('source'))} take a source.")
    origin = name  # whose files are read
    if declared.sources:
        source = source or next(iter(declared.sources))
        if source not in declared.sources:
            raise ValueError(f"source={source!r} is invalid: use one of "
                             f"{', '.join(declared.sources)}.")
        origin = declared.sources[source]
    data = _read_checked(origin, data_dir)
    tasks, details = declared.split(name, data, declared.num_classes, declared.num_tasks,
                                    LoadOptions(source, seed, weight_dist, gcil_seed))
    return Benchmark(name, declared.input_shape, declared.num_classes, tasks,
                     declared.backbone, declared.augment, declared.mean, declared.std,
                     setting=declared.setting, task_il=declared.task_il, details=details,
                     class_names=BENCHMARKS[origin].class_names)
