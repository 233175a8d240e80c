"""The two training protocols: a task sequence (class-IL, domain-IL, GCIL) evaluated per
SPEC's protocol, and one general-continual stream (mnist-360) with an accuracy curve."""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from clser_tf.benchmarks import Task
from clser_tf.checkpoint import RunState
from clser_tf.config import RunConfig
from clser_tf.curve import AccuracyCurve
from clser_tf.evaluation import Evaluator, task_evaluator
from clser_tf.joint import joint_task
from clser_tf.figures import (accuracy_curve_figure, accuracy_matrix_figure,
                              accuracy_per_task_figure, save_figures)
from clser_tf.reporting import final_table, stream_table, summary_line
from clser_tf.results import (StreamModelResults, StreamResults, TaskSequenceResults,
                              benchmark_record)
from clser_tf.session import Session
from clser_tf.streams import general_stream, held_out_slice, test_stream, train_stream
from clser_tf.tensorboard_logs import write_task_summaries


def train_task_sequence(session: Session, state: RunState | None) -> None:
    """Task by task, evaluated per SPEC's protocol (class-IL, domain-IL, GCIL), from
    ``state`` (a checkpoint's) when resuming."""
    config, benchmark, variant = session.config, session.benchmark, session.variant
    tasks = benchmark.tasks
    task_classes = [list(task.classes) for task in tasks]
    # The joint variant trains one task of every task's data, evaluated on each test set.
    train_tasks = (joint_task(tasks),) if variant.joint else tasks
    seen = (lambda t: len(tasks)) if variant.joint else (lambda t: t + 1)

    def classes(first: int, last: int) -> list[list[int]] | None:
        """The task classes of test sets first..last-1, for task-IL (None without it)."""
        return task_classes[first:last] if benchmark.task_il else None

    test_sets = [test_stream(task, config.eval_batch_size) for task in tasks]
    evaluate = task_evaluator(session.eval_models, benchmark)
    if state is None:
        results = TaskSequenceResults.start(
            config.flat(), benchmark_record(benchmark), task_classes,
            evaluate(test_sets, classes(0, len(tasks))))
        first_task, done_steps, trained_s = 0, 0, 0.0
    else:
        results = TaskSequenceResults.from_json({**state.results, "config": config.flat()})
        first_task, done_steps, trained_s = (state.task, state.position,
                                             state.extra["task_train_s"])
    session.results = results
    for t in range(first_task, len(train_tasks)):
        if results.owes_before_task(t):  # accuracy on task t just before training it
            results.add_before_task(evaluate(test_sets[t:t + 1], classes(t, t + 1)))
        session.start_task(t, _task_steps(config, train_tasks[t]), done_steps, trained_s)
        _fit_task(session, t, train_tasks[t], done_steps)
        done_steps, trained_s = 0, 0.0
        trained = time.perf_counter()
        accs = evaluate(test_sets[:seen(t)], classes(0, seen(t)))
        results.add_task(accs, trained - session.position.tick, time.perf_counter() - trained)
        if session.eval_writer is not None:
            write_task_summaries(session.eval_writer, t, accs)
        print(summary_line(t, len(train_tasks), accs,
                           time.perf_counter() - session.position.tick), flush=True)
        session.save()
        session.start_task(t + 1)
        session.checkpoint()
        session.stop_if_requested()

    _finish_task_sequence(session)


def _task_steps(config: RunConfig, task: Task) -> int:
    """The training steps of ``task``: every epoch's full batches."""
    return len(task.y_train) // config.batch_size * config.epochs


def _finish_task_sequence(session: Session) -> None:
    """The summaries and headline of a trained task sequence, its figures and table."""
    results = session.results
    results.finish(session.variant.reported_model, joint=session.variant.joint)
    name, joint = session.benchmark.name, session.variant.joint
    save_figures({
        "accuracy_matrix": accuracy_matrix_figure(results.matrices(), f"{name}: accuracy (%)",
                                                  joint),
        "accuracy_per_task": accuracy_per_task_figure(results.matrices(), name, joint),
    }, session.config.output_dir, session.eval_writer, len(session.benchmark.tasks))
    print(final_table(results.to_json()["models"]), flush=True)


def _fit_task(session: Session, t: int, task: Task, done_steps: int) -> None:
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


def train_general_stream(session: Session, state: RunState | None) -> None:
    """One ``fit`` over the whole general-continual stream, then every model on every digit.

    No task boundary reaches the model. An :class:`AccuracyCurve` evaluates the models on
    a fixed held-out slice every ``eval_every_steps`` steps. A checkpoint's ``state``
    resumes the stream (and the curve) where it stopped.
    """
    config, benchmark = session.config, session.benchmark
    done_steps = state.position if state is not None else 0
    stream, schedule = general_stream(benchmark, config.batch_size, seed=config.seed,
                                      start_batch=done_steps)
    num_steps = int(len(schedule.batch_sizes))
    if state is None:
        results = StreamResults(config.flat(), {**benchmark_record(benchmark), "stream": {
            "batch_size": config.batch_size, "num_samples": int(len(schedule.digits)),
            "num_steps": num_steps}})
    else:
        results = StreamResults.from_json({**state.results, "config": config.flat()})
    session.results = results
    evaluate = Evaluator(session.eval_models, task_il=False)
    curve_set = held_out_slice(benchmark.tasks, config.curve_samples, config.eval_batch_size)
    curve = AccuracyCurve(
        lambda: {name: accs["class_il"][0] for name, accs in evaluate([curve_set], None).items()},
        config.eval_every_steps, session.eval_writer,
        state=state.extra["curve"] if state is not None else None)
    session.curve = curve
    if state is None or state.task == 0:
        session.start_task(0, num_steps, done_steps,
                           state.extra["task_train_s"] if state else 0.0)
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
        results.timings = {
            "train_s": time.perf_counter() - session.position.tick - curve.seconds,
            "curve_eval_s": curve.seconds}
        session.start_task(1)
        session.checkpoint()
        session.stop_if_requested()
    _evaluate_stream(session, evaluate, curve)


def _evaluate_stream(session: Session, evaluate: Evaluator, curve: AccuracyCurve) -> None:
    """Every model on every digit after the stream: results, figure and table."""
    config, benchmark, results = session.config, session.benchmark, session.results
    trained = time.perf_counter()
    per_digit = evaluate([test_stream(task, config.eval_batch_size)
                          for task in benchmark.tasks], None)
    counts = np.array([len(task.y_test) for task in benchmark.tasks])
    results.finish(
        {name: StreamModelResults(float(np.dot(accs["class_il"], counts) / counts.sum()),
                                  accs["class_il"], curve.accuracy[name])
         for name, accs in per_digit.items()},
        {"samples": min(config.curve_samples, int(counts.sum())), "steps": curve.steps},
        session.variant.reported_model)
    results.timings["eval_s"] = time.perf_counter() - trained
    if session.eval_writer is not None:
        with session.eval_writer.as_default(step=curve.steps[-1]):
            for name, result in results.models.items():
                tf.summary.scalar(f"{name}/accuracy", result.accuracy)
    save_figures({"accuracy_curve": accuracy_curve_figure(
        curve.steps, {name: result.curve for name, result in results.models.items()},
        f"{benchmark.name}: accuracy along the stream")},
        config.output_dir, session.eval_writer, curve.steps[-1])
    print(stream_table(results.to_json()["models"]), flush=True)
