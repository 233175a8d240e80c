"""One experiment: benchmark -> data streams -> ``fit`` per task -> evaluation -> results.

Follows SPEC's evaluation protocol: a random-initialised evaluation of every task (for
forward transfer), an evaluation of task t just before training it, and after every task
an evaluation of every model on every task seen so far.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import keras
import tensorflow as tf

from clser_tf import backbones
from clser_tf.augment import RandomCropFlip
from clser_tf.benchmarks import Benchmark, load_benchmark, test_stream, train_stream
from clser_tf.config import RunConfig
from clser_tf.evaluation import Evaluator, summarize
from clser_tf.heatmap import accuracy_heatmap, heatmap_png
from clser_tf.model import CLSER

HEADLINE_MODEL = "stable"


def build_model(benchmark: Benchmark, config: RunConfig) -> CLSER:
    """The benchmark's backbone wrapped in a compiled ``CLSER`` with the run's settings."""
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


def run(config: RunConfig) -> dict[str, Any]:
    """Runs the experiment and returns what it writes to ``<output_dir>/results.json``."""
    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    benchmark = load_benchmark(config.benchmark, config.data_dir)
    model = build_model(benchmark, config)
    os.makedirs(config.output_dir, exist_ok=True)

    tasks = benchmark.tasks
    task_classes = [list(task.classes) for task in tasks]
    test_sets = [test_stream(task, config.eval_batch_size) for task in tasks]
    eval_models = {name: getattr(model, f"{name}_model") for name in config.eval_models}
    callbacks, eval_writer = [], None
    if config.tensorboard:
        tb_dir = os.path.join(config.output_dir, "tensorboard")
        callbacks.append(keras.callbacks.TensorBoard(
            os.path.join(tb_dir, "train"), update_freq=config.log_every_steps))
        eval_writer = tf.summary.create_file_writer(os.path.join(tb_dir, "eval"))

    evaluate = Evaluator(eval_models, task_il=True)
    random_init = evaluate(test_sets, task_classes)
    settings = list(next(iter(random_init.values())).keys())
    results: dict[str, Any] = {
        "config": {k: v for k, v in vars(config).items()},
        "benchmark": {"name": benchmark.name, "num_tasks": len(tasks),
                      "task_classes": task_classes},
        "models": {name: {"random_init": random_init[name],
                          "before_task": {s: [None] for s in settings},
                          "matrix": {s: [] for s in settings}}
                   for name in eval_models},
        "timings": {"train_s": [], "eval_s": []},
    }
    results_path = os.path.join(config.output_dir, "results.json")
    for t, task in enumerate(tasks):
        if t > 0:  # accuracy on task t just before training it, for forward transfer
            before = evaluate(test_sets[t:t + 1], task_classes[t:t + 1])
            for name in eval_models:
                for s in settings:
                    results["models"][name]["before_task"][s].append(before[name][s][0])
        tick = time.perf_counter()
        model.fit(train_stream(task, config.batch_size, seed=config.seed * 1000 + t),
                  epochs=config.epochs, verbose=config.verbose, callbacks=callbacks,
                  shuffle=False)  # the stream shuffles with the run's seed
        trained = time.perf_counter()
        accs = evaluate(test_sets[:t + 1], task_classes[:t + 1])
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
        _write_json(results_path, results)

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
        eval_writer.flush()
    if config.export_dir:
        model.export_stable(config.export_dir)
    results["timings"]["total_s"] = time.perf_counter() - start
    _write_json(results_path, results)
    print(_final_table(results["models"]), flush=True)
    print(f"results: {results_path}" + (f"  export: {config.export_dir}"
                                        if config.export_dir else ""), flush=True)
    return results
