"""How a benchmark's data becomes tasks: the loaders that :data:`clser_tf.benchmarks.BENCHMARKS`
declares (the class-IL split, the domain-IL transforms, the mnist-360 pools, the GCIL phases).

Every splitter has the signature of :data:`Splitter`: the benchmark's name (for messages),
its data (already checked against the declared shape and label range), its declared number
of classes and tasks and the :class:`LoadOptions` of the run; it returns the tasks and the
benchmark's draws (permutations, angles, phases) that results.json records.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from clser_tf import gcil, mnist360, sources
from clser_tf.errors import DatasetError
from clser_tf.image_transforms import TaskTransform, draw_task_transforms, rotate


@dataclasses.dataclass(frozen=True)
class Task:
    """One task: its classes and train/test samples, with the task's fixed input transform.

    The samples are stored raw; ``transform`` (domain-IL: a permutation or rotation) is
    applied by :mod:`clser_tf.streams` to training and test batches alike, so the model (and its
    buffer) sees the transformed inputs.
    """

    classes: tuple[int, ...]  # task k of a 5x2 split holds classes (2k, 2k+1)
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    transform: TaskTransform | None = None


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """The run's settings that a splitter may read (each reads only its own)."""

    source: str | None = None  # the --source read (domain-IL, mnist-360)
    seed: int = 0  # domain-IL: the draws of the permutations / angles
    weight_dist: str = "uniform"  # GCIL
    gcil_seed: int = 1993  # GCIL
    class_order: tuple[int, ...] | None = None  # class-IL: the classes in task order


Splitter = Callable[[str, sources.ArrayDataset, int, int, LoadOptions],
                    tuple[tuple[Task, ...], dict]]


def _make_task(data: sources.ArrayDataset, classes: tuple[int, ...]) -> Task:
    """Selects the samples of ``classes`` once per split, keeping dataset order."""
    train = np.isin(data.y_train, classes)
    test = np.isin(data.y_test, classes)
    return Task(classes, data.x_train[train], data.y_train[train], data.x_test[test],
                data.y_test[test])


CLASS_ORDERS = ("label", "random")


def class_order(num_classes: int, num_tasks: int, order: str = "label",
                seed: int = 0) -> tuple[int, ...]:
    """The classes in the order the class-IL tasks take them: label order, or (``random``)
    a permutation drawn from ``seed`` (Mammoth's ``--permute_classes``). ``ValueError``
    unless ``num_tasks`` divides ``num_classes`` and ``order`` is known."""
    if order not in CLASS_ORDERS:
        raise ValueError(f"class_order={order!r} is invalid: it must be one of "
                         f"{', '.join(CLASS_ORDERS)}.")
    if not 1 <= num_tasks <= num_classes or num_classes % num_tasks:
        raise ValueError(f"num_tasks={num_tasks} is invalid: it must divide the "
                         f"{num_classes} classes into tasks of equal size.")
    if order == "label":
        return tuple(range(num_classes))
    return tuple(int(c) for c in np.random.default_rng(seed).permutation(num_classes))


def default_num_tasks(num_classes: int) -> int:
    """Tasks of two classes each (one class each when the number of classes is odd)."""
    return num_classes // 2 if num_classes % 2 == 0 else num_classes


def class_il(name: str, data: sources.ArrayDataset, num_classes: int, num_tasks: int,
             options: LoadOptions) -> tuple[tuple[Task, ...], dict]:
    """Task ``k`` holds classes ``order[k * c:(k + 1) * c]`` with ``c = num_classes /
    num_tasks`` and ``order`` the run's class order (label order unless given)."""
    order = options.class_order or class_order(num_classes, num_tasks)
    per_task = num_classes // num_tasks
    tasks = tuple(_make_task(data, tuple(order[k * per_task:(k + 1) * per_task]))
                  for k in range(num_tasks))
    for k, task in enumerate(tasks):
        if not len(task.y_train):
            raise DatasetError(f"{name}: task {k} (classes {task.classes}) has no "
                               f"training samples in the loaded data.")
    return tasks, ({} if options.class_order is None else {"class_order": list(order)})


def domain_il(kind: str, name: str, data: sources.ArrayDataset, num_classes: int,
              num_tasks: int, options: LoadOptions) -> tuple[tuple[Task, ...], dict]:
    """``num_tasks`` tasks over all the data, each with its own ``kind`` of transform
    (``"permutation"`` or ``"rotation"``) drawn from ``options.seed``.

    Every task shares the raw arrays (no copies); the transform is applied in the streams.
    """
    transforms = draw_task_transforms(kind, num_tasks, int(np.prod(data.x_train.shape[1:])),
                                      options.seed)
    classes = tuple(range(num_classes))
    tasks = tuple(Task(classes, data.x_train, data.y_train, data.x_test, data.y_test, t)
                  for t in transforms)
    return tasks, {"source": options.source,
                   "task_transforms": [t.describe() for t in transforms]}


def mnist360_pools(name: str, data: sources.ArrayDataset, num_classes: int, num_tasks: int,
                   options: LoadOptions) -> tuple[tuple[Task, ...], dict]:
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
    details = {"source": options.source, "digits": list(range(mnist360.NUM_DIGITS)),
               "rounds": mnist360.ROUNDS,
               "train_samples_per_digit": [len(t.y_train) for t in tasks],
               "test_samples_per_digit": [len(t.y_test) for t in tasks]}
    return tuple(tasks), details


def gcil_phases(name: str, data: sources.ArrayDataset, num_classes: int, num_tasks: int,
                options: LoadOptions) -> tuple[tuple[Task, ...], dict]:
    """The phases of :func:`clser_tf.gcil.sample_phases` (20); labels remapped by first
    appearance; cumulative test sets.

    The test set is sorted by remapped label once, so phase ``t``'s test set (every class
    seen up to ``t``) is a prefix of it: the phases share one array.
    """
    weight_dist, gcil_seed = options.weight_dist, options.gcil_seed
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
    return tuple(tasks), details
