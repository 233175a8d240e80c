"""The reference side of the lock-step check: the official CLS-ER code, unchanged, stepped
on our batches with our random draws.

Run by ``lockstep.py`` as ``CLSER_REFERENCE_PYTHON official_side.py FOLDER [--resync]`` with
``CLSER_REFERENCE_DIR`` naming a checkout of github NeurAI-Lab/CLS-ER (see
:mod:`reference_setup`); it needs torch,
torchvision and NumPy, never TensorFlow. It builds the official ``CLSER``
(``models/clser.py``) with its ``Buffer`` (``utils/buffer.py``), backbone
(``backbone/MNISTMLP.py`` or ``backbone/ResNet18.py``) and, for the CIFAR recipe, the
dataset's own transforms (``datasets/seq_cifar10.py``), loads our initial weights, and for
each step number on stdin runs ``observe()`` once. The official code's random calls read our
draws instead, by replacing, in the official modules' namespaces only, the modules they call:
``np.random.choice`` (the replay batch) and ``np.random.randint`` (reservoir slots) in
``utils/buffer.py``, ``torch.rand`` (the plastic and stable updates) in ``models/clser.py``,
and ``torch.randint``/``torch.rand`` (crop offsets, flips) in torchvision's transforms.
For a float64 recipe torch's default dtype is float64, and so is the buffer's storage (the
``torch.float32`` of ``utils/buffer.py``, replaced in its namespace).
"""

from __future__ import annotations

import collections
import json
import os
import sys
import types

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reference_setup  # noqa: E402  (first: the official checkout on the path)
import lockstep_files  # noqa: E402
import torchvision.transforms.transforms as tv_transforms  # noqa: E402
from PIL import Image  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torchvision import transforms  # noqa: E402

import models.clser as clser_module  # noqa: E402
import utils.buffer as buffer_module  # noqa: E402
from datasets.seq_cifar10 import SequentialCIFAR10  # noqa: E402
from official_model import official_clser  # noqa: E402


class Draws:
    """This step's recorded draws, handed out in the order the official code asks."""

    def __init__(self):
        self.queues = collections.defaultdict(collections.deque)

    def load(self, files: dict) -> None:
        self.queues.clear()
        self.queues["choice"].append(files["replay_indices"])
        self.queues["reservoir"].extend(int(j) for j in files["reservoir_draws"])
        self.queues["ema"].extend([files["plastic_draw"], files["stable_draw"]])
        if "crop_offsets" in files:
            self.queues["crop"].extend(int(o) for o in files["crop_offsets"].reshape(-1))
            self.queues["flip"].extend(files["flip_draws"])

    def pop(self, queue: str):
        if not self.queues[queue]:
            raise AssertionError(f"the official code asked for a '{queue}' draw that our "
                                 "step did not take")
        return self.queues[queue].popleft()

    def check_all_used(self) -> None:
        unused = {name: len(queue) for name, queue in self.queues.items() if queue}
        if unused:
            raise AssertionError(f"draws our step took that the official code did not: {unused}")


DRAWS = Draws()


def _module_proxy(module, **replaced) -> types.SimpleNamespace:
    """``module`` with some attributes replaced (the rest looked up on the module)."""
    class Proxy(types.SimpleNamespace):
        def __getattr__(self, name):
            return getattr(module, name)
    return Proxy(**replaced)


def _choice(n, size, replace):
    indices = DRAWS.pop("choice")
    assert not replace and len(indices) == size and np.all(indices < n), (n, size, indices)
    return indices


def _randint(low, high):
    j = DRAWS.pop("reservoir")
    assert low <= j < high, (low, high, j)
    return j


def _torch_randint(low, high, size):
    offset = DRAWS.pop("crop")
    assert low <= offset < high and tuple(size) == (1,), (low, high, offset)
    return torch.tensor([offset])


buffer_module.np = _module_proxy(np, random=_module_proxy(np.random, choice=_choice,
                                                          randint=_randint))
clser_module.torch = _module_proxy(
    torch, rand=lambda *size: torch.tensor([float(DRAWS.pop("ema"))]))
tv_transforms.torch = _module_proxy(
    torch, randint=_torch_randint,
    rand=lambda *size: torch.tensor([float(DRAWS.pop("flip"))]))


class Recording:
    """Wraps a loss function, keeping the value of its last call."""

    def __init__(self, function):
        self.function, self.last = function, None

    def __call__(self, *args, **kwargs):
        self.last = self.function(*args, **kwargs)
        return self.last


class OfficialSide:
    """The official CLSER for the recipe in ``folder/recipe.json``."""

    def __init__(self, folder: str):
        with open(os.path.join(folder, "recipe.json"), encoding="utf-8") as f:
            self.recipe = recipe = json.load(f)
        hp = recipe["hyperparameters"]
        if recipe["dtype"] == "float64":  # the nets, ToTensor's output and the buffer
            torch.set_default_dtype(torch.float64)
            buffer_module.torch = _module_proxy(torch, float32=torch.float64)
        self.model = official_clser(hp, recipe["buffer_size"], recipe["input_shape"],
                                    recipe["num_classes"], recipe["augment"],
                                    recipe["base_filters"])
        # The loader's transform of the current batch (seq-cifar10's or seq-mnist's).
        self.batch_transform = (SequentialCIFAR10.TRANSFORM if recipe["augment"]
                                else transforms.ToTensor())
        self.load(lockstep_files.read(os.path.join(folder, "init.npz")))
        self.ce = self.model.loss = Recording(self.model.loss)
        self.outputs = {}  # the last output of the consistency loss and of each teacher
        for name in ("consistency_loss", "stable_model", "plastic_model"):
            getattr(self.model, name).register_forward_hook(
                lambda module, inputs, out, name=name: self.outputs.__setitem__(name, out))

    def load(self, state: dict[str, np.ndarray]) -> None:
        """Every weight and BatchNorm statistic of the three models from ``state``."""
        with torch.no_grad():
            for prefix, module in self._modules().items():
                for name, tensor in self._tensors(module).items():
                    tensor.copy_(torch.from_numpy(state[f"{prefix}/{name}"]))

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"working": self.model.net, "plastic": self.model.plastic_model,
                "stable": self.model.stable_model}

    @staticmethod
    def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Every parameter and BatchNorm statistic by ``state_dict`` name (first name of
        each, as named_parameters gives it), without the unused num_batches_tracked."""
        tensors = {name: p.data for name, p in module.named_parameters()}
        tensors.update({name: b for name, b in module.named_buffers()
                        if not name.endswith("num_batches_tracked")})
        return tensors

    def _image(self, raw: np.ndarray) -> Image.Image:
        return Image.fromarray(raw, mode="RGB" if raw.ndim == 3 else "L")

    def run_step(self, step: int, files: dict) -> dict:
        DRAWS.load(files)
        x = files["x"]
        # The loader's batch: the dataset's transform on each image (crop and flip from our
        # draws for the current batch), and the raw image as a tensor (not_aug_inputs).
        inputs = torch.stack([self.batch_transform(self._image(img)) for img in x])
        not_aug_inputs = torch.stack([transforms.ToTensor()(self._image(img)) for img in x])
        labels = torch.from_numpy(files["y"].astype(np.int64))
        buffer = self.model.buffer
        buf_labels = (None if buffer.is_empty() else
                      buffer.labels[torch.from_numpy(files["replay_indices"])])
        self.outputs.clear()
        loss = self.model.observe(inputs, labels, not_aug_inputs)
        if buffer.num_seen_examples == len(x):  # the first step: no replay batch was drawn
            DRAWS.queues["choice"].clear()
        DRAWS.check_all_used()
        chosen = np.zeros(0, np.int64)
        if buf_labels is not None:
            stable_prob, plastic_prob = (F.softmax(self.outputs[f"{m}_model"], 1)
                                         for m in ("stable", "plastic"))
            mask = F.one_hot(buf_labels, num_classes=stable_prob.shape[-1]) > 0
            chosen = (stable_prob[mask] > plastic_prob[mask]).numpy().astype(np.int64)
        examples = np.rint(buffer.examples.numpy() * 255.0).astype(np.uint8)
        examples = np.transpose(examples, (0, 2, 3, 1))
        if len(self.recipe["input_shape"]) == 2:
            examples = examples[..., 0]
        state = {f"{prefix}/{name}": tensor.numpy().copy()
                 for prefix, module in self._modules().items()
                 for name, tensor in self._tensors(module).items()}
        return {**state, "buffer/examples": examples,
                "buffer/labels": buffer.labels.numpy().astype(np.int64),
                "buffer/num_seen": np.int64(buffer.num_seen_examples),
                "loss/total": np.float64(loss), "loss/ce": np.float64(self.ce.last.item()),
                "loss/consistency": np.float64(torch.mean(
                    self.outputs.get("consistency_loss", torch.zeros(1))).item()),
                "teacher/stable_chosen": chosen}


if __name__ == "__main__":
    FOLDER = reference_setup.from_start(sys.argv[1])
    sides = []  # built at the first request: our side writes init.npz before it asks

    def run_step(step: int, files: dict) -> dict:
        if not sides:
            sides.append(OfficialSide(FOLDER))
        return sides[0].run_step(step, files)

    lockstep_files.serve(FOLDER, run_step, resync=(
        (lambda state: sides[0].load(state)) if "--resync" in sys.argv[2:] else None))
