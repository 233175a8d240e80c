"""The runner's ``--strategy``: which ``tf.distribute`` strategy trains, and who writes."""

from __future__ import annotations

import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy for ``--strategy=name``; create it before any other TensorFlow work.

    ``mirrored`` uses every local GPU (NCCL all-reduce), or, without GPUs, every logical
    CPU with all-reduce on one device: TensorFlow's CPU collectives mis-order when a step
    mixes CLS-ER's batch gather with synchronised BatchNorm (see BUILD_NOTES.md).
    ``multi_worker`` reads the cluster from the ``TF_CONFIG`` environment variable.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(
            devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy=multi_worker is invalid here: it needs the TF_CONFIG "
                             "environment variable describing the cluster and this task.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--strategy={name!r} is invalid: it must be one of "
                     f"{', '.join(STRATEGIES)}.")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes results, logs, checkpoints and exports.

    The chief is the ``chief`` task if the cluster has one, else worker 0; a run without
    a cluster is its own chief.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief
