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
from typing import Callable, Mapping, Sequence

import numpy as np

from clser_tf import data_defaults, mnist360, sources, splits, user_data
from clser_tf.errors import DatasetError
from clser_tf.splits import LoadOptions, Task

DEFAULT_FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


class Setting(str, enum.Enum):
    """The continual-learning setting of a benchmark (its value is what results.json says)."""

    CLASS_IL = "class-il"
    DOMAIN_IL = "domain-il"
    GENERAL_CONTINUAL = "general-continual"


Reader = Callable[[str | None], sources.ArrayDataset]  # data_dir (None: default) -> arrays
OwnReader = Callable[[str, str | None, tuple[int, int] | None], user_data.UserData]


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
    input_shape: tuple[int, ...] | None  # raw input shape, e.g. (28, 28) or (32, 32, 3)
    num_classes: int | None
    num_tasks: int | None  # tasks, domains, GCIL phases or (general continual) class pools
    backbone: str | None  # "mlp" or "resnet18"
    augment: bool | None  # crop (pad 4) + flip, in-graph on current and replay batches
    mean: tuple[float, ...] | None  # per-channel normalisation; None: pixels / 255 only
    std: tuple[float, ...] | None
    split: splits.Splitter
    read: Reader | None = None
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)
    class_names: tuple[str, ...] | None = None  # of its files' labels, when known (export)
    task_il: bool = True  # whether task-IL accuracy is defined
    settings: tuple[str, ...] = ()  # e.g. ("source",), ("weight_dist", "gcil_seed")
    # Your own data: (name, data_dir, image_size) -> UserData; the shape, classes, backbone,
    # augmentation and normalisation (the fields above left None) come from the data.
    read_own: OwnReader | None = None
    data_dir_layout: str | None = None  # what --data_dir must hold, when it is required

    def __post_init__(self) -> None:
        if sum((self.read is not None, bool(self.sources), self.read_own is not None)) != 1:
            raise ValueError("A benchmark reads its own files (read=), another benchmark's "
                             "(sources=) or the user's (read_own=): exactly one of them.")


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
    input_dtype: str = "uint8"  # of the raw images: uint8 (pixels / 255) or float32 (as is)


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


TFDS_PREFIX = "tfds:"  # --benchmark=tfds:NAME reads tensorflow-datasets NAME
# The settings of a class-IL split by classes (built-in or your own data).
_CLASS_SPLIT = ("num_tasks", "class_order", "class_order_seed")


def _own(read: OwnReader, settings: tuple[str, ...] = (),
         data_dir_layout: str | None = None) -> Declaration:
    """A declaration of your own data: everything but the setting comes from the data."""
    return Declaration(Setting.CLASS_IL, None, num_classes=None, num_tasks=None,
                       backbone=None, augment=None, mean=None, std=None,
                       split=splits.class_il, read_own=read, settings=_CLASS_SPLIT + settings,
                       data_dir_layout=data_dir_layout)


_CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR10_STD = (0.2470, 0.2435, 0.2615)
_MNIST_SOURCES = {"mnist": "seq-mnist", "fmnist": "seq-fmnist"}  # --source: whose files

# The registry: every benchmark, by its --benchmark name, in the order --help lists them.
BENCHMARKS: dict[str, Declaration] = {
    "seq-fmnist": Declaration(
        Setting.CLASS_IL, (28, 28), num_classes=10, num_tasks=5, backbone="mlp", augment=False,
        mean=None, std=None, split=splits.class_il, read=_load_fmnist,
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"),
        settings=_CLASS_SPLIT),
    "seq-mnist": Declaration(
        Setting.CLASS_IL, (28, 28), num_classes=10, num_tasks=5, backbone="mlp", augment=False,
        mean=None, std=None, split=splits.class_il,
        read=functools.partial(_load_dir_or_tfds, sources.read_idx_dir, "mnist"),
        class_names=tuple(str(digit) for digit in range(10)),
        settings=_CLASS_SPLIT),
    "seq-cifar10": Declaration(
        Setting.CLASS_IL, (32, 32, 3), num_classes=10, num_tasks=5, backbone="resnet18",
        augment=True, mean=_CIFAR10_MEAN, std=_CIFAR10_STD, split=splits.class_il,
        read=_cifar_reader(10),
        class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                     "ship", "truck"),
        settings=_CLASS_SPLIT),
    # CIFAR-100 is normalised with the CIFAR-10 statistics, as in the reference implementation
    # (its seq-cifar100 reuses the seq-cifar10 transform).
    "seq-cifar100": Declaration(
        Setting.CLASS_IL, (32, 32, 3), num_classes=100, num_tasks=5, backbone="resnet18",
        augment=True, mean=_CIFAR10_MEAN, std=_CIFAR10_STD, split=splits.class_il,
        read=_cifar_reader(100),
        settings=_CLASS_SPLIT),
    "seq-tinyimg": Declaration(
        Setting.CLASS_IL, (64, 64, 3), num_classes=200, num_tasks=10, backbone="resnet18",
        augment=True, mean=(0.4802, 0.4480, 0.3975), std=(0.2770, 0.2691, 0.2821),
        split=splits.class_il, read=_load_tinyimg,
        settings=_CLASS_SPLIT),
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
    # Your own data (README, "Your own data"): an image folder, npz arrays, any TFDS dataset.
    "folder": _own(lambda name, data_dir, size: user_data.read_folder(data_dir, size),
                   ("image_size",), "DIR/train/<class>/* and DIR/test/<class>/* images"),
    "arrays": _own(lambda name, data_dir, size: user_data.read_arrays(data_dir),
                   data_dir_layout="DIR/train.npz and DIR/test.npz, each with x and y"),
    TFDS_PREFIX + "NAME": _own(lambda name, data_dir, size: user_data.read_tfds(
        name[len(TFDS_PREFIX):], data_dir, size), ("image_size",)),
}


def names() -> tuple[str, ...]:
    """Every registered benchmark (the choices of ``--benchmark``; ``tfds:NAME`` stands for
    any tensorflow-datasets image-classification dataset)."""
    return tuple(BENCHMARKS)


def declaration(name: str) -> Declaration:
    """Benchmark ``name``'s declaration; ``ValueError`` naming the choices if unknown."""
    if name.startswith(TFDS_PREFIX) and len(name) > len(TFDS_PREFIX):
        return BENCHMARKS[TFDS_PREFIX + "NAME"]
    if name not in BENCHMARKS or name == TFDS_PREFIX + "NAME":
        raise ValueError(f"Unknown benchmark {name!r}; choose one of "
                         f"{', '.join(BENCHMARKS)} (tfds:NAME: e.g. tfds:svhn_cropped).")
    return BENCHMARKS[name]


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


def class_incremental(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                      y_test: np.ndarray, num_tasks: int | None = None,
                      class_order: str = "label", seed: int = 0, *, name: str = "arrays",
                      class_names: Sequence[str] | None = None,
                      details: dict | None = None) -> Benchmark:
    """Your own arrays as a class-incremental benchmark (the runner's ``folder``, ``arrays``
    and ``tfds:NAME`` go through here too).

    Images are uint8 (pixels, scaled by 1/255) or float (taken as they are), N x H x W or
    N x H x W x C; labels integers ``0..K-1``. The classes, in ``class_order`` (``label``,
    or ``random``: a permutation drawn from ``seed``), go into ``num_tasks`` tasks of equal
    size (default: two classes each, one when K is odd). The benchmark's backbone is ``mlp``
    for single-channel images of at most 32 x 32, else ``resnet18``; its augmentation
    crop-and-flip for colour images, none otherwise; its mean/std per channel computed from
    the training split. All of it is in :attr:`Benchmark.details` (results.json). Bad arrays
    or a ``num_tasks`` that does not divide K raise ``ValueError``.
    """
    data, num_classes = data_defaults.checked_arrays(x_train, y_train, x_test, y_test)
    num_tasks = splits.default_num_tasks(num_classes) if num_tasks is None else num_tasks
    order = splits.class_order(num_classes, num_tasks, class_order, seed)
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names for {num_classes} "
                         "classes: give one name per class.")
    tasks, _ = splits.class_il(name, data, num_classes, num_tasks, LoadOptions(class_order=order))
    input_shape = data.x_train.shape[1:]
    mean, std = data_defaults.channel_statistics(data.x_train)
    names_ = tuple(class_names) if class_names is not None else tuple(map(str, range(num_classes)))
    backbone = data_defaults.default_backbone(input_shape)
    augment = data_defaults.default_augment(input_shape)
    record = {**(details or {}), "input_shape": list(input_shape),
              "input_dtype": str(data.x_train.dtype), "num_classes": num_classes,
              "class_names": list(names_), "class_order": list(order),
              "mean": list(mean), "std": list(std)}
    return Benchmark(name, input_shape, num_classes, tasks, backbone, augment, mean, std,
                     setting=Setting.CLASS_IL, details=record, class_names=names_,
                     input_dtype=str(data.x_train.dtype))


def load_benchmark(name: str, data_dir: str | None = None, *, source: str | None = None,
                   seed: int = 0, weight_dist: str = "uniform", gcil_seed: int = 1993,
                   num_tasks: int | None = None, class_order: str = "label",
                   class_order_seed: int = 0,
                   image_size: tuple[int, int] | None = None) -> Benchmark:
    """Loads benchmark ``name`` (a key of :data:`BENCHMARKS`, or ``tfds:NAME``) and splits
    it into tasks.

    ``data_dir`` points at the raw files; when it is None, seq-fmnist tries
    :data:`DEFAULT_FMNIST_DIR` then tensorflow-datasets, seq-mnist and the CIFAR benchmarks
    use tensorflow-datasets, and seq-tinyimg, folder and arrays fail. perm-mnist, rot-mnist
    and mnist-360 read the data of ``source`` (``"mnist"``, the default, as seq-mnist does;
    ``"fmnist"`` as seq-fmnist does) and draw their permutations / angles from ``seed``.
    gcil-cifar100 reads CIFAR-100 as seq-cifar100 does and draws its phases from
    ``gcil_seed`` with ``weight_dist`` (``"uniform"`` or ``"longtail"``). The class-IL
    benchmarks split their classes, in ``class_order`` (``label`` or ``random`` from
    ``class_order_seed``), into ``num_tasks`` tasks (default: the declared number; your
    own data: see :func:`class_incremental`); ``image_size`` resizes a folder's or a TFDS
    dataset's images.
    """
    declared = declaration(name)
    for setting, value, default in (("source", source, None), ("num_tasks", num_tasks, None),
                                    ("class_order", class_order, "label"),
                                    ("image_size", image_size, None)):
        if value != default and setting not in declared.settings:
            raise ValueError(f"{setting}={value!r} is invalid for {name}: only "
                             f"{', '.join(accepting(setting))} take it.")
    if declared.data_dir_layout is not None and data_dir is None:
        raise ValueError(f"--benchmark={name} needs --data_dir=DIR: "
                         f"{declared.data_dir_layout}.")
    if declared.read_own is not None:
        own = declared.read_own(name, data_dir, image_size)
        data = own.data
        return class_incremental(data.x_train, data.y_train, data.x_test, data.y_test,
                                 num_tasks, class_order, class_order_seed, name=name,
                                 class_names=own.class_names, details={"data": own.origin})
    origin = name  # whose files are read
    if declared.sources:
        source = source or next(iter(declared.sources))
        if source not in declared.sources:
            raise ValueError(f"source={source!r} is invalid: use one of "
                             f"{', '.join(declared.sources)}.")
        origin = declared.sources[source]
    data = _read_checked(origin, data_dir)
    num_tasks = num_tasks or declared.num_tasks
    order = None
    if "class_order" in declared.settings and (num_tasks, class_order) != (
            declared.num_tasks, "label"):
        order = splits.class_order(declared.num_classes, num_tasks, class_order,
                                   class_order_seed)
    tasks, details = declared.split(name, data, declared.num_classes, num_tasks,
                                    LoadOptions(source, seed, weight_dist, gcil_seed, order))
    return Benchmark(name, declared.input_shape, declared.num_classes, tasks,
                     declared.backbone, declared.augment, declared.mean, declared.std,
                     setting=declared.setting, task_il=declared.task_il, details=details,
                     class_names=BENCHMARKS[origin].class_names)
