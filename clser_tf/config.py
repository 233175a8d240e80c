"""The typed configuration of a run: every setting once, with its default, help and bounds.

``RunConfig`` holds the run's settings and, nested in it, ``CLSERConfig``: the CLS-ER
hyperparameters, exactly the keyword arguments of ``CLSER(backbone, **asdict(clser))``.
Each field carries its command-line help, its flag type (``clser_tf.cli`` turns every field
into one flag) and whether it *decides* the run (a checkpoint may only be resumed by a run
whose deciding settings are equal). ``resolve`` checks the bounds and fills in the derived
paths; every invalid value is one ``ValueError`` line naming the flag, the value and what
is allowed. The defaults are the default benchmark (seq-fmnist, buffer 200, SPEC's
seq-mnist row). Build a config with a constructor call::

    config = resolve(RunConfig(benchmark="seq-mnist", clser=CLSERConfig(buffer_size=500)))
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable

from clser_tf import backbones, benchmarks, splits, user_data
from clser_tf.benchmarks import Setting
from clser_tf.distribution import STRATEGIES
from clser_tf.gcil import WEIGHT_DISTS
from clser_tf.variants import VARIANTS
from clser_tf.xla import JIT_COMPILE_CHOICES

MODEL_NAMES = ("working", "plastic", "stable")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
AUGMENTS = ("none", "crop_flip")


def setting(default: Any, help: str, *, kind: str,
            choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = (),
            deciding: bool = True) -> Any:
    """A config field: its default, flag help and kind (absl's DEFINE_<kind>), its choices
    (enums; a function for those the benchmark registry holds) and whether it decides the run
    (see the module docstring)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "kind": kind, "choices": choices, "deciding": deciding})


def choices_of(field: dataclasses.Field) -> tuple[str, ...]:
    """The values an enum setting allows (``--benchmark``, ``--source``: the registry's now)."""
    choices = field.metadata["choices"]
    return choices() if callable(choices) else choices


@dataclasses.dataclass(frozen=True)
class CLSERConfig:
    """The CLS-ER hyperparameters: ``CLSER(backbone, **dataclasses.asdict(this), ...)``."""

    buffer_size: int = setting(200, "Reservoir buffer capacity.", kind="integer")
    replay_batch_size: int = setting(128, "Replay batch size (reference: minibatch_size).",
                                     kind="integer")
    reg_weight: float = setting(2.0, "λ: weight of the consistency loss.", kind="float")
    stable_alpha: float = setting(0.99, "EMA decay cap of the stable model, in [0, 1).",
                                  kind="float")
    stable_update_freq: float = setting(0.9, "Update probability of the stable model.",
                                        kind="float")
    plastic_alpha: float = setting(0.99, "EMA decay cap of the plastic model, in [0, 1).",
                                   kind="float")
    plastic_update_freq: float = setting(1.0, "Update probability of the plastic model.",
                                         kind="float")
    semantic_memories: tuple[str, ...] = dataclasses.field(default=("plastic", "stable"))
    replay: bool = True  # these two are set by RunConfig.variant, not flags of their own
    fused_forward: bool = setting(True, "One working-model forward over the merged batch "
                                  "(False: the reference's extra forward over the replay "
                                  "batch).", kind="boolean")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of one run (``resolve`` validates it and fills in the paths)."""

    benchmark: str = setting("seq-fmnist", "Benchmark to run: " + ", ".join(
        benchmarks.names()) + " (tfds:NAME: any tensorflow-datasets image-classification "
        "dataset, e.g. tfds:svhn_cropped; folder and arrays: your own data in --data_dir).",
        kind="string")
    data_dir: str | None = setting(None, "Where the benchmark's files are (see README); "
                                   "unset: the default location or tensorflow-datasets.",
                                   kind="string")
    num_tasks: int | None = setting(None, "Class-IL: split the classes, in --class_order, "
                                    "into this many tasks of equal size (default: the "
                                    "benchmark's; your own data: two classes per task).",
                                    kind="integer")
    class_order: str = setting("label", "Class-IL: the order the tasks take the classes in: "
                               "label, or random (a permutation from --class_order_seed).",
                               kind="enum", choices=splits.CLASS_ORDERS)
    class_order_seed: int = setting(0, "Class-IL: seed of --class_order=random.",
                                    kind="integer")
    image_size: str | None = setting(None, "folder, tfds:NAME: resize every image to H,W "
                                     "(needed when the images differ in size).",
                                     kind="string")
    seed: int = setting(0, "Seed of the model's random draws and the data order.",
                        kind="integer")
    variant: str = setting("clser", "Method variant: " + "; ".join(
        f"{v.name}: {v.doc}" for v in VARIANTS.values()) + ".", kind="enum",
        choices=tuple(VARIANTS))
    output_dir: str | None = setting(
        None, "Results, TensorBoard logs, figures and export go here (default: "
        "runs/<benchmark>[-<source>][-<weight_dist>]-buf<buffer_size>-seed<seed>).",
        kind="string", deciding=False)
    clser: CLSERConfig = dataclasses.field(default_factory=CLSERConfig)
    lr: float = setting(0.03, "SGD learning rate (no momentum, no weight decay).",
                        kind="float")
    batch_size: int = setting(10, "Current-task batch size.", kind="integer")
    epochs: int = setting(1, "Epochs per task.", kind="integer")
    eval_models: tuple[str, ...] = setting(MODEL_NAMES, "Models evaluated after each task.",
                                           kind="list")
    eval_batch_size: int = setting(1000, "Batch size of evaluation.", kind="integer")
    export_dir: str | None = setting(None, "SavedModel of the stable model "
                                     "(default: <output_dir>/export); empty string: no "
                                     "export.", kind="string", deciding=False)
    export_tflite: bool = setting(False, "Also write <export_dir>/stable.tflite: the stable "
                                  "model for TFLite (float32), with the SavedModel's "
                                  "signature.", kind="boolean", deciding=False)
    tensorboard: bool = setting(True, "Write TensorBoard logs under "
                                "<output_dir>/tensorboard.", kind="boolean", deciding=False)
    log_every_steps: int = setting(100, "TensorBoard logging period of the step metrics.",
                                   kind="integer", deciding=False)
    steps_per_execution: int = setting(50, "Train steps per compiled call (speed only).",
                                       kind="integer", deciding=False)
    jit_compile: str = setting(
        "auto", "XLA for the train step from the first step whose buffer holds a full "
        "replay batch (the steps before it run without): auto (on for one GPU, off on a CPU "
        "where it does not win), true, false.", kind="enum", choices=JIT_COMPILE_CHOICES)
    mixed_precision: str = setting(
        "float32", "Keras dtype policy of the backbones; the buffer, EMA weights and losses "
        "stay float32 (mixed_float16 adds loss scaling).", kind="enum", choices=PRECISIONS)
    strategy: str = setting(
        "default", "tf.distribute strategy: default (one device), mirrored (every local GPU, "
        "else every logical CPU), multi_worker (cluster from TF_CONFIG; only the chief "
        "writes files).", kind="enum", choices=tuple(STRATEGIES))
    collective_timeout_s: int = setting(
        60, "multi_worker: seconds a collective may wait for a peer, and a worker may stop "
        "sending heartbeats, before the others stop with an error (a worker was lost).",
        kind="integer", deciding=False)
    backbone: str | None = setting(None, "Override the benchmark's backbone: mlp, resnet18 "
                                   "or MODULE:FUNCTION (FUNCTION(input_shape, num_classes) "
                                   "returns a built Keras model from raw inputs to logits).",
                                   kind="string")
    augment: str | None = setting(None, "Override the benchmark's training augmentation: "
                                  "none or crop_flip (random crop with 4-pixel padding and "
                                  "horizontal flip).", kind="enum", choices=AUGMENTS)
    resnet_base_filters: int = setting(64, "Filters of the ResNet-18's first stage.",
                                       kind="integer")
    verbose: int = setting(1, "Keras fit verbosity: 0 silent, 1 progress bar, 2 one line.",
                           kind="integer", deciding=False)
    source: str | None = setting(
        None, f"Data of {', '.join(benchmarks.accepting('source'))}: mnist (default; IDX "
        "files in --data_dir or tensorflow-datasets) or fmnist (read as seq-fmnist reads it).",
        kind="enum", choices=benchmarks.source_names)
    weight_dist: str = setting("uniform", "gcil-cifar100: class weights of the phase sampler "
                               "(longtail: 0.984^class).", kind="enum",
                               choices=tuple(WEIGHT_DISTS))
    gcil_seed: int = setting(1993, "gcil-cifar100: seed of the phase sampler.",
                             kind="integer")
    eval_every_steps: int = setting(100, "mnist-360: accuracy-curve period in steps (a "
                                    "multiple of --steps_per_execution).", kind="integer")
    curve_samples: int = setting(1000, "mnist-360: size of the fixed held-out test slice of "
                                 "the accuracy curve.", kind="integer")
    checkpoint_dir: str | None = setting(
        None, "Checkpoints of the run (default: <output_dir>/checkpoints). Running the same "
        "command again resumes from the newest one.", kind="string", deciding=False)
    checkpoint_every_steps: int | None = setting(
        None, "Also checkpoint every this many steps within a task (a multiple of "
        "--steps_per_execution; 0: only after each task; default: 20 x "
        "--steps_per_execution).", kind="integer", deciding=False)
    keep_checkpoints: int = setting(2, "How many of the newest checkpoints to keep.",
                                    kind="integer", deciding=False)
    restart: bool = setting(False, "Start over: remove the checkpoints in --checkpoint_dir "
                            "instead of resuming from them.", kind="boolean", deciding=False)
    deterministic: bool = setting(True, "TensorFlow op determinism "
                                  "(tf.config.experimental.enable_op_determinism): a resumed "
                                  "run is bit-identical to an uninterrupted one.",
                                  kind="boolean", deciding=False)

    def flat(self) -> dict[str, Any]:
        """Every setting by its flag name (the CLS-ER ones unnested): results.json's config."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        clser = values.pop("clser")
        return {**values, **dataclasses.asdict(clser)}


def setting_fields() -> list[dataclasses.Field]:
    """Every field that is a setting (one flag each), the CLS-ER ones included."""
    return [f for cls in (RunConfig, CLSERConfig) for f in dataclasses.fields(cls)
            if "kind" in f.metadata]


def from_settings(values: dict[str, Any]) -> RunConfig:
    """A ``RunConfig`` from flat settings (flag name -> value), the unnamed ones default."""
    clser_names = {f.name for f in dataclasses.fields(CLSERConfig)}
    clser = CLSERConfig(**{k: v for k, v in values.items() if k in clser_names})
    return RunConfig(clser=clser, **{k: v for k, v in values.items() if k not in clser_names})


def deciding_settings(config: RunConfig) -> dict[str, Any]:
    """The settings of ``config`` that decide the run, JSON-ready."""
    flat = config.flat()
    values = {}
    for field in setting_fields():
        if not field.metadata["deciding"]:
            continue
        value = flat[field.name]
        if field.name == "data_dir" and value is not None:
            value = os.path.abspath(value)
        values[field.name] = list(value) if isinstance(value, tuple) else value
    return values


def _flag_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "" if value is None else str(value)


def changed_settings(saved: dict[str, Any], current: dict[str, Any]) -> str:
    """The settings that differ between ``saved`` and ``current`` (flag name -> value), as
    ``--name=saved (now current), ...``; empty if none."""
    names = [name for name in {**saved, **current} if saved.get(name) != current.get(name)]
    return ", ".join(f"--{name}={_flag_text(saved.get(name))} (now "
                     f"{_flag_text(current.get(name))})" for name in names)


# The benchmark-specific settings that name the default output folder, in this order.
_RUN_NAME_SETTINGS = ("source", "weight_dist")


def _joint_benchmarks() -> tuple[str, ...]:
    """The benchmarks whose tasks the joint variant merges into one: the class-incremental
    ones (mnist-360 is one stream; a domain-IL joint task would hold 20 transformed copies
    of the data)."""
    return tuple(name for name, declared in benchmarks.BENCHMARKS.items()
                 if declared.setting == Setting.CLASS_IL)


def _check_benchmark(v: dict[str, Any], explicit: set[str]) -> None:
    """The benchmark's name, the benchmark-specific settings it reads, its data folder,
    class split and backbone (imported here, so a bad one fails before any work)."""
    try:
        declared = benchmarks.declaration(v["benchmark"])
    except ValueError:
        _require(False, "benchmark", v["benchmark"], "it must be one of " + ", ".join(
            benchmarks.names()) + " (tfds:NAME: e.g. tfds:svhn_cropped)")
    for field in setting_fields():  # those only some benchmarks read (their declarations')
        readers = benchmarks.accepting(field.name)
        _require(not readers or field.name not in explicit or field.name in declared.settings,
                 field.name, v[field.name],
                 f"only {', '.join(readers)} read it, not --benchmark={v['benchmark']}")
    _require(declared.data_dir_layout is None or v["data_dir"] is not None, "data_dir", None,
             f"--benchmark={v['benchmark']} reads {declared.data_dir_layout}: pass "
             "--data_dir=DIR")
    if v["num_tasks"] is not None and declared.num_classes is not None:
        try:
            splits.class_order(declared.num_classes, v["num_tasks"])
        except ValueError:
            _require(False, "num_tasks", v["num_tasks"],
                     f"it must divide the {declared.num_classes} classes of "
                     f"{v['benchmark']} into tasks of equal size")
    _require(v["num_tasks"] is None or v["num_tasks"] >= 1, "num_tasks", v["num_tasks"],
             "it must be >= 1")
    if v["image_size"] is not None:
        user_data.parse_image_size(v["image_size"])
    if v["backbone"] is not None and v["backbone"] not in backbones.BUILT_IN:
        backbones.custom_function(v["backbone"])


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


def _check_values(v: dict[str, Any], explicit: set[str]) -> None:
    """Raises ``ValueError`` (one line) on the first setting of ``v`` out of bounds."""
    _check_benchmark(v, explicit)
    for field in setting_fields():
        choices = choices_of(field)
        if choices and v[field.name] is not None:
            _require(v[field.name] in choices, field.name, v[field.name],
                     f"it must be one of {', '.join(choices)}")
    for name in ("buffer_size", "batch_size", "replay_batch_size", "epochs",
                 "eval_batch_size", "log_every_steps", "steps_per_execution",
                 "resnet_base_filters", "eval_every_steps", "curve_samples",
                 "collective_timeout_s"):
        _require(v[name] >= 1, name, v[name], "it must be >= 1")
    _require(math.isfinite(v["lr"]) and v["lr"] > 0, "lr", v["lr"],
             "it must be a finite number > 0")
    _require(math.isfinite(v["reg_weight"]) and v["reg_weight"] >= 0, "reg_weight",
             v["reg_weight"], "it must be a finite number >= 0")
    for name in ("stable_alpha", "plastic_alpha"):
        _require(0 <= v[name] < 1, name, v[name], "it must be in [0, 1)")
    for name in ("stable_update_freq", "plastic_update_freq"):
        _require(0 <= v[name] <= 1, name, v[name], "it must be in [0, 1]")
    for name in ("seed", "gcil_seed", "class_order_seed"):
        _require(0 <= v[name] < 2**31, name, v[name], "it must be in [0, 2**31)")
    _require(v["verbose"] in (0, 1, 2), "verbose", v["verbose"], "it must be 0, 1 or 2")
    for name in v["eval_models"]:
        _require(name in MODEL_NAMES, "eval_models", ",".join(v["eval_models"]),
                 f"each entry must be one of {', '.join(MODEL_NAMES)}")
    _require(len(v["eval_models"]) > 0, "eval_models", "", "name at least one model")
    variant = VARIANTS[v["variant"]]
    for name in v["eval_models"] if "eval_models" in explicit else ():
        _require(name in variant.models, "eval_models", ",".join(v["eval_models"]),
                 f"--variant={variant.name} has no {name} model, only "
                 f"{', '.join(variant.models)}")
    if variant.joint:
        joint_benchmarks = _joint_benchmarks()
        _require(benchmarks.declaration(v["benchmark"]).setting == Setting.CLASS_IL,
                 "variant", variant.name,
                 f"the joint task is built for {', '.join(joint_benchmarks)}, not "
                 f"--benchmark={v['benchmark']}")
    if benchmarks.declaration(v["benchmark"]).setting == Setting.GENERAL_CONTINUAL:
        _require(v["epochs"] == 1, "epochs", v["epochs"],
                 f"{v['benchmark']} is one pass over its stream: it must be 1")
        _require(v["eval_every_steps"] % v["steps_per_execution"] == 0, "eval_every_steps",
                 v["eval_every_steps"], "it must be a multiple of --steps_per_execution="
                 f"{v['steps_per_execution']}")
    if v["data_dir"] is not None:
        _require(os.path.isdir(v["data_dir"]), "data_dir", v["data_dir"],
                 "it must be an existing directory")
        _require(os.access(v["data_dir"], os.R_OK | os.X_OK), "data_dir", v["data_dir"],
                 "it must be a readable directory")


def resolve(config: RunConfig, explicit: set[str] | None = None) -> RunConfig:
    """``config`` validated, with its default paths and checkpoint period filled in.

    ``explicit`` names the settings the user set (default: those that differ from their
    defaults); a benchmark-specific one set for another benchmark is an error. Raises
    ``ValueError`` with one line on the first bad setting.
    """
    v = config.flat()
    if explicit is None:
        defaults = RunConfig().flat()
        explicit = {k for k, value in v.items() if value != defaults[k]}
    _check_values(v, explicit)
    steps_per_execution = v["steps_per_execution"]
    checkpoint_every_steps = (20 * steps_per_execution if v["checkpoint_every_steps"] is None
                              else v["checkpoint_every_steps"])
    _require(checkpoint_every_steps >= 0 and checkpoint_every_steps % steps_per_execution == 0,
             "checkpoint_every_steps", checkpoint_every_steps, "it must be 0 (only after each "
             f"task) or a multiple of --steps_per_execution={steps_per_execution}")
    _require(v["keep_checkpoints"] >= 1, "keep_checkpoints", v["keep_checkpoints"],
             "it must be >= 1")
    run_name = v["benchmark"] + ("" if v["variant"] == "clser" else f"-{v['variant']}")
    for name in _RUN_NAME_SETTINGS:
        if name in benchmarks.declaration(v["benchmark"]).settings and v[name] is not None:
            run_name += f"-{v[name]}"
    run_name = run_name.replace(":", "-").replace("/", "-")  # tfds:eurosat/rgb: one folder
    output_dir = v["output_dir"] or os.path.join(
        "runs", f"{run_name}-buf{v['buffer_size']}-seed{v['seed']}")
    _check_writable_dir("output_dir", output_dir)
    checkpoint_dir = v["checkpoint_dir"] or os.path.join(output_dir, "checkpoints")
    _check_writable_dir("checkpoint_dir", checkpoint_dir)
    export_dir = (os.path.join(output_dir, "export") if v["export_dir"] is None
                  else v["export_dir"] or None)
    if export_dir is not None and os.path.exists(export_dir):
        _require(os.path.isdir(export_dir), "export_dir", export_dir,
                 "it exists and is not a directory")
    _require(not v["export_tflite"] or export_dir is not None, "export_tflite", True,
             "it needs an export, but --export_dir is empty")
    variant = VARIANTS[v["variant"]]
    clser = dataclasses.replace(
        config.clser, semantic_memories=variant.semantic_memories, replay=variant.replay,
        reg_weight=config.clser.reg_weight if variant.consistency else 0.0)
    eval_models = v["eval_models"] if "eval_models" in explicit else variant.models
    return dataclasses.replace(
        config, output_dir=output_dir, checkpoint_dir=checkpoint_dir, export_dir=export_dir,
        checkpoint_every_steps=checkpoint_every_steps, clser=clser,
        eval_models=tuple(dict.fromkeys(eval_models)))
