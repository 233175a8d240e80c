"""The command line: absl flag definitions and their validation into a ``RunConfig``.

The defaults are the default benchmark (seq-fmnist, buffer 200, SPEC's seq-mnist row),
so running with no flagfile runs it. Every invalid value is reported as one line naming
the flag, the value and what is allowed, before any data is read or file written.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from absl import flags

from clser_tf.distribution import STRATEGIES
from clser_tf.benchmarks import (BENCHMARKS, GCIL, GENERAL_CONTINUAL, SOURCE_BENCHMARKS,
                                 SOURCES)
from clser_tf.gcil import WEIGHT_DISTS

MODEL_NAMES = ("working", "plastic", "stable")

flags.DEFINE_enum("benchmark", "seq-fmnist", list(BENCHMARKS), "Benchmark to run.")
flags.DEFINE_string("data_dir", None, "Where the benchmark's files are (see README); "
                    "unset: the default location or tensorflow-datasets.")
flags.DEFINE_integer("seed", 0, "Seed of the model's random draws and the data order.")
flags.DEFINE_string("output_dir", None, "Results, TensorBoard logs, heat-map and export go "
                    "here (default: runs/<benchmark>[-<source>][-<weight_dist>]-buf<buffer_size>"
                    "-seed<seed>).")
flags.DEFINE_integer("buffer_size", 200, "Reservoir buffer capacity.")
flags.DEFINE_float("lr", 0.03, "SGD learning rate (no momentum, no weight decay).")
flags.DEFINE_integer("batch_size", 10, "Current-task batch size.")
flags.DEFINE_integer("replay_batch_size", 128, "Replay batch size (reference: minibatch_size).")
flags.DEFINE_integer("epochs", 1, "Epochs per task.")
flags.DEFINE_float("reg_weight", 2.0, "λ: weight of the consistency loss.")
flags.DEFINE_float("stable_alpha", 0.99, "EMA decay cap of the stable model, in [0, 1).")
flags.DEFINE_float("stable_update_freq", 0.9, "Update probability of the stable model.")
flags.DEFINE_float("plastic_alpha", 0.99, "EMA decay cap of the plastic model, in [0, 1).")
flags.DEFINE_float("plastic_update_freq", 1.0, "Update probability of the plastic model.")
flags.DEFINE_list("eval_models", list(MODEL_NAMES), "Models evaluated after each task.")
flags.DEFINE_integer("eval_batch_size", 1000, "Batch size of evaluation.")
flags.DEFINE_string("export_dir", None, "SavedModel of the stable model "
                    "(default: <output_dir>/export); empty string: no export.")
flags.DEFINE_boolean("export_tflite", False, "Also write <export_dir>/stable.tflite: the "
                     "stable model for TFLite (float32), with the SavedModel's signature.")
flags.DEFINE_boolean("tensorboard", True, "Write TensorBoard logs under <output_dir>/tensorboard.")
flags.DEFINE_integer("log_every_steps", 100, "TensorBoard logging period of the step metrics.")
flags.DEFINE_integer("steps_per_execution", 50, "Train steps per compiled call (speed only).")
flags.DEFINE_boolean("fused_forward", True, "One working-model forward over the merged batch "
                     "(False: the reference's extra forward over the replay batch).")
flags.DEFINE_enum("mixed_precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                  "Keras dtype policy of the backbones; the buffer, EMA weights and losses "
                  "stay float32 (mixed_float16 adds loss scaling).")
flags.DEFINE_enum("strategy", "default", list(STRATEGIES),
                  "tf.distribute strategy: default (one device), mirrored (every local GPU, "
                  "else every logical CPU), multi_worker (cluster from TF_CONFIG; only the "
                  "chief writes files).")
flags.DEFINE_enum("backbone", None, ["mlp", "resnet18"],
                  "Override the benchmark's backbone (default: MLP for the MNIST family, "
                  "ResNet-18 otherwise).")
flags.DEFINE_integer("resnet_base_filters", 64, "Filters of the ResNet-18's first stage.")
flags.DEFINE_integer("verbose", 1, "Keras fit verbosity: 0 silent, 1 progress bar, 2 one line.")
flags.DEFINE_enum("source", None, list(SOURCES),
                  f"Data of {', '.join(SOURCE_BENCHMARKS)}: mnist (default; IDX files in "
                  "--data_dir or tensorflow-datasets) or fmnist (read as seq-fmnist reads it).")
flags.DEFINE_enum("weight_dist", "uniform", list(WEIGHT_DISTS),
                  "gcil-cifar100: class weights of the phase sampler (longtail: 0.984^class).")
flags.DEFINE_integer("gcil_seed", 1993, "gcil-cifar100: seed of the phase sampler.")
flags.DEFINE_integer("eval_every_steps", 100, "mnist-360: accuracy-curve period in steps "
                     "(a multiple of --steps_per_execution).")
flags.DEFINE_integer("curve_samples", 1000, "mnist-360: size of the fixed held-out test "
                     "slice of the accuracy curve.")
flags.DEFINE_string("checkpoint_dir", None, "Checkpoints of the run (default: "
                    "<output_dir>/checkpoints). Running the same command again resumes from "
                    "the newest one.")
flags.DEFINE_integer("checkpoint_every_steps", None, "Also checkpoint every this many steps "
                     "within a task (a multiple of --steps_per_execution; 0: only after each "
                     "task; default: 20 x --steps_per_execution).")
flags.DEFINE_integer("keep_checkpoints", 2, "How many of the newest checkpoints to keep.")
flags.DEFINE_boolean("restart", False, "Start over: remove the checkpoints in --checkpoint_dir "
                     "instead of resuming from them.")
flags.DEFINE_boolean("deterministic", True, "TensorFlow op determinism "
                     "(tf.config.experimental.enable_op_determinism): a resumed run is "
                     "bit-identical to an uninterrupted one.")

# Flags that only some benchmarks read; setting one for another benchmark is an error.
_BENCHMARK_FLAGS = {"source": SOURCE_BENCHMARKS, "weight_dist": GCIL, "gcil_seed": GCIL,
                    "eval_every_steps": GENERAL_CONTINUAL, "curve_samples": GENERAL_CONTINUAL}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of one run, validated."""

    benchmark: str
    data_dir: str | None
    seed: int
    output_dir: str
    buffer_size: int
    lr: float
    batch_size: int
    replay_batch_size: int
    epochs: int
    reg_weight: float
    stable_alpha: float
    stable_update_freq: float
    plastic_alpha: float
    plastic_update_freq: float
    eval_models: tuple[str, ...]
    eval_batch_size: int
    export_dir: str | None
    export_tflite: bool
    tensorboard: bool
    log_every_steps: int
    steps_per_execution: int
    fused_forward: bool
    mixed_precision: str
    strategy: str
    backbone: str | None
    resnet_base_filters: int
    verbose: int
    source: str | None
    weight_dist: str
    gcil_seed: int
    eval_every_steps: int
    curve_samples: int
    checkpoint_dir: str
    checkpoint_every_steps: int  # 0: only at task boundaries
    keep_checkpoints: int
    restart: bool
    deterministic: bool


def _require(ok: bool, flag: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"--{flag}={value!r} is invalid: {allowed}.")


def _check_writable_dir(flag: str, path: str) -> None:
    """``--flag=path`` must be a writable directory (created if missing)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--{flag}={path!r} is invalid: it is a file, not a directory.")
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(os.path.abspath(parent))
    if not os.path.isdir(parent):
        raise ValueError(f"--{flag}={path!r} is invalid: {parent!r} is a file, not a directory.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--{flag}={path!r} is invalid: {parent!r} is not writable.")


def config_from_flags(values: flags.FlagValues) -> RunConfig:
    """Validates the parsed flags; raises ``ValueError`` with one line on the first bad one."""
    for name, benchmarks in _BENCHMARK_FLAGS.items():
        _require(not values[name].present or values.benchmark in benchmarks, name,
                 values[name].value, f"only {', '.join(benchmarks)} read it, not "
                 f"--benchmark={values.benchmark}")
    for name in ("buffer_size", "batch_size", "replay_batch_size", "epochs",
                 "eval_batch_size", "log_every_steps", "steps_per_execution",
                 "resnet_base_filters", "eval_every_steps", "curve_samples"):
        _require(values[name].value >= 1, name, values[name].value, "it must be >= 1")
    _require(math.isfinite(values.lr) and values.lr > 0, "lr", values.lr,
             "it must be a finite number > 0")
    _require(math.isfinite(values.reg_weight) and values.reg_weight >= 0, "reg_weight",
             values.reg_weight, "it must be a finite number >= 0")
    for name in ("stable_alpha", "plastic_alpha"):
        _require(0 <= values[name].value < 1, name, values[name].value, "it must be in [0, 1)")
    for name in ("stable_update_freq", "plastic_update_freq"):
        _require(0 <= values[name].value <= 1, name, values[name].value, "it must be in [0, 1]")
    for name in ("seed", "gcil_seed"):
        _require(0 <= values[name].value < 2**31, name, values[name].value,
                 "it must be in [0, 2**31)")
    _require(values.verbose in (0, 1, 2), "verbose", values.verbose, "it must be 0, 1 or 2")
    for name in values.eval_models:
        _require(name in MODEL_NAMES, "eval_models", ",".join(values.eval_models),
                 f"each entry must be one of {', '.join(MODEL_NAMES)}")
    _require(len(values.eval_models) > 0, "eval_models", "", "name at least one model")
    if values.benchmark in GENERAL_CONTINUAL:
        _require(values.epochs == 1, "epochs", values.epochs,
                 f"{values.benchmark} is one pass over its stream: it must be 1")
        _require(values.eval_every_steps % values.steps_per_execution == 0, "eval_every_steps",
                 values.eval_every_steps, "it must be a multiple of --steps_per_execution="
                 f"{values.steps_per_execution}")
    if values.data_dir is not None:
        _require(os.path.isdir(values.data_dir), "data_dir", values.data_dir,
                 "it must be an existing directory")
        _require(os.access(values.data_dir, os.R_OK | os.X_OK), "data_dir", values.data_dir,
                 "it must be a readable directory")
    checkpoint_every_steps = (20 * values.steps_per_execution
                              if values.checkpoint_every_steps is None
                              else values.checkpoint_every_steps)
    _require(checkpoint_every_steps >= 0 and
             checkpoint_every_steps % values.steps_per_execution == 0, "checkpoint_every_steps",
             checkpoint_every_steps, "it must be 0 (only after each task) or a multiple of "
             f"--steps_per_execution={values.steps_per_execution}")
    _require(values.keep_checkpoints >= 1, "keep_checkpoints", values.keep_checkpoints,
             "it must be >= 1")
    run_name = values.benchmark
    if values.source is not None:
        run_name += f"-{values.source}"
    if values.benchmark in GCIL:
        run_name += f"-{values.weight_dist}"
    output_dir = values.output_dir or os.path.join(
        "runs", f"{run_name}-buf{values.buffer_size}-seed{values.seed}")
    _check_writable_dir("output_dir", output_dir)
    checkpoint_dir = values.checkpoint_dir or os.path.join(output_dir, "checkpoints")
    _check_writable_dir("checkpoint_dir", checkpoint_dir)
    export_dir = (os.path.join(output_dir, "export") if values.export_dir is None
                  else values.export_dir or None)
    if export_dir is not None and os.path.exists(export_dir):
        _require(os.path.isdir(export_dir), "export_dir", export_dir,
                 "it exists and is not a directory")
    _require(not values.export_tflite or export_dir is not None, "export_tflite", True,
             "it needs an export, but --export_dir is empty")
    return RunConfig(
        benchmark=values.benchmark, data_dir=values.data_dir, seed=values.seed,
        output_dir=output_dir, buffer_size=values.buffer_size, lr=values.lr,
        batch_size=values.batch_size, replay_batch_size=values.replay_batch_size,
        epochs=values.epochs, reg_weight=values.reg_weight,
        stable_alpha=values.stable_alpha, stable_update_freq=values.stable_update_freq,
        plastic_alpha=values.plastic_alpha, plastic_update_freq=values.plastic_update_freq,
        eval_models=tuple(dict.fromkeys(values.eval_models)),
        eval_batch_size=values.eval_batch_size, export_dir=export_dir,
        export_tflite=values.export_tflite,
        tensorboard=values.tensorboard, log_every_steps=values.log_every_steps,
        steps_per_execution=values.steps_per_execution, fused_forward=values.fused_forward,
        mixed_precision=values.mixed_precision, strategy=values.strategy,
        backbone=values.backbone, resnet_base_filters=values.resnet_base_filters,
        verbose=values.verbose, source=values.source, weight_dist=values.weight_dist,
        gcil_seed=values.gcil_seed, eval_every_steps=values.eval_every_steps,
        curve_samples=values.curve_samples, checkpoint_dir=checkpoint_dir,
        checkpoint_every_steps=checkpoint_every_steps,
        keep_checkpoints=values.keep_checkpoints, restart=values.restart,
        deterministic=values.deterministic)
