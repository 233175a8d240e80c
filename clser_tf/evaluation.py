"""The CLS-ER paper's evaluation protocol: class-IL / task-IL accuracies and summary metrics.

:func:`evaluate_models` makes one pass over each test set, computing every model's logits in
one compiled step per batch and accumulating the correct counts in-graph;
:func:`task_evaluator` is the evaluator of a task sequence's settings.
:func:`summarize` turns an accuracy matrix into final mean accuracy, forgetting, backward
transfer and forward transfer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from clser_tf.benchmarks import Benchmark, Setting


def evaluate_models(models: Mapping[str, keras.Model], test_sets: Sequence[tf.data.Dataset],
                    task_classes: Sequence[Sequence[int]] | None,
                    ) -> dict[str, dict[str, list[float]]]:
    """Evaluates every model on every test set, with accuracies in percent.

    A one-off :class:`Evaluator`; build one ``Evaluator`` and call it repeatedly to
    compile the evaluation step only once.
    """
    return Evaluator(models, task_il=task_classes is not None)(test_sets, task_classes)


class Evaluator:
    """Evaluates fixed models on test sets, compiling its per-batch step once.

    Each test set yields ``(x, y)`` batches; ``x`` goes to the models as it comes (models
    are called with ``training=False`` and handle their own preprocessing) and ``y`` holds
    integer class ids. Class-IL accuracy takes the argmax over all logits. Task-IL accuracy
    for test set ``k`` first sets the logits of classes outside ``task_classes[k]`` to
    ``-inf``. With ``task_il=False`` (domain-IL) only class-IL is reported.
    """

    def __init__(self, models: Mapping[str, keras.Model], task_il: bool):
        if not models:
            raise ValueError("models is empty: pass at least one keras.Model to evaluate.")
        self._names = list(models)
        self._task_il = task_il
        self._counter = _CorrectCounter([models[name] for name in self._names], task_il)

    def __call__(self, test_sets: Sequence[tf.data.Dataset],
                 task_classes: Sequence[Sequence[int]] | None,
                 ) -> dict[str, dict[str, list[float]]]:
        """Returns ``{name: {"class_il": [acc per set], "task_il": [acc per set]}}``.

        ``task_classes`` (one list of class ids per test set) is required for task-IL and
        must be None in domain-IL; without task-IL there is no ``"task_il"`` key.
        """
        if (task_classes is not None) != self._task_il:
            raise ValueError(f"task_classes={task_classes!r} is invalid: this evaluator was "
                             f"built with task_il={self._task_il}.")
        if task_classes is not None and len(task_classes) != len(test_sets):
            raise ValueError(
                f"task_classes has {len(task_classes)} entries but there are "
                f"{len(test_sets)} test sets: give one list of class ids per test set, or "
                "None for domain-IL.")
        counter = self._counter
        metrics = ["class_il", "task_il"] if self._task_il else ["class_il"]
        results = {name: {metric: [] for metric in metrics} for name in self._names}
        no_classes = tf.zeros([0], tf.int32)
        for k, test_set in enumerate(test_sets):
            classes = (no_classes if task_classes is None
                       else _class_id_tensor(task_classes[k], k))
            counter.reset()
            for x, y in test_set:
                counter.update(x, y, classes)
            seen = int(counter.seen.numpy())
            if seen == 0:
                raise ValueError(f"test set {k} yielded no samples: cannot compute its accuracy.")
            correct = counter.correct.numpy()
            for m, name in enumerate(self._names):
                for c, metric in enumerate(metrics):
                    results[name][metric].append(100.0 * float(correct[m, c]) / seen)
        return results


def task_evaluator(models: Mapping[str, keras.Model], benchmark: Benchmark) -> Callable[
        [Sequence[tf.data.Dataset], Sequence[Sequence[int]] | None],
        dict[str, dict[str, list[float]]]]:
    """The :class:`Evaluator` of a task sequence's ``models``: class-IL, and task-IL where
    ``benchmark.task_il``; a domain-IL benchmark's accuracy is reported as ``domain_il``.

    The runner and :class:`clser_tf.ContinualEvaluation` both evaluate through it.
    """
    evaluate = Evaluator(models, task_il=benchmark.task_il)
    if benchmark.setting != Setting.DOMAIN_IL:
        return evaluate
    return lambda test_sets, classes: {
        name: {"domain_il": accs["class_il"]}
        for name, accs in evaluate(test_sets, classes).items()}


class _CorrectCounter:
    """Compiled per-batch step adding each model's correct predictions to in-graph totals.

    ``correct[m, 0]`` counts class-IL hits of model ``m`` and ``correct[m, 1]`` (task-IL
    only) its task-IL hits; ``seen`` counts samples. The task's class ids are a tensor
    argument, so evaluating another task does not retrace the step.
    """

    def __init__(self, models: Sequence[keras.Model], task_il: bool):
        self._models = list(models)
        self._task_il = task_il
        self.correct = tf.Variable(tf.zeros([len(models), 2 if task_il else 1], tf.int64),
                                   trainable=False)
        self.seen = tf.Variable(tf.constant(0, tf.int64), trainable=False)
        self.update = tf.function(self._update, reduce_retracing=True)

    def reset(self) -> None:
        """Zeroes the totals before the next test set."""
        self.correct.assign(tf.zeros_like(self.correct))
        self.seen.assign(0)

    def _update(self, x: tf.Tensor, y: tf.Tensor, classes: tf.Tensor) -> None:
        labels = tf.reshape(tf.cast(y, tf.int64), [-1])
        hits = []
        for model in self._models:
            logits = model(x, training=False)
            model_hits = [_count_hits(logits, labels)]
            if self._task_il:
                model_hits.append(_count_hits(_mask_other_classes(logits, classes), labels))
            hits.append(tf.stack(model_hits))
        self.correct.assign_add(tf.stack(hits))
        self.seen.assign_add(tf.size(labels, out_type=tf.int64))


def _count_hits(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int64)
    return tf.reduce_sum(tf.cast(tf.equal(predictions, labels), tf.int64))


def _mask_other_classes(logits: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
    """Sets the logits of classes not listed in ``classes`` to ``-inf``."""
    num_classes = tf.shape(logits)[-1]
    tf.debugging.assert_less(
        classes, num_classes,
        message="task_classes holds a class id >= the number of logits")
    allowed = tf.reduce_any(tf.equal(tf.range(num_classes)[:, None], classes[None, :]), axis=1)
    return tf.where(allowed[None, :], logits, tf.constant(-np.inf, logits.dtype))


def _class_id_tensor(classes: Sequence[int], task: int) -> tf.Tensor:
    ids = np.asarray(classes)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"task_classes[{task}]={classes!r} is invalid: it must be a non-empty "
                         "list of integer class ids.")
    if ids.min() < 0:
        raise ValueError(f"task_classes[{task}]={classes!r} holds a negative class id.")
    return tf.constant(ids, tf.int32)


def summarize(matrix: Sequence[Sequence[float]], random_init: Sequence[float] | None = None,
              before_task: Sequence[float | None] | None = None) -> dict[str, float | None]:
    """Summarizes an accuracy matrix ``matrix[i][j]`` (task ``j`` after training task ``i``).

    Row ``i`` must hold ``i + 1`` accuracies. With ``T`` tasks, returns:

    * ``final_mean``: mean of the last row;
    * ``forgetting``: mean over ``j < T-1`` of ``max_{j <= i <= T-2} matrix[i][j]`` minus
      ``matrix[T-1][j]`` (Chaudhry et al.);
    * ``backward_transfer``: mean over ``j < T-1`` of ``matrix[T-1][j] - matrix[j][j]``;
    * ``forward_transfer``: mean over ``j >= 1`` of ``before_task[j] - random_init[j]``,
      where ``before_task[j]`` is the accuracy on task ``j`` just before training it and
      ``random_init[j]`` that of the randomly initialised model (GEM / Mammoth).

    The last three are ``None`` when ``T == 1``; ``forward_transfer`` is also ``None`` when
    ``random_init`` or ``before_task`` is missing. Both, when given, need ``T`` entries
    (``before_task[0]`` may be ``None``).
    """
    rows = _validate_triangular(matrix)
    tasks = len(rows)
    _validate_per_task("random_init", random_init, tasks, first_optional=False)
    _validate_per_task("before_task", before_task, tasks, first_optional=True)
    final = rows[-1]
    summary: dict[str, float | None] = {
        "final_mean": float(np.mean(final)), "forgetting": None,
        "backward_transfer": None, "forward_transfer": None}
    if tasks == 1:
        return summary
    old = range(tasks - 1)
    summary["forgetting"] = float(np.mean(
        [max(rows[i][j] for i in range(j, tasks - 1)) - final[j] for j in old]))
    summary["backward_transfer"] = float(np.mean([final[j] - rows[j][j] for j in old]))
    if random_init is not None and before_task is not None:
        summary["forward_transfer"] = float(np.mean(
            [before_task[j] - random_init[j] for j in range(1, tasks)]))
    return summary


def _validate_triangular(matrix: Sequence[Sequence[float]]) -> list[list[float]]:
    if len(matrix) == 0:
        raise ValueError("matrix is empty: it needs one row per trained task.")
    for i, row in enumerate(matrix):
        if len(row) != i + 1:
            raise ValueError(f"matrix row {i} has {len(row)} entries {list(row)!r}; row i of "
                             f"the accuracy matrix must have i + 1 = {i + 1}.")
    return [[float(value) for value in row] for row in matrix]


def _validate_per_task(name: str, values: Sequence[float | None] | None, tasks: int,
                       first_optional: bool) -> None:
    if values is None:
        return
    if len(values) != tasks:
        raise ValueError(f"{name} has {len(values)} entries {list(values)!r} but the matrix "
                         f"has {tasks} tasks.")
    start = 1 if first_optional else 0
    missing = [j for j in range(start, tasks) if values[j] is None]
    if missing:
        raise ValueError(f"{name}={list(values)!r} has None for tasks {missing}.")
