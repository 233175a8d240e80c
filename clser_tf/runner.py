"""One experiment: benchmark -> data streams -> ``fit`` -> evaluation -> results.

Task sequences (class-IL, domain-IL, GCIL) get one ``fit`` per task and SPEC's evaluation
protocol: a random-initialised evaluation of every task (for forward transfer), an
evaluation of task t just before training it, and after every task an evaluation of every
model on every task seen so far. The general-continual stream (mnist-360) gets one ``fit``
over the whole stream with an accuracy curve along it, then a final evaluation of every
model on every digit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
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
from clser_tf.config import RunConfig
from clser_tf.curve import AccuracyCurve
from clser_tf.distribution import is_chief
from clser_tf.evaluation import Evaluator, summarize
from clser_tf.heatmap import accuracy_heatmap, heatmap_png
from clser_tf.model import CLSER

HEADLINE_MODEL = "stable"


def build_model(benchmark: Benchmark, config: RunConfig) -> CLSER:
    """The benchmark's backbone wrapped in a compiled ``CLSER`` with the run's settings."""
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    if (config.backbone or benchmark.backbone) == "mlp":
        backbone = backbones.mlp(benchmark.input_shape, benchmark.num_classes)
    else:
        backbone = backbones.resnet18(benchmark.input_shape, benchmark.num_classes,
                                      benchmark.mean, benchmark.std,
                                      base_filters=config.resnet_base_filters)
    model = CLSER(
        backbone, buffer_size=config.buffer_size, replay_batch_size=config.replay_batch_size,
        reg_weight=config.reg_weight,
        stable_alpha=config.stable_alpha, stable_update_freq=config.stable_update_freq,
        plastic_alpha=config.plastic_alpha, plastic_update_freq=config.plastic_update_freq,
        replay_augment=RandomCropFlip() if benchmark.augment else None,
        augment_current_batch=benchmark.augment, seed=config.seed,
        fused_forward=config.fused_forward)
    model.compile(optimizer=keras.optimizers.SGD(config.lr),
                  steps_per_execution=config.steps_per_execution)
    return model


def _write_json(path: str, payload: dict) -> None:
    """Writes ``payload`` atomically (a temporary file renamed over ``path``)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, path)


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


@dataclasses.dataclass
class _Session:
    """What one run's training paths share: settings, data, model, outputs."""

    config: RunConfig
    benchmark: Benchmark
    model: CLSER
    eval_models: dict[str, keras.Model]
    callbacks: list[keras.callbacks.Callback]
    eval_writer: tf.summary.SummaryWriter | None
    results: dict[str, Any]
    results_path: str

    def save(self) -> None:
        _write_json(self.results_path, self.results)


def run(config: RunConfig,
        strategy: tf.distribute.Strategy | None = None) -> dict[str, Any]:
    """Runs the experiment and returns what it writes to ``<output_dir>/results.json``.

    Under a multi-worker ``strategy`` every worker trains and evaluates, and only the
    chief writes to ``output_dir``/``export_dir``: the others write into a private
    temporary folder (a SavedModel export needs every worker) that is removed at the end.
    """
    strategy = strategy or tf.distribute.get_strategy()
    if is_chief(strategy):
        return _run(config, strategy)
    private = tempfile.mkdtemp(prefix="clser_tf_worker_")
    try:
        return _run(dataclasses.replace(
            config, output_dir=private, tensorboard=False,
            export_dir=os.path.join(private, "export") if config.export_dir else None),
            strategy)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _run(config: RunConfig, strategy: tf.distribute.Strategy) -> dict[str, Any]:
    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    benchmark = load_benchmark(config.benchmark, config.data_dir, source=config.source,
                               seed=config.seed, weight_dist=config.weight_dist,
                               gcil_seed=config.gcil_seed)
    with strategy.scope():
        model = build_model(benchmark, config)
    os.makedirs(config.output_dir, exist_ok=True)

    eval_models = {name: getattr(model, f"{name}_model") for name in config.eval_models}
    callbacks, eval_writer = [], None
    if config.tensorboard:
        tb_dir = os.path.join(config.output_dir, "tensorboard")
        callbacks.append(keras.callbacks.TensorBoard(
            os.path.join(tb_dir, "train"), update_freq=config.log_every_steps))
        eval_writer = tf.summary.create_file_writer(os.path.join(tb_dir, "eval"))
    results: dict[str, Any] = {
        "config": {k: v for k, v in vars(config).items()},
        "benchmark": {"name": benchmark.name, "setting": benchmark.setting,
                      **benchmark.details},
    }
    session = _Session(config, benchmark, model, eval_models, callbacks, eval_writer, results,
                       os.path.join(config.output_dir, "results.json"))
    if benchmark.setting == "general-continual":
        _train_stream(session)
    else:
        _train_tasks(session)
    if eval_writer is not None:
        eval_writer.flush()
    if config.export_dir:
        model.export_stable(config.export_dir)
    results["timings"]["total_s"] = time.perf_counter() - start
    session.save()
    print(f"results: {session.results_path}" + (f"  export: {config.export_dir}"
                                                if config.export_dir else ""), flush=True)
    return results


def _diverged(history: keras.callbacks.History, what: str) -> bool:
    """Whether the training loss went non-finite; says so loudly (the reference is silent)."""
    if np.isfinite(history.history["loss"]).all():
        return False
    print(f"warning: the training loss of {what} is not finite: the model diverged, and "
          "every accuracy from here on is that of a diverged model.", flush=True)
    return True


def _task_evaluator(session: _Session) -> Callable:
    """The evaluator of a task sequence, reporting domain-IL accuracy as ``domain_il``."""
    evaluate = Evaluator(session.eval_models, task_il=session.benchmark.task_il)
    if session.benchmark.setting != "domain-il":
        return evaluate
    return lambda test_sets, classes: {
        name: {"domain_il": accs["class_il"]}
        for name, accs in evaluate(test_sets, classes).items()}


def _train_tasks(session: _Session) -> None:
    """One ``fit`` per task, evaluated per SPEC's protocol (class-IL, domain-IL, GCIL)."""
    config, benchmark, results = session.config, session.benchmark, session.results
    eval_models, eval_writer = session.eval_models, session.eval_writer
    tasks = benchmark.tasks
    task_classes = [list(task.classes) for task in tasks]

    def classes(first: int, last: int) -> list[list[int]] | None:
        """The task classes of test sets first..last-1, for task-IL (None without it)."""
        return task_classes[first:last] if benchmark.task_il else None

    test_sets = [test_stream(task, config.eval_batch_size) for task in tasks]
    evaluate = _task_evaluator(session)
    random_init = evaluate(test_sets, classes(0, len(tasks)))
    settings = list(next(iter(random_init.values())).keys())
    results["benchmark"].update(num_tasks=len(tasks), task_classes=task_classes)
    results["models"] = {name: {"random_init": random_init[name],
                                "before_task": {s: [None] for s in settings},
                                "matrix": {s: [] for s in settings}}
                         for name in eval_models}
    results["timings"] = {"train_s": [], "eval_s": []}
    results["diverged_at_task"] = None
    for t, task in enumerate(tasks):
        if t > 0:  # accuracy on task t just before training it, for forward transfer
            before = evaluate(test_sets[t:t + 1], classes(t, t + 1))
            for name in eval_models:
                for s in settings:
                    results["models"][name]["before_task"][s].append(before[name][s][0])
        tick = time.perf_counter()
        _fit_task(session, t, task)
        trained = time.perf_counter()
        accs = evaluate(test_sets[:t + 1], classes(0, t + 1))
        results["timings"]["train_s"].append(trained - tick)
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
        print(_summary_line(t, len(tasks), accs, time.perf_counter() - tick), flush=True)
        session.save()

    for name, result in results["models"].items():
        result["summary"] = {
            s: summarize(result["matrix"][s], result["random_init"][s],
                         result["before_task"][s]) for s in settings}
    headline = HEADLINE_MODEL if HEADLINE_MODEL in eval_models else next(iter(eval_models))
    results["headline"] = {"model": headline, **{
        s: results["models"][headline]["summary"][s]["final_mean"] for s in settings}}
    matrix = results["models"][headline]["matrix"][settings[0]]
    title = f"{benchmark.name} {headline} {settings[0].replace('_', '-')} accuracy (%)"
    with open(os.path.join(config.output_dir, "accuracy_matrix.png"), "wb") as f:
        f.write(heatmap_png(matrix, title))
    if eval_writer is not None:
        with eval_writer.as_default(step=len(tasks)):
            tf.summary.image(f"{headline}/{settings[0]}_matrix",
                             accuracy_heatmap(matrix, title)[None])
    print(_final_table(results["models"]), flush=True)


def _fit_task(session: _Session, t: int, task: Task) -> None:
    """Trains task ``t``, noting a diverged loss; a task with fewer samples than one batch
    (a GCIL phase can be that small) gets no step, as incomplete batches are dropped."""
    config, results = session.config, session.results
    if len(task.y_train) < config.batch_size:
        print(f"task {t + 1}: {len(task.y_train)} training samples, fewer than one batch of "
              f"{config.batch_size}: no training step (incomplete batches are dropped, as in "
              "the reference).", flush=True)
        return
    history = session.model.fit(
        train_stream(task, config.batch_size, seed=config.seed * 1000 + t),
        epochs=config.epochs, verbose=config.verbose, callbacks=session.callbacks,
        shuffle=False)  # the stream shuffles with the run's seed
    if results["diverged_at_task"] is None and _diverged(history, f"task {t + 1}"):
        results["diverged_at_task"] = t + 1


def _train_stream(session: _Session) -> None:
    """One ``fit`` over the whole general-continual stream, then every model on every digit.

    No task boundary reaches the model. An :class:`AccuracyCurve` evaluates the models on
    a fixed held-out slice every ``eval_every_steps`` steps.
    """
    config, benchmark, results = session.config, session.benchmark, session.results
    stream, schedule = general_stream(benchmark, config.batch_size, seed=config.seed)
    results["benchmark"]["stream"] = {
        "batch_size": config.batch_size, "num_samples": int(len(schedule.digits)),
        "num_steps": int(len(schedule.batch_sizes))}
    evaluate = Evaluator(session.eval_models, task_il=False)
    curve_set = held_out_slice(benchmark.tasks, config.curve_samples, config.eval_batch_size)
    curve = AccuracyCurve(
        lambda: {name: accs["class_il"][0] for name, accs in evaluate([curve_set], None).items()},
        config.eval_every_steps, session.eval_writer)
    tick = time.perf_counter()
    history = session.model.fit(stream, epochs=1, verbose=config.verbose,
                                callbacks=[*session.callbacks, curve], shuffle=False)
    results["diverged"] = _diverged(history, "the stream")
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
    results["timings"] = {"train_s": trained - tick - curve.seconds,
                          "curve_eval_s": curve.seconds,
                          "eval_s": time.perf_counter() - trained}
    headline = HEADLINE_MODEL if HEADLINE_MODEL in session.eval_models else next(
        iter(session.eval_models))
    results["headline"] = {"model": headline,
                           "accuracy": results["models"][headline]["accuracy"]}
    if session.eval_writer is not None:
        with session.eval_writer.as_default(step=curve.steps[-1]):
            for name, result in results["models"].items():
                tf.summary.scalar(f"{name}/accuracy", result["accuracy"])
    print(f"{'model':<8} {'accuracy':>8}  per digit", flush=True)
    for name, result in results["models"].items():
        digits = " ".join(f"{acc:5.1f}" for acc in result["per_digit"])
        print(f"{name:<8} {result['accuracy']:8.2f}  {digits}", flush=True)
