"""A NumPy replay of the reference's ``observe()`` for an MLP, driven by the draws our side
recorded: the lock-step check's plumbing (the files, the draws, the weight layout, the
comparison) tested without torch. It follows models/clser.py and utils/buffer.py line by
line; the MLP is the reference's MNISTMLP (two ReLU layers, a linear head).
"""

from __future__ import annotations

import json
import os

import numpy as np

import lockstep_files

_LAYERS = ("fc1", "fc2", "classifier")


def _forward(params: dict, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits and each layer's input (for the backward pass)."""
    inputs, h = [], x
    for i, layer in enumerate(_LAYERS):
        inputs.append(h)
        h = h @ params[f"{layer}.weight"].T + params[f"{layer}.bias"]
        if i < len(_LAYERS) - 1:
            h = np.maximum(h, 0)
    return h, inputs


def _backward(params: dict, inputs: list[np.ndarray], d_logits: np.ndarray) -> dict:
    grads, d = {}, d_logits
    for i in reversed(range(len(_LAYERS))):
        layer = _LAYERS[i]
        grads[f"{layer}.weight"] = d.T @ inputs[i]
        grads[f"{layer}.bias"] = d.sum(0)
        if i:
            d = (d @ params[f"{layer}.weight"]) * (inputs[i] > 0)
    return grads


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


class NumpySide:
    """The reference's MLP step in NumPy (float32), state kept as the reference keeps it."""

    def __init__(self, folder: str):
        with open(os.path.join(folder, "recipe.json"), encoding="utf-8") as f:
            self.recipe = json.load(f)
        init = lockstep_files.read(os.path.join(folder, "init.npz"))
        self.models = {m: {k.split("/", 1)[1]: v.astype(np.float32) for k, v in init.items()
                           if k.startswith(m + "/")} for m in lockstep_files.MODELS}
        hp = self.recipe["hyperparameters"]
        self.hp, self.capacity = hp, self.recipe["buffer_size"]
        self.examples = np.zeros((self.capacity, *self.recipe["input_shape"]), np.uint8)
        self.labels = np.zeros(self.capacity, np.int64)
        self.num_seen, self.global_step = 0, 0

    def load(self, state: dict) -> None:
        """The three models' weights from ``state`` (a resync)."""
        for model in lockstep_files.MODELS:
            for name in self.models[model]:
                self.models[model][name] = state[f"{model}/{name}"].astype(np.float32)

    def _net_input(self, raw: np.ndarray) -> np.ndarray:
        return (raw.reshape(len(raw), -1).astype(np.float32) / np.float32(255.0))

    def run_step(self, step: int, files: dict) -> dict:
        x, y = self._net_input(files["x"]), files["y"].astype(np.int64)
        net, lam = self.models["working"], np.float32(self.hp["reg_weight"])
        grads, l_cons, chosen = None, np.float32(0.0), np.zeros(0, np.int64)
        if self.num_seen > 0:  # get_data with the recorded choice, then the teachers
            choice = files["replay_indices"]
            buf_x, buf_y = self._net_input(self.examples[choice]), self.labels[choice]
            z_s, z_p = (_forward(self.models[m], buf_x)[0] for m in ("stable", "plastic"))
            rows = np.arange(len(buf_y))
            sel = _softmax(z_s)[rows, buf_y] > _softmax(z_p)[rows, buf_y]
            chosen = sel.astype(np.int64)
            ema_logits = np.where(sel[:, None], z_s, z_p)
            out_buf, inputs_buf = _forward(net, buf_x)
            l_cons = np.mean((out_buf - ema_logits) ** 2)
            grads = _backward(net, inputs_buf, lam * 2 * (out_buf - ema_logits) / out_buf.size)
            x, y = np.concatenate([x, buf_x]), np.concatenate([y, buf_y])
        outputs, inputs = _forward(net, x)
        probs = _softmax(outputs)
        ce = -np.mean(np.log(probs[np.arange(len(y)), y]))
        d_logits = probs.copy()
        d_logits[np.arange(len(y)), y] -= 1
        ce_grads = _backward(net, inputs, d_logits / len(y))
        lr = np.float32(self.hp["lr"])
        for name in net:  # opt.step(): plain SGD
            g = ce_grads[name] + (grads[name] if grads is not None else 0)
            net[name] = (net[name] - lr * g).astype(np.float32)
        draws = iter(files["reservoir_draws"])  # add_data: reservoir(), one per sample
        for i in range(len(files["y"])):
            index = self.num_seen if self.num_seen < self.capacity else int(next(draws))
            self.num_seen += 1
            if index < self.capacity:
                self.examples[index], self.labels[index] = files["x"][i], files["y"][i]
        self.global_step += 1
        for memory in ("plastic", "stable"):
            if files[f"{memory}_draw"] < self.hp[f"{memory}_update_freq"]:
                alpha = min(1 - 1 / (self.global_step + 1), self.hp[f"{memory}_alpha"])
                for name, value in self.models[memory].items():
                    self.models[memory][name] = (value * alpha + (1 - alpha) * net[name]
                                                 ).astype(np.float32)
        return {**{f"{m}/{k}": v for m in lockstep_files.MODELS
                   for k, v in self.models[m].items()},
                "buffer/examples": self.examples.copy(), "buffer/labels": self.labels.copy(),
                "buffer/num_seen": np.int64(self.num_seen),
                "loss/total": np.float64(ce + lam * l_cons), "loss/ce": np.float64(ce),
                "loss/consistency": np.float64(l_cons), "teacher/stable_chosen": chosen}
