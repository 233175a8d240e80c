"""TensorBoard logs: a task sequence's accuracies after each task
(:func:`write_task_summaries`, for the runner and :class:`clser_tf.ContinualEvaluation`),
and the logs across a resume: the steps a killed run logged after its last checkpoint are
dropped, so that the resumed run's logs hold each step once.

TensorBoard purges "orphaned" steps only for event files with a ``SessionLog.START``,
which TF 2 summary writers do not write; here the event files (TFRecords of ``Event``
protos) are rewritten without the events past the checkpoint, each atomically.
"""

from __future__ import annotations

import glob
import os

import tensorflow as tf


def write_task_summaries(writer: tf.summary.SummaryWriter, t: int, accs: dict) -> None:
    """Each model's accuracy per setting on every task evaluated after task ``t``, and their
    mean, to TensorBoard at step ``t + 1``: ``<model>/<setting>/task_<j>`` and
    ``<model>/<setting>/mean`` (``accs`` as an :class:`~clser_tf.evaluation.Evaluator`
    returns them)."""
    with writer.as_default(step=t + 1):
        for name, per_setting in accs.items():
            for s, values in per_setting.items():
                for j, acc in enumerate(values):
                    tf.summary.scalar(f"{name}/{s}/task_{j + 1}", acc)
                tf.summary.scalar(f"{name}/{s}/mean", sum(values) / len(values))


def drop_steps_after(log_dir: str, step: int) -> int:
    """Rewrites every event file in ``log_dir`` without the events of steps > ``step``;
    returns how many events were dropped."""
    dropped = 0
    for path in sorted(glob.glob(os.path.join(glob.escape(log_dir), "events.out.tfevents.*"))):
        kept, removed = [], 0
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            if event.step > step and event.HasField("summary"):
                removed += 1
            else:
                kept.append(record.numpy())
        if removed:
            tmp = path + ".tmp"
            with tf.io.TFRecordWriter(tmp) as writer:
                for record in kept:
                    writer.write(record)
            os.replace(tmp, path)
            dropped += removed
    return dropped
