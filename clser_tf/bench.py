"""Speed benchmark: ``python -m clser_tf.bench --recipe=mlp [--flag=value ...]``.

Measures on synthetic data of a recipe's shapes: compiled train steps per second and
samples per second (after warm-up, median of ``--repeats``), evaluation images per second
(working, plastic and stable models in one pass), and peak resident memory. Prints a table
and writes JSON. Each speed feature is a flag, so its effect is one command.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import statistics
import sys
import time

from absl import app, flags

import keras
import numpy as np
import tensorflow as tf

from clser_tf import backbones
from clser_tf.augment import RandomCropFlip
from clser_tf.benchmarks import BENCHMARKS
from clser_tf.streams import prefetched
from clser_tf.distribution import make_strategy
from clser_tf.evaluation import Evaluator
from clser_tf.model import CLSER
from clser_tf.spec_table import SPEC_TABLE
from clser_tf.xla import JIT_COMPILE_CHOICES


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One benchmark's training step at one buffer size: its shapes, backbone and
    augmentation from the benchmark registry, its batch sizes from SPEC's row."""

    benchmark: str
    buffer_size: int
    input_shape: tuple[int, ...] = dataclasses.field(init=False)
    num_classes: int = dataclasses.field(init=False)
    backbone: str = dataclasses.field(init=False)
    augment: bool = dataclasses.field(init=False)
    batch_size: int = dataclasses.field(init=False)
    replay_batch_size: int = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        declared = BENCHMARKS[self.benchmark]
        row = SPEC_TABLE[self.benchmark][self.buffer_size]
        for name, value in (("input_shape", declared.input_shape),
                            ("num_classes", declared.num_classes),
                            ("backbone", declared.backbone), ("augment", declared.augment),
                            ("batch_size", row["batch_size"]),
                            ("replay_batch_size", row["replay_batch_size"])):
            object.__setattr__(self, name, value)  # a frozen dataclass's derived fields


RECIPES = {
    "mlp": Recipe(benchmark="seq-mnist", buffer_size=200),
    "resnet18": Recipe(benchmark="seq-cifar10", buffer_size=500),
}

FLAGS = flags.FLAGS


def build(recipe: Recipe, fused_forward: bool, jit_compile: bool | str,
          steps_per_execution: int) -> CLSER:
    """A compiled CLSER for ``recipe`` in the current strategy's scope."""
    if len(recipe.input_shape) == 2:
        backbone = backbones.mlp(recipe.input_shape, recipe.num_classes)
    else:
        backbone = backbones.resnet18(recipe.input_shape, recipe.num_classes)
    augment = RandomCropFlip() if recipe.augment else None
    model = CLSER(backbone, buffer_size=recipe.buffer_size,
                  replay_batch_size=recipe.replay_batch_size, replay_augment=augment,
                  augment_current_batch=recipe.augment, fused_forward=fused_forward)
    model.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=jit_compile,
                  steps_per_execution=steps_per_execution)
    return model


def synthetic(recipe: Recipe, num_batches: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """Random uint8 images and labels, batched and cached in memory."""
    rng = np.random.default_rng(seed)
    n = num_batches * batch_size
    x = rng.integers(0, 256, (n, *recipe.input_shape), dtype=np.uint8)
    y = rng.integers(0, recipe.num_classes, n).astype(np.int32)
    return prefetched(tf.data.Dataset.from_tensor_slices((x, y))
                      .batch(batch_size, drop_remainder=True).cache())


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(recipe_name: str, steps: int, repeats: int, warmup_steps: int,
            steps_per_execution: int, fused_forward: bool, jit_compile: bool | str,
            mixed_precision: str, eval_images: int,
            strategy: tf.distribute.Strategy | None = None) -> dict:
    """Runs the benchmark and returns its figures."""
    recipe = RECIPES[recipe_name]
    strategy = strategy or tf.distribute.get_strategy()
    keras.mixed_precision.set_global_policy(mixed_precision)
    with strategy.scope():
        model = build(recipe, fused_forward, jit_compile, steps_per_execution)
    train = synthetic(recipe, steps, recipe.batch_size, seed=1)
    model.fit(synthetic(recipe, warmup_steps, recipe.batch_size, seed=0), verbose=0)
    model.fit(train, verbose=0)  # fills the cache; traces once more for the full length
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(train, verbose=0)
        seconds.append(time.perf_counter() - start)
    step_s = statistics.median(seconds) / steps
    result = {
        "recipe": recipe_name, **dataclasses.asdict(recipe), "steps": steps,
        "repeats": repeats, "warmup_steps": warmup_steps,
        "steps_per_execution": steps_per_execution,
        "fused_forward": fused_forward, "jit_compile": jit_compile, "xla": model.xla,
        "mixed_precision": mixed_precision, "replicas": strategy.num_replicas_in_sync,
        "ms_per_step": 1000.0 * step_s, "steps_per_s": 1.0 / step_s,
        "samples_per_s": recipe.batch_size / step_s,
        "ms_per_step_all_repeats": [1000.0 * s / steps for s in seconds],
    }
    if eval_images:
        evaluate = Evaluator({"working": model.working_model, "plastic": model.plastic_model,
                              "stable": model.stable_model}, task_il=False)
        test = synthetic(recipe, max(1, eval_images // 1000), 1000, seed=2)
        evaluate([test], None)  # trace
        start = time.perf_counter()
        evaluate([test], None)
        result["eval_images_per_s"] = (eval_images // 1000) * 1000 / (
            time.perf_counter() - start)
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def _define_flags() -> None:
    """Defines the command line (only when run as a program: a library defines no flag)."""
    flags.DEFINE_enum("recipe", "mlp", list(RECIPES), "Which step to measure.")
    flags.DEFINE_integer("steps", 600, "Train steps per timed repeat.")
    flags.DEFINE_integer("repeats", 5, "Timed repeats (the median is reported).")
    flags.DEFINE_integer("warmup_steps", 100, "Untimed steps first (compilation, buffer fill).")
    flags.DEFINE_integer("steps_per_execution", 50, "Keras steps_per_execution.")
    flags.DEFINE_boolean("fused_forward", True, "One working forward over the merged batch.")
    flags.DEFINE_enum("jit_compile", "auto", list(JIT_COMPILE_CHOICES),
                      "XLA for the train step once the replay batch is full (clser_tf.xla).")
    flags.DEFINE_enum("mixed_precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                      "Keras dtype policy of the backbone.")
    flags.DEFINE_integer("replicas", 1, "Logical CPU devices under MirroredStrategy (1: none).")
    flags.DEFINE_integer("eval_images", 10000, "Images per evaluation timing (0: skip).")
    flags.DEFINE_string("json", None, "Also write the results to this JSON file.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]!r}")
    for name in ("steps", "repeats", "steps_per_execution"):
        if FLAGS[name].value < 1:
            sys.exit(f"clser_tf.bench: error: --{name}={FLAGS[name].value} is invalid: "
                     "it must be >= 1.")
    if FLAGS.warmup_steps < 0 or FLAGS.eval_images < 0:
        sys.exit("clser_tf.bench: error: --warmup_steps and --eval_images must be >= 0.")
    if FLAGS.replicas < 1:
        sys.exit(f"clser_tf.bench: error: --replicas={FLAGS.replicas} is invalid: it must be >= 1.")
    strategy = None
    if FLAGS.replicas > 1:
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0],
            [tf.config.LogicalDeviceConfiguration()] * FLAGS.replicas)
        strategy = make_strategy("mirrored")
    result = measure(FLAGS.recipe, FLAGS.steps, FLAGS.repeats, FLAGS.warmup_steps,
                     FLAGS.steps_per_execution, FLAGS.fused_forward, FLAGS.jit_compile,
                     FLAGS.mixed_precision, FLAGS.eval_images, strategy)
    print(f"{'recipe':<9} {'precision':<15} {'fused':<6} {'xla':<6} {'spe':>4} {'repl':>4} "
          f"{'ms/step':>8} {'steps/s':>8} {'samples/s':>10} {'eval img/s':>11} {'peak MiB':>9}")
    print(f"{result['recipe']:<9} {result['mixed_precision']:<15} "
          f"{str(result['fused_forward']):<6} {str(result['xla']):<6} "
          f"{result['steps_per_execution']:>4} {result['replicas']:>4} "
          f"{result['ms_per_step']:8.2f} "
          f"{result['steps_per_s']:8.1f} {result['samples_per_s']:10.0f} "
          f"{result.get('eval_images_per_s', float('nan')):11.0f} "
          f"{result['peak_rss_mib']:9.0f}")
    if FLAGS.json:
        with open(FLAGS.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
