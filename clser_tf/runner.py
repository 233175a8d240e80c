"""One experiment: benchmark -> data streams -> ``fit`` -> evaluation -> results.

Task sequences (class-IL, domain-IL, GCIL) get one ``fit`` per task epoch and SPEC's
evaluation protocol: a random-initialised evaluation of every task (for forward transfer),
an evaluation of task t just before training it, and after every task an evaluation of
every model on every task seen so far. The general-continual stream (mnist-360) gets one
``fit`` over the whole stream with an accuracy curve along it, then a final evaluation of
every model on every digit.

Checkpoints (:mod:`clser_tf.checkpoint`) are written after every task's evaluation, every
``checkpoint_every_steps`` steps, and when SIGINT/SIGTERM asks the run to stop; running the
same command again resumes from the newest one and ends as the uninterrupted run would. A
non-finite loss stops the run without a checkpoint of that state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from typing import Any

import keras
import tensorflow as tf

from clser_tf import backbones, data_defaults, folders, protocols, user_data
from clser_tf.augment import RandomCropFlip
from clser_tf.benchmarks import Benchmark, load_benchmark
from clser_tf.callbacks import TrainSummaries
from clser_tf.checkpoint import (Checkpointer, RunState, find_run_states,
                                 remove_checkpoints)
from clser_tf.config import RunConfig
from clser_tf.distribution import is_chief, peer_tasks
from clser_tf.errors import CheckpointError, Interrupted, WorkerLost, WriteFailed
from clser_tf.model import CLSER
from clser_tf.preemption import ClusterStopRequest
from clser_tf.reporting import benchmark_line
from clser_tf.session import Session
from clser_tf.signals import StopRequest
from clser_tf.tensorboard_logs import drop_steps_after


# What a step, an evaluation or a checkpoint raises when a peer worker is gone.
_PEER_FAILURES = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                  tf.errors.AbortedError, tf.errors.CancelledError)


def model_choices(benchmark: Benchmark, config: RunConfig) -> tuple[str, bool]:
    """The run's backbone (``mlp``, ``resnet18`` or ``MODULE:FUNCTION``) and whether it
    augments with crop-and-flip: the benchmark's unless the config overrides them."""
    augment = benchmark.augment if config.augment is None else config.augment == "crop_flip"
    return config.backbone or benchmark.backbone, augment


def build_model(benchmark: Benchmark, config: RunConfig) -> CLSER:
    """The benchmark's backbone wrapped in a compiled ``CLSER`` with the run's settings
    (call it inside the strategy's scope)."""
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    choice, augment = model_choices(benchmark, config)
    scale = data_defaults.input_scale(benchmark.input_dtype)
    if choice == "mlp":
        backbone = backbones.mlp(benchmark.input_shape, benchmark.num_classes,
                                 input_dtype=benchmark.input_dtype, scale=scale)
    elif choice == "resnet18":
        # Under several replicas BatchNorm takes its statistics over the global batch, as
        # on one device (per-replica statistics would train a different model).
        backbone = backbones.resnet18(
            benchmark.input_shape, benchmark.num_classes, benchmark.mean, benchmark.std,
            input_dtype=benchmark.input_dtype, base_filters=config.resnet_base_filters,
            sync_batch_norm=tf.distribute.get_strategy().num_replicas_in_sync > 1, scale=scale)
    else:
        backbone = backbones.custom(choice, benchmark.input_shape, benchmark.num_classes)
    model = CLSER(
        backbone, **dataclasses.asdict(config.clser),
        replay_augment=RandomCropFlip() if augment else None,
        augment_current_batch=augment, seed=config.seed)
    model.compile(optimizer=keras.optimizers.SGD(config.lr), jit_compile=config.jit_compile,
                  steps_per_execution=config.steps_per_execution)
    return model


def run(config: RunConfig,
        strategy: tf.distribute.Strategy | None = None) -> dict[str, Any]:
    """Runs the experiment and returns what it writes to ``<output_dir>/results.json``.

    Resumes from the newest checkpoint in ``config.checkpoint_dir`` unless
    ``config.restart``. Raises :class:`~clser_tf.errors.CheckpointError` for a checkpoint
    that cannot be resumed, :class:`~clser_tf.errors.TrainingDiverged` for a
    non-finite loss or weight, and :class:`Interrupted` after SIGINT/SIGTERM.

    Under a multi-worker ``strategy`` every worker trains and evaluates, and only the
    chief writes to ``output_dir``/``export_dir``/``checkpoint_dir``: the others write
    into a private temporary folder (a SavedModel export and a checkpoint need every
    worker) that is removed at the end. Every worker resumes from the chief's
    ``checkpoint_dir``, which must then be one folder that every worker sees.
    """
    strategy = strategy or tf.distribute.get_strategy()
    if is_chief(strategy):
        # No other run may write to these folders while this one does.
        with folders.locked({"output_dir": config.output_dir,
                             "checkpoint_dir": config.checkpoint_dir}):
            if config.export_dir:
                folders.prepare("export_dir", config.export_dir)
            return _run(config, strategy)
    private = tempfile.mkdtemp(prefix="clser_tf_worker_")
    try:
        return _run(dataclasses.replace(
            config, output_dir=private, tensorboard=False,
            export_dir=os.path.join(private, "export") if config.export_dir else None,
            checkpoint_dir=os.path.join(private, "checkpoints")),
            strategy, resume_dir=config.checkpoint_dir)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _run(config: RunConfig, strategy: tf.distribute.Strategy,
         resume_dir: str | None = None) -> dict[str, Any]:
    with _op_determinism(config.deterministic):
        return _experiment(config, strategy, resume_dir)


@contextlib.contextmanager
def _op_determinism(enabled: bool):
    """TensorFlow op determinism on or off for the run, and as it was afterwards."""
    from tensorflow.python.framework import config as tf_config  # `disable` is not public

    def set_to(on: bool) -> None:
        if on:
            tf.config.experimental.enable_op_determinism()
        else:
            tf_config.disable_op_determinism()

    was = tf_config.is_op_determinism_enabled()
    set_to(enabled)
    try:
        yield
    finally:
        set_to(was)


def _experiment(config: RunConfig, strategy: tf.distribute.Strategy,
                resume_dir: str | None) -> dict[str, Any]:
    start = time.perf_counter()
    # A checkpoint of other settings is refused before any data is read or file written.
    states = ([] if config.restart
              else find_run_states(resume_dir or config.checkpoint_dir, config))
    keras.utils.set_random_seed(config.seed)
    benchmark = load_benchmark(
        config.benchmark, config.data_dir, source=config.source, seed=config.seed,
        weight_dist=config.weight_dist, gcil_seed=config.gcil_seed,
        num_tasks=config.num_tasks, class_order=config.class_order,
        class_order_seed=config.class_order_seed,
        image_size=config.image_size and user_data.parse_image_size(config.image_size))
    print(benchmark_line(benchmark, *model_choices(benchmark, config)), flush=True)
    with strategy.scope():
        model = build_model(benchmark, config)
        model.optimizer.build(model.trainable_variables)  # restorable; fit then skips it
    if config.restart:
        remove_checkpoints(config.checkpoint_dir)
    checkpointer = Checkpointer(model, config.checkpoint_dir, config.keep_checkpoints,
                                config.checkpoint_every_steps)
    # The newest kept checkpoint that restores (a corrupt one falls back to the previous).
    state = checkpointer.restore_newest(states) if states else None
    _check_workers_agree(strategy, int(model.global_step.numpy()))
    os.makedirs(config.output_dir, exist_ok=True)

    eval_models = {name: getattr(model, f"{name}_model") for name in config.eval_models}
    if state is not None and config.tensorboard:
        _drop_orphaned_logs(config, state)
    train_writer, eval_writer = _writers(config)
    callbacks = ([TrainSummaries(train_writer, config.log_every_steps)]
                 if train_writer is not None else [])
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    # Under multi-worker training a signal on one worker stops every worker at one step.
    with (ClusterStopRequest(strategy.cluster_resolver) if multi_worker
          else StopRequest(install=True)) as stop:
        session = Session(config, benchmark, model, eval_models, callbacks, eval_writer,
                          checkpointer, stop,
                          run_tick=start - (state.extra["elapsed_s"] if state else 0.0))
        if state is not None:
            print(_resume_line(state, session.num_tasks, session.general), flush=True)
        _train(session, state, peer_tasks(strategy) if multi_worker else None,
               resume_dir or config.checkpoint_dir, chief=resume_dir is None)
    for writer in (train_writer, eval_writer):
        if writer is not None:
            writer.flush()
    if config.export_dir:
        _export(model, config, benchmark)
    session.results.timings["total_s"] = time.perf_counter() - session.run_tick
    session.save()
    print(f"results: {session.results_path}" + (f"  export: {config.export_dir}"
                                                if config.export_dir else ""), flush=True)
    return session.results.to_json()


def _train(session: Session, state: RunState | None, peers: list[str] | None,
           resume_dir: str, chief: bool) -> None:
    """Runs the session's protocol from ``state``. Under multi-worker training (``peers``:
    the cluster's other tasks) a lost peer, and a stop on a worker other than the chief,
    raise naming ``resume_dir``: the folder to resume from."""
    try:
        if session.general:
            protocols.train_general_stream(session, state)
        else:
            protocols.train_task_sequence(session, state)
    except _PEER_FAILURES as error:
        if peers is None:
            raise
        raise WorkerLost(error, resume_dir, peers) from None
    except Interrupted as stopped:
        if chief:
            raise
        raise Interrupted(stopped.signum, stopped.step, resume_dir) from None


def _export(model: CLSER, config: RunConfig, benchmark: Benchmark) -> None:
    """Exports the serving model to ``config.export_dir`` (a failed write is one line)."""
    try:
        model.export_stable(config.export_dir, tflite=config.export_tflite,
                            class_names=benchmark.class_names)
    except (OSError, tf.errors.OpError) as error:
        raise WriteFailed(config.export_dir, error) from None


def _drop_orphaned_logs(config: RunConfig, state: RunState) -> None:
    """The TensorBoard steps a killed run logged after ``state``'s checkpoint: train logs
    are by global step; eval logs by task (task sequences) or global step (a stream)."""
    tb_dir = os.path.join(config.output_dir, "tensorboard")
    models = state.results.get("models") or {}
    first = next(iter(models.values()), {})
    evaluated = (len(next(iter(first["matrix"].values()))) if "matrix" in first
                 else state.global_step)
    for name, last in (("train", state.global_step), ("eval", evaluated)):
        if os.path.isdir(os.path.join(tb_dir, name)):
            drop_steps_after(os.path.join(tb_dir, name), last)


def _writers(config: RunConfig) -> tuple[tf.summary.SummaryWriter | None, ...]:
    """The TensorBoard writers (train, eval) under ``<output_dir>/tensorboard``, or None."""
    if not config.tensorboard:
        return None, None
    tb_dir = os.path.join(config.output_dir, "tensorboard")
    return (tf.summary.create_file_writer(os.path.join(tb_dir, "train")),
            tf.summary.create_file_writer(os.path.join(tb_dir, "eval")))


def _resume_line(state: RunState, num_tasks: int, general: bool) -> str:
    if state.task >= num_tasks:
        where = "the stream is trained" if general else "every task is trained"
    else:
        what = "the stream" if general else f"task {state.task + 1}/{num_tasks}"
        where = f"{what}, {state.position} steps into it"
    return f"resuming from {state.path} (global step {state.global_step}): {where}."


def _check_workers_agree(strategy: tf.distribute.Strategy, step: int) -> None:
    """Under multi-worker training every worker must start from the same global step."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    local = tf.constant([step, step * step, 1], tf.float64)
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: local),
                            axis=None).numpy()
    count = total[2]
    if total[0] != count * step or total[1] != count * step * step:
        raise CheckpointError(
            f"the workers start from different global steps (this one from {step}, their "
            f"mean is {total[0] / count:g}): give every worker the same --checkpoint_dir, a "
            "folder they all see, or --restart them all.")
