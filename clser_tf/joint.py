"""The joint task of the ``joint`` variant: every task's training data as one task."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clser_tf.benchmarks import Task


def joint_task(tasks: Sequence[Task]) -> Task:
    """One task holding the training samples of every task (in task order; the train
    stream shuffles them) and every class; its test set is the union of theirs (the
    protocol evaluates each task's test set on its own)."""
    if any(task.transform is not None for task in tasks):
        raise ValueError("the joint task needs tasks without an input transform "
                         "(domain-IL tasks transform their inputs).")
    return Task(tuple(sorted({c for task in tasks for c in task.classes})),
                np.concatenate([task.x_train for task in tasks]),
                np.concatenate([task.y_train for task in tasks]),
                np.concatenate([task.x_test for task in tasks]),
                np.concatenate([task.y_test for task in tasks]))
