"""Our side of the lock-step check: runs our CLS-ER step and writes, per step, the batch,
every random draw the step takes (re-derived from the step's own stateless streams) and our
state after it, in :mod:`lockstep_files`' format.

The recipes are SPEC's rows (``clser_tf.spec_table``) on synthetic class-structured data
(no dataset is needed): ``mlp`` is seq-mnist's MLP at buffer 200, ``resnet18`` seq-cifar10's
ResNet-18 (64 base filters) at buffer 200 with crop-and-flip; ``tiny-mlp`` is a small MLP
for the torch-free plumbing test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import sys

import keras
import numpy as np
import tensorflow as tf

import clser_tf.model as model_module
from clser_tf import backbones
from clser_tf.augment import RandomCropFlip, crop_flip_draws
from clser_tf.draws import (AUGMENT_STREAM, PLASTIC_STREAM, REPLAY_STREAM, RESERVOIR_STREAM,
                            STABLE_STREAM, stream_seed)
from clser_tf.model import CLSER
from clser_tf.spec_table import SPEC_TABLE

import lockstep_files

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from helpers import keras_dtype  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One lock-step recipe: the backbone, shapes, hyperparameters and the run's length."""

    backbone: str
    input_shape: tuple[int, ...]
    num_classes: int
    hyperparameters: dict
    buffer_size: int
    steps: int
    task_switch: int  # the first step of the second task (classes 2 and 3)
    augment: bool
    base_filters: int = 64


RECIPES = {
    "mlp": Recipe("mlp", (28, 28), 10, SPEC_TABLE["seq-mnist"][200], 200,
                  steps=300, task_switch=150, augment=False),
    "resnet18": Recipe("resnet18", (32, 32, 3), 10, SPEC_TABLE["seq-cifar10"][200], 200,
                       steps=60, task_switch=30, augment=True),
    # Small enough for CI: the reservoir replaces samples from step 2, both Bernoulli
    # outcomes of the stable update occur, the task switches at step 10.
    "tiny-mlp": Recipe("mlp", (6, 6), 4, {
        "lr": 0.1, "batch_size": 4, "replay_batch_size": 4, "reg_weight": 2.0,
        "stable_update_freq": 0.5, "stable_alpha": 0.99, "plastic_update_freq": 1.0,
        "plastic_alpha": 0.99}, buffer_size=8, steps=20, task_switch=10, augment=False),
}

_RESNET_PART = re.compile(r"^stage(\d)_block(\d)_(conv1|bn1|conv2|bn2|shortcut_conv|shortcut_bn)$")
_RESNET_SHORTCUT = {"shortcut_conv": "shortcut.0", "shortcut_bn": "shortcut.1"}


def torch_name(layer_name: str) -> str:
    """The reference's module name of one of our layers (backbone/ResNet18.py, MNISTMLP)."""
    if layer_name == "stem_conv":
        return "conv1"
    if layer_name == "stem_bn":
        return "bn1"
    match = _RESNET_PART.match(layer_name)
    if match:
        stage, block, part = match.groups()
        return f"layer{stage}.{int(block) - 1}.{_RESNET_SHORTCUT.get(part, part)}"
    return layer_name  # fc1, fc2, classifier (MLP)


def torch_state(model: keras.Model, resnet: bool) -> dict[str, np.ndarray]:
    """Every weight and BatchNorm statistic of ``model`` under the reference's
    ``state_dict`` names, in its layout (conv OIHW, linear [out, in])."""
    state = {}
    for layer in model.layers:
        name = torch_name(layer.name)
        if resnet and name == "classifier":
            name = "linear"
        if isinstance(layer, keras.layers.Conv2D):
            state[f"{name}.weight"] = np.transpose(layer.kernel.numpy(), (3, 2, 0, 1))
        elif isinstance(layer, keras.layers.Dense):
            state[f"{name}.weight"] = layer.kernel.numpy().T
            state[f"{name}.bias"] = layer.bias.numpy()
        elif isinstance(layer, keras.layers.BatchNormalization):
            for ours, theirs in (("gamma", "weight"), ("beta", "bias"),
                                 ("moving_mean", "running_mean"),
                                 ("moving_variance", "running_var")):
                state[f"{name}.{theirs}"] = getattr(layer, ours).numpy()
    return state


def class_structured_data(recipe: Recipe, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` batches of uint8 images, classes 0-1 before the task switch and 2-3
    after: a fixed random prototype per class plus noise, so the models learn something."""
    rng = np.random.default_rng(seed)
    batch = recipe.hyperparameters["batch_size"]
    prototypes = rng.integers(0, 256, (recipe.num_classes, *recipe.input_shape))
    task = (np.arange(recipe.steps) >= recipe.task_switch).astype(int)
    y = 2 * task[:, None] + rng.integers(0, 2, (recipe.steps, batch))
    noise = rng.normal(0.0, 40.0, (recipe.steps, batch, *recipe.input_shape))
    x = np.clip(prototypes[y] + noise, 0, 255).astype(np.uint8)
    return x, y.astype(np.int32)


class OurSide:
    """Our model for ``recipe``, stepped one batch at a time by :meth:`step`, which writes
    the step's file and our state after it into ``folder``."""

    def __init__(self, recipe_name: str, folder: str, fused_forward: bool = False,
                 dtype: str = "float32", seed: int = 0, jit_compile: bool = False):
        self.recipe, self.folder = RECIPES[recipe_name], folder
        recipe, hp = self.recipe, self.recipe.hyperparameters
        keras.utils.set_random_seed(seed)
        with keras_dtype(dtype):  # the models', the optimizer's and the losses' dtype
            self.model = self._build(fused_forward, seed, jit_compile)
        self.x, self.y = class_structured_data(recipe, seed)
        self._chosen = tf.Variable(tf.fill([hp["replay_batch_size"]], -1))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "recipe.json"), "w", encoding="utf-8") as f:
            json.dump({"name": recipe_name, **dataclasses.asdict(recipe),
                       "fused_forward": fused_forward, "dtype": dtype,
                       "jit_compile": jit_compile}, f, indent=1)
        lockstep_files.write(os.path.join(folder, "init.npz"), self._weights())

    def _build(self, fused_forward: bool, seed: int, jit_compile: bool) -> CLSER:
        recipe, hp = self.recipe, self.recipe.hyperparameters
        if recipe.backbone == "resnet18":
            backbone = backbones.resnet18(recipe.input_shape, recipe.num_classes,
                                          base_filters=recipe.base_filters)
        else:
            backbone = backbones.mlp(recipe.input_shape, recipe.num_classes)
        model = CLSER(
            backbone, buffer_size=recipe.buffer_size,
            replay_batch_size=hp["replay_batch_size"], reg_weight=hp["reg_weight"],
            stable_alpha=hp["stable_alpha"], stable_update_freq=hp["stable_update_freq"],
            plastic_alpha=hp["plastic_alpha"], plastic_update_freq=hp["plastic_update_freq"],
            replay_augment=RandomCropFlip() if recipe.augment else None,
            augment_current_batch=recipe.augment, seed=seed, fused_forward=fused_forward)
        model.compile(optimizer=keras.optimizers.SGD(hp["lr"]), jit_compile=jit_compile)
        return model

    def _weights(self) -> dict[str, np.ndarray]:
        resnet = self.recipe.backbone == "resnet18"
        return {f"{prefix}/{name}": value
                for prefix, model in zip(lockstep_files.MODELS, (
                    self.model.working_model, self.model.plastic_model, self.model.stable_model))
                for name, value in torch_state(model, resnet).items()}

    def _draws(self, step: int) -> dict[str, np.ndarray]:
        """The draws step ``step`` takes, from the step's own streams and buffer state."""
        seed, buffer, hp = self.model.seed, self.model.buffer, self.recipe.hyperparameters
        batch = hp["batch_size"]
        indices = buffer.sample_indices(hp["replay_batch_size"],
                                        stream_seed(seed, REPLAY_STREAM, step)).numpy()
        draws = {"replay_indices": indices.astype(np.int64)}
        if self.recipe.augment:  # the current batch and the replay batch in one call
            offsets, flips = crop_flip_draws(batch + len(indices),
                                             stream_seed(seed, AUGMENT_STREAM, step))
            draws["crop_offsets"], draws["flip_draws"] = offsets.numpy(), flips.numpy()
        slots = buffer.reservoir_slots(batch, stream_seed(seed, RESERVOIR_STREAM, step)).numpy()
        seen = int(buffer.num_seen.numpy()) + np.arange(batch)
        draws["reservoir_draws"] = slots[seen >= buffer.capacity].astype(np.int64)
        for name, stream in (("plastic_draw", PLASTIC_STREAM), ("stable_draw", STABLE_STREAM)):
            draws[name] = tf.random.stateless_uniform([], stream_seed(seed, stream, step)).numpy()
        return draws

    @contextlib.contextmanager
    def _recording_teachers(self):
        """The step's teacher pick, recorded into a variable (the step itself unchanged)."""
        real, chosen_var = model_module.teacher_logits, self._chosen

        def recording(*args, **kwargs):
            teacher, chosen = real(*args, **kwargs)
            padding = chosen_var.shape[0] - tf.shape(chosen)[0]
            chosen_var.assign(tf.pad(tf.cast(chosen, tf.int32), [[0, padding]],
                                     constant_values=-1))
            return teacher, chosen

        model_module.teacher_logits = recording
        try:
            yield
        finally:
            model_module.teacher_logits = real

    def step(self, step: int) -> None:
        """Runs step ``step`` (0-based, in order) and writes its two files."""
        x, y = self.x[step], self.y[step]
        lockstep_files.write(lockstep_files.step_path(self.folder, "step", step),
                             {"x": x, "y": y, **self._draws(step)})
        self.model.reset_metrics()
        with self._recording_teachers():
            logs = self.model.train_on_batch(x, y, return_dict=True)
        chosen = self._chosen.numpy()
        buffer = self.model.buffer
        lockstep_files.write(lockstep_files.step_path(self.folder, "state", step), {
            **self._weights(),
            "buffer/examples": buffer.stored_inputs().numpy(),
            "buffer/labels": buffer.labels.numpy().astype(np.int64),
            "buffer/num_seen": buffer.num_seen.numpy().astype(np.int64),
            "loss/total": np.float64(logs["loss"]), "loss/ce": np.float64(logs["ce_loss"]),
            "loss/consistency": np.float64(logs["consistency_loss"]),
            "teacher/stable_chosen": chosen[chosen >= 0].astype(np.int64)})
