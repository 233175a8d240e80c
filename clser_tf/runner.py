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
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from clser_tf import backbones
from clser_tf.augment import RandomCropFlip
from clser_tf.benchmarks import (Benchmark, Task, general_stream, held_out_slice,
                                 load_benchmark, test_stream, train_stream)
from clser_tf.checkpoint import Checkpointer, RunState, find_run_state, finite, write_json
from clser_tf.config import RunConfig
from clser_tf.curve import AccuracyCurve
from clser_tf.distribution import is_chief
from clser_tf.errors import CheckpointError, Interrupted, TrainingDiverged
from clser_tf.evaluation import Evaluator, summarize
from clser_tf.figures import (accuracy_curve_figure, accuracy_matrix_figure,
                              accuracy_per_task_figure, save_figures)
from clser_tf.model import CLSER

HEADLINE_MODEL = "stable"


def build_model(benchmark: Benchmark, config: RunConfig) -> CLSER:
    """The benchmark's backbone wrapped in a compiled ``CLSER`` with the run's settings
    (call it inside the strategy's scope)."""
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    if (config.backbone or benchmark.backbone) == "mlp":
        backbone = backbones.mlp(benchmark.input_shape, benchmark.num_classes)
    else:
        # Under several replicas BatchNorm takes its statistics over the global batch, as
        # on one device (per-replica statistics would train a different model).
        backbone = backbones.resnet18(
            benchmark.input_shape, benchmark.num_classes, benchmark.mean, benchmark.std,
            base_filters=config.resnet_base_filters,
            sync_batch_norm=tf.distribute.get_strategy().num_replicas_in_sync > 1)
    model = CLSER(
        backbone, **dataclasses.asdict(config.clser),
        replay_augment=RandomCropFlip() if benchmark.augment else None,
        augment_current_batch=benchmark.augment, seed=config.seed)
    model.compile(optimizer=keras.optimizers.SGD(config.lr),
                  steps_per_execution=config.steps_per_execution)
    return model


def _summary_line(task: int, num_tasks: int, accs: dict, seconds: float) -> str:
    parts = []
    for name, per_setting in accs.items():
        means = " ".join(f"{setting.replace('_il', '')}-IL {sum(v) / len(v):5.2f}"
                         for setting, v in per_setting.items())
        parts.append(f"{name} {means}")
    return f"task {task + 1}/{num_tasks} ({seconds:.1f} s): " + " | ".join(parts)


def _final_table(models: dict) -> str:
    header = f"{'model':<8} {'setting':<9} {'final':>6} {'forget':>7} {'BWT':>7} {'FWT':>7}"
    rows = [header]
    fmt = lambda v: f"{v:7.2f}" if v is not None else f"{'-':>7}"
    for name, result in models.items():
        for setting, summary in result["summary"].items():
            rows.append(f"{name:<8} {setting:<9} {summary['final_mean']:6.2f} "
                        f"{fmt(summary['forgetting'])} {fmt(summary['backward_transfer'])} "
                        f"{fmt(summary['forward_transfer'])}")
    return "\n".join(rows)


class _StopRequest:
    """SIGINT/SIGTERM handlers (main thread only) asking training to stop cleanly.

    The first signal is only noted (``signum``): training stops at the end of the current
    compiled call, after writing a checkpoint. The previous handlers are then put back, so
    a second signal acts at once (SIGINT: KeyboardInterrupt; SIGTERM: exit), without one.
    """

    def __init__(self, install: bool):
        self.signum: int | None = None
        self._install = install and threading.current_thread() is threading.main_thread()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequest":
        if self._install:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        self._put_back()

    def _put_back(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        self.signum = signum
        self._put_back()
        os.write(2, f"\nclser_tf: {signal.Signals(signum).name} received: stopping after the "
                    "current step to write a checkpoint (send it again to stop at once, "
                    "without one).\n".encode())


class _TrainingGuard(keras.callbacks.Callback):
    """Watches ``fit`` at the end of every compiled call (Keras's batch end), in order:

    1. a non-finite loss (the running mean over the epoch, so non-finite from the first
       bad step on) stops training with an error naming the step, and no checkpoint;
    2. a pending SIGINT/SIGTERM writes a checkpoint and stops training;
    3. a checkpoint is written at the first call end at or past every multiple of
       ``checkpoint_every_steps``.

    With ``one_epoch`` it also stops ``fit`` after one epoch: each epoch of a task gets its
    own ``fit``, with its own data order (Keras would iterate one dataset every epoch).
    """

    def __init__(self, session: "_Session"):
        super().__init__()
        self._session = session
        self.one_epoch = False
        self.error: TrainingDiverged | None = None
        self._call_start = 0  # global step before the current compiled call

    def on_train_begin(self, logs=None):
        self._call_start = self._session.step()

    def on_train_batch_end(self, batch, logs=None):
        session = self._session
        step = session.step()
        loss = (logs or {}).get("loss")
        if loss is not None and not finite(loss):
            first = self._call_start + 1
            steps = (f"at global step {step}" if first >= step else
                     f"within global steps {first}-{step}, one compiled call of "
                     f"--steps_per_execution={session.config.steps_per_execution}")
            value = float(np.asarray(loss).reshape(-1)[0])
            self.error = session.checkpointer.diverged(
                f"the loss is {value} {steps} ({session.where(first, step)})")
            self.model.stop_training = True
            return
        self._call_start = step
        if session.stop.signum is not None:
            session.checkpoint()
            self.model.stop_training = True
        elif session.checkpoint_due(step):
            session.checkpoint()

    def on_epoch_end(self, epoch, logs=None):
        if self.one_epoch:
            self.model.stop_training = True


class _TrainSummaries(keras.callbacks.Callback):
    """``fit``'s step logs (running means over the epoch) to TensorBoard at the global step.

    Written at the first compiled-call end at or past every multiple of ``every_steps``.
    Keras's TensorBoard callback numbers compiled calls from 0 in every ``fit`` (here one
    per epoch, and again after a resume), so its steps would restart and its period would
    count calls, not steps.
    """

    def __init__(self, writer: tf.summary.SummaryWriter, every_steps: int):
        super().__init__()
        self._writer, self._every = writer, every_steps
        self._last: int | None = None

    def on_train_begin(self, logs=None):
        if self._last is None:
            self._last = int(self.model.global_step.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.global_step.numpy())
        if step // self._every <= self._last // self._every:
            return
        self._last = step
        with self._writer.as_default(step=step):
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"batch_{name}", tf.reduce_mean(value))


@dataclasses.dataclass
class _Session:
    """What one run's training paths share: settings, data, model, outputs, checkpoints,
    and where the run is (the task in progress and the global step it started at)."""

    config: RunConfig
    benchmark: Benchmark
    model: CLSER
    eval_models: dict[str, keras.Model]
    callbacks: list[keras.callbacks.Callback]
    eval_writer: tf.summary.SummaryWriter | None
    results: dict[str, Any]
    results_path: str
    checkpointer: Checkpointer
    stop: _StopRequest
    run_tick: float  # perf_counter() at the run's start, minus the time run before a resume
    num_tasks: int = 1
    task: int = 0  # the task in progress; num_tasks once every task is trained
    task_start_step: int = 0
    task_tick: float = 0.0  # perf_counter() at the task's start, minus time trained before
    curve: AccuracyCurve | None = None
    written: tuple[int, int] | None = None  # (task, global step) of the newest checkpoint
    guard: _TrainingGuard | None = None

    def save(self) -> None:
        write_json(self.results_path, self.results)

    def step(self) -> int:
        return int(self.model.global_step.numpy())

    def start_task(self, task: int, done_steps: int = 0, trained_s: float = 0.0) -> None:
        """Task ``task`` is in progress, ``done_steps`` steps (``trained_s`` s) into it."""
        self.task = task
        self.task_start_step = self.step() - done_steps
        self.task_tick = time.perf_counter() - trained_s

    def where(self, first: int, last: int) -> str:
        """Global steps first..last as steps of the task in progress."""
        first, last = first - self.task_start_step, last - self.task_start_step
        steps = f"step {last}" if first >= last else f"steps {first}-{last}"
        what = "the stream" if self.benchmark.setting == "general-continual" else (
            f"task {self.task + 1}/{self.num_tasks}")
        return f"{what}, {steps} of it"

    def checkpoint_due(self, step: int) -> bool:
        every, last = self.config.checkpoint_every_steps, self.checkpointer.last_step or 0
        return every > 0 and step // every > last // every

    def checkpoint(self) -> None:
        """Writes a checkpoint of the run as it is now (once per task and global step)."""
        step = self.step()
        if self.written == (self.task, step):
            return
        now = time.perf_counter()
        self.checkpointer.write(
            task=self.task, task_start_step=self.task_start_step, results=self.results,
            extra={"task_train_s": now - self.task_tick, "elapsed_s": now - self.run_tick,
                   "curve": self.curve.state() if self.curve is not None else None},
            config=self.config)
        self.written = (self.task, step)

    def stop_if_requested(self) -> None:
        """After a SIGINT/SIGTERM: writes a checkpoint and raises :class:`Interrupted`."""
        if self.stop.signum is None:
            return
        self.checkpoint()
        raise Interrupted(self.stop.signum, self.step(), self.checkpointer.directory)

    def raise_if_stopped(self) -> None:
        """After a ``fit``: raises what stopped it early (divergence or a signal), if any."""
        if self.guard.error is not None:
            raise self.guard.error
        self.stop_if_requested()


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
    state = (None if config.restart
             else find_run_state(resume_dir or config.checkpoint_dir, config))
    keras.utils.set_random_seed(config.seed)
    benchmark = load_benchmark(config.benchmark, config.data_dir, source=config.source,
                               seed=config.seed, weight_dist=config.weight_dist,
                               gcil_seed=config.gcil_seed)
    with strategy.scope():
        model = build_model(benchmark, config)
        model.optimizer.build(model.trainable_variables)  # restorable; fit then skips it
    checkpointer = Checkpointer(model, config.checkpoint_dir, config.keep_checkpoints)
    if state is not None:
        checkpointer.restore(state)
    _check_workers_agree(strategy, int(model.global_step.numpy()))
    if config.restart:
        checkpointer.clear()
    os.makedirs(config.output_dir, exist_ok=True)
    general = benchmark.setting == "general-continual"
    if state is not None:
        print(_resume_line(state, 1 if general else len(benchmark.tasks), general), flush=True)

    eval_models = {name: getattr(model, f"{name}_model") for name in config.eval_models}
    callbacks, eval_writer, train_writer = [], None, None
    if config.tensorboard:
        tb_dir = os.path.join(config.output_dir, "tensorboard")
        train_writer = tf.summary.create_file_writer(os.path.join(tb_dir, "train"))
        callbacks.append(_TrainSummaries(train_writer, config.log_every_steps))
        eval_writer = tf.summary.create_file_writer(os.path.join(tb_dir, "eval"))
    if state is None:
        results: dict[str, Any] = {
            "config": config.flat(),
            "benchmark": {"name": benchmark.name, "setting": benchmark.setting,
                          **benchmark.details},
        }
    else:
        results = state.results
        results["config"] = config.flat()
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    # Under multi-worker training a signal is not handled: workers would see it at different
    # steps and wait for each other forever. They resume from the last periodic checkpoint.
    with _StopRequest(install=not multi_worker) as stop:
        session = _Session(config, benchmark, model, eval_models, callbacks, eval_writer,
                           results, os.path.join(config.output_dir, "results.json"),
                           checkpointer, stop,
                           run_tick=start - (state.extra["elapsed_s"] if state else 0.0))
        session.guard = _TrainingGuard(session)
        if state is not None:
            session.written = (state.task, state.global_step)
        if general:
            _train_stream(session, state)
        else:
            _train_tasks(session, state)
    for writer in (train_writer, eval_writer):
        if writer is not None:
            writer.flush()
    if config.export_dir:
        model.export_stable(config.export_dir, tflite=config.export_tflite,
                            class_names=benchmark.class_names)
    results["timings"]["total_s"] = time.perf_counter() - session.run_tick
    session.save()
    print(f"results: {session.results_path}" + (f"  export: {config.export_dir}"
                                                if config.export_dir else ""), flush=True)
    return results


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


def _task_evaluator(session: _Session) -> Callable:
    """The evaluator of a task sequence, reporting domain-IL accuracy as ``domain_il``."""
    evaluate = Evaluator(session.eval_models, task_il=session.benchmark.task_il)
    if session.benchmark.setting != "domain-il":
        return evaluate
    return lambda test_sets, classes: {
        name: {"domain_il": accs["class_il"]}
        for name, accs in evaluate(test_sets, classes).items()}


def _train_tasks(session: _Session, state: RunState | None) -> None:
    """Task by task, evaluated per SPEC's protocol (class-IL, domain-IL, GCIL), from
    ``state`` (a checkpoint's) when resuming."""
    config, benchmark, results = session.config, session.benchmark, session.results
    eval_models, eval_writer = session.eval_models, session.eval_writer
    tasks = benchmark.tasks
    task_classes = [list(task.classes) for task in tasks]
    session.num_tasks = len(tasks)

    def classes(first: int, last: int) -> list[list[int]] | None:
        """The task classes of test sets first..last-1, for task-IL (None without it)."""
        return task_classes[first:last] if benchmark.task_il else None

    test_sets = [test_stream(task, config.eval_batch_size) for task in tasks]
    evaluate = _task_evaluator(session)
    if state is None:
        random_init = evaluate(test_sets, classes(0, len(tasks)))
        settings = list(next(iter(random_init.values())).keys())
        results["benchmark"].update(num_tasks=len(tasks), task_classes=task_classes)
        results["models"] = {name: {"random_init": random_init[name],
                                    "before_task": {s: [None] for s in settings},
                                    "matrix": {s: [] for s in settings}}
                             for name in eval_models}
        results["timings"] = {"train_s": [], "eval_s": []}
        first_task, done_steps, trained_s = 0, 0, 0.0
    else:
        settings = list(next(iter(results["models"].values()))["matrix"])
        first_task, done_steps, trained_s = (state.task, state.position,
                                             state.extra["task_train_s"])
    before_done = results["models"][next(iter(eval_models))]["before_task"][settings[0]]
    for t in range(first_task, len(tasks)):
        task = tasks[t]
        if t > 0 and len(before_done) == t:  # accuracy on task t just before training it
            before = evaluate(test_sets[t:t + 1], classes(t, t + 1))
            for name in eval_models:
                for s in settings:
                    results["models"][name]["before_task"][s].append(before[name][s][0])
        session.start_task(t, done_steps, trained_s)
        _fit_task(session, t, task, done_steps)
        done_steps, trained_s = 0, 0.0
        trained = time.perf_counter()
        accs = evaluate(test_sets[:t + 1], classes(0, t + 1))
        results["timings"]["train_s"].append(trained - session.task_tick)
        results["timings"]["eval_s"].append(time.perf_counter() - trained)
        for name in eval_models:
            for s in settings:
                results["models"][name]["matrix"][s].append(accs[name][s])
        if eval_writer is not None:
            with eval_writer.as_default(step=t + 1):
                for name in eval_models:
                    for s in settings:
                        for j, acc in enumerate(accs[name][s]):
                            tf.summary.scalar(f"{name}/{s}/task_{j + 1}", acc)
                        tf.summary.scalar(f"{name}/{s}/mean", sum(accs[name][s]) / (t + 1))
        print(_summary_line(t, len(tasks), accs, time.perf_counter() - session.task_tick),
              flush=True)
        session.save()
        session.start_task(t + 1)
        session.checkpoint()
        session.stop_if_requested()

    for name, result in results["models"].items():
        result["summary"] = {
            s: summarize(result["matrix"][s], result["random_init"][s],
                         result["before_task"][s]) for s in settings}
    headline = HEADLINE_MODEL if HEADLINE_MODEL in eval_models else next(iter(eval_models))
    results["headline"] = {"model": headline, **{
        s: results["models"][headline]["summary"][s]["final_mean"] for s in settings}}
    matrices = {name: result["matrix"] for name, result in results["models"].items()}
    save_figures({
        "accuracy_matrix": accuracy_matrix_figure(matrices, f"{benchmark.name}: accuracy (%)"),
        "accuracy_per_task": accuracy_per_task_figure(matrices, benchmark.name),
    }, config.output_dir, eval_writer, len(tasks))
    print(_final_table(results["models"]), flush=True)


def _fit_task(session: _Session, t: int, task: Task, done_steps: int) -> None:
    """Trains task ``t`` from ``done_steps`` steps into it, one ``fit`` per epoch (epoch
    ``e`` of the task has its own data order, from the run's seed, ``t`` and ``e``).

    A task with fewer samples than one batch (a GCIL phase can be that small) gets no step,
    as incomplete batches are dropped.
    """
    config = session.config
    if len(task.y_train) < config.batch_size:
        print(f"task {t + 1}: {len(task.y_train)} training samples, fewer than one batch of "
              f"{config.batch_size}: no training step (incomplete batches are dropped, as in "
              "the reference).", flush=True)
        return
    first_epoch, first_batch = divmod(done_steps, len(task.y_train) // config.batch_size)
    session.guard.one_epoch = True
    for epoch in range(first_epoch, config.epochs):
        session.stop_if_requested()
        stream = train_stream(task, config.batch_size, seed=config.seed * 1000 + t, epoch=epoch,
                              start_batch=first_batch if epoch == first_epoch else 0)
        session.model.fit(stream, epochs=config.epochs, initial_epoch=epoch,
                          verbose=config.verbose, callbacks=[*session.callbacks, session.guard],
                          shuffle=False)  # the stream is shuffled with the run's seed
        session.raise_if_stopped()


def _train_stream(session: _Session, state: RunState | None) -> None:
    """One ``fit`` over the whole general-continual stream, then every model on every digit.

    No task boundary reaches the model. An :class:`AccuracyCurve` evaluates the models on
    a fixed held-out slice every ``eval_every_steps`` steps. A checkpoint's ``state``
    resumes the stream (and the curve) where it stopped.
    """
    config, benchmark, results = session.config, session.benchmark, session.results
    done_steps = state.position if state is not None else 0
    stream, schedule = general_stream(benchmark, config.batch_size, seed=config.seed,
                                      start_batch=done_steps)
    num_steps = int(len(schedule.batch_sizes))
    if state is None:
        results["benchmark"]["stream"] = {
            "batch_size": config.batch_size, "num_samples": int(len(schedule.digits)),
            "num_steps": num_steps}
    evaluate = Evaluator(session.eval_models, task_il=False)
    curve_set = held_out_slice(benchmark.tasks, config.curve_samples, config.eval_batch_size)
    curve = AccuracyCurve(
        lambda: {name: accs["class_il"][0] for name, accs in evaluate([curve_set], None).items()},
        config.eval_every_steps, session.eval_writer,
        state=state.extra["curve"] if state is not None else None)
    session.curve = curve
    if state is None or state.task == 0:
        session.start_task(0, done_steps, state.extra["task_train_s"] if state else 0.0)
        session.stop_if_requested()
        if done_steps < num_steps:
            session.guard.one_epoch = False
            session.model.fit(stream, epochs=1, verbose=config.verbose,
                              callbacks=[*session.callbacks, curve, session.guard],
                              shuffle=False)
            session.raise_if_stopped()
        else:  # resumed at the stream's last step: only the curve's end point is missing
            curve.set_model(session.model)
            curve.on_train_end()
        results["timings"] = {"train_s": time.perf_counter() - session.task_tick - curve.seconds,
                              "curve_eval_s": curve.seconds}
        session.start_task(1)
        session.checkpoint()
        session.stop_if_requested()
    trained = time.perf_counter()
    per_digit = evaluate([test_stream(task, config.eval_batch_size)
                          for task in benchmark.tasks], None)
    counts = np.array([len(task.y_test) for task in benchmark.tasks])
    results["curve"] = {"samples": min(config.curve_samples, int(counts.sum())),
                        "steps": curve.steps}
    results["models"] = {
        name: {"accuracy": float(np.dot(accs["class_il"], counts) / counts.sum()),
               "per_digit": accs["class_il"], "curve": curve.accuracy[name]}
        for name, accs in per_digit.items()}
    results["timings"]["eval_s"] = time.perf_counter() - trained
    headline = HEADLINE_MODEL if HEADLINE_MODEL in session.eval_models else next(
        iter(session.eval_models))
    results["headline"] = {"model": headline,
                           "accuracy": results["models"][headline]["accuracy"]}
    if session.eval_writer is not None:
        with session.eval_writer.as_default(step=curve.steps[-1]):
            for name, result in results["models"].items():
                tf.summary.scalar(f"{name}/accuracy", result["accuracy"])
    save_figures({"accuracy_curve": accuracy_curve_figure(
        curve.steps, {name: result["curve"] for name, result in results["models"].items()},
        f"{benchmark.name}: accuracy along the stream")},
        config.output_dir, session.eval_writer, curve.steps[-1])
    print(f"{'model':<8} {'accuracy':>8}  per digit", flush=True)
    for name, result in results["models"].items():
        digits = " ".join(f"{acc:5.1f}" for acc in result["per_digit"])
        print(f"{name:<8} {result['accuracy']:8.2f}  {digits}", flush=True)
