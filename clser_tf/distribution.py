"""The runner's ``--strategy``: which ``tf.distribute`` strategy trains, and who writes."""

from __future__ import annotations

import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str, collective_timeout_s: int = 60) -> tf.distribute.Strategy:
    """The strategy for ``--strategy=name``; create it before any other TensorFlow work.

    ``mirrored`` uses every local GPU (NCCL all-reduce), or, without GPUs, every logical
    CPU with all-reduce on one device: TensorFlow's CPU collectives mis-order when a step
    mixes CLS-ER's batch gather with synchronised BatchNorm (see BUILD_NOTES.md).
    ``multi_worker`` reads the cluster from the ``TF_CONFIG`` environment variable; a
    collective waits at most ``collective_timeout_s`` for its peers, and a worker that
    sends no heartbeat for that long is lost (the others' steps then fail).
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
        _configure_coordination(collective_timeout_s)
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                timeout_seconds=collective_timeout_s))
    raise ValueError(f"--strategy={name!r} is invalid: it must be one of "
                     f"{', '.join(STRATEGIES)}.")


def _configure_coordination(timeout_s: int) -> None:
    """TensorFlow's coordination service as MultiWorkerMirroredStrategy configures it (it
    keeps a configuration made before it), with ``timeout_s`` as the heartbeat timeout.

    Uses ``tensorflow.python.eager.context``: the strategy has no public argument for it.
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    spec = resolver.cluster_spec()
    if context.context().coordination_service is not None or (
            resolver.task_type not in ("chief", "worker")):
        return
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(spec),
        heartbeat_timeout_in_ms=timeout_s * 1000,
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(
            name=job, num_tasks=spec.num_tasks(job))
            for job in ("chief", "worker") if job in spec.jobs])


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


def peer_tasks(strategy: tf.distribute.Strategy) -> list[str]:
    """Every other task of this process's cluster, as ``/job:<type>/replica:0/task:<i>``."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return []
    return [f"/job:{job}/replica:0/task:{index}"
            for job, tasks in resolver.cluster_spec().as_dict().items()
            for index in (range(len(tasks)) if isinstance(tasks, list) else sorted(tasks))
            if (job, index) != (resolver.task_type, resolver.task_id)]
