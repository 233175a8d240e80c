"""Every strategy trains what one device trains, with any ``steps_per_execution``.

The matrix: strategy (one device; MirroredStrategy on two logical CPUs with its default
collective all-reduce, as a user's code gets it; MultiWorkerMirroredStrategy with two
processes on 127.0.0.1) x ``steps_per_execution`` (1, and 4, which does not divide the 6
steps of an epoch, so every epoch ends with a short call) x backbone (MLP; a small
BatchNorm CNN with synchronised BatchNorm and crop-and-flip replay augmentation) x a
resume from a checkpoint taken mid-task (three steps into task 2, in a fresh model).
Each cell is a real ``fit`` on tiny data, compared with one device at
``steps_per_execution=1`` without a resume: MLP within 1e-5 on every weight, the CNN
within 1e-4, buffers and global steps identical.

Run as a script (``python test_strategy_matrix.py WORKER_INDEX OUT_FILE``, with
``TF_CONFIG`` set) this file is one worker of the multi-worker cells: both workers train
every cell in one process each, and worker 0 saves the results.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import tempfile

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from clser_tf.augment import RandomCropFlip  # noqa: E402
from clser_tf.distribution import make_strategy  # noqa: E402
from clser_tf.model import CLSER  # noqa: E402
from helpers import free_port, run_all, tiny_bn_cnn, tiny_mlp  # noqa: E402

BATCH, STEPS_PER_EPOCH = 8, 6
TOLERANCE = {"mlp": 1e-5, "bn_cnn": 1e-4}
CELLS = list(itertools.product(("mlp", "bn_cnn"), (1, 4), (False, True)))
TIMEOUT_S = 420


def _model(strategy: tf.distribute.Strategy, kind: str, steps_per_execution: int) -> CLSER:
    augment = {} if kind == "mlp" else dict(replay_augment=RandomCropFlip(padding=2),
                                           augment_current_batch=True)
    with strategy.scope():
        model = CLSER(tiny_mlp() if kind == "mlp" else tiny_bn_cnn(synchronized=True), buffer_size=20, replay_batch_size=6, reg_weight=0.5,
                      stable_alpha=0.9, stable_update_freq=0.6, plastic_alpha=0.8,
                      plastic_update_freq=0.9, seed=7, **augment)
        model.compile(optimizer=keras.optimizers.SGD(0.05),
                      steps_per_execution=steps_per_execution)
        model.optimizer.build(model.trainable_variables)  # restorable before the first fit
    return model


def _task_batches(kind: str, task: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(task)
    n = BATCH * STEPS_PER_EPOCH
    if kind == "mlp":
        x = rng.normal(size=(n, 6)).astype(np.float32)
    else:
        x = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return x, rng.choice((2 * task, 2 * task + 1), n).astype(np.int32)


def _stream(x: np.ndarray, y: np.ndarray, first_batch: int = 0, last_batch: int | None = None):
    last_batch = STEPS_PER_EPOCH if last_batch is None else last_batch
    rows = slice(first_batch * BATCH, last_batch * BATCH)
    return tf.data.Dataset.from_tensor_slices((x[rows], y[rows])).batch(BATCH,
                                                                        drop_remainder=True)


def train_cell(strategy: tf.distribute.Strategy, kind: str, steps_per_execution: int,
               resume: bool, checkpoint_dir: str) -> dict[str, np.ndarray]:
    """Task 1 for two epochs, then task 2, whose first three steps and last three steps
    are separate fits; with ``resume`` the last three run in a fresh model restored from a
    checkpoint written after the first three."""
    model = _model(strategy, kind, steps_per_execution)
    x, y = _task_batches(kind, 0)
    model.fit(_stream(x, y), epochs=2, verbose=0, shuffle=False)
    x, y = _task_batches(kind, 1)
    model.fit(_stream(x, y, 0, 3), verbose=0, shuffle=False)
    if resume:
        path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(
            os.path.join(checkpoint_dir, "ckpt"))
        model = _model(strategy, kind, steps_per_execution)
        tf.train.Checkpoint(model=model, optimizer=model.optimizer).restore(
            path).assert_consumed()
    model.fit(_stream(x, y, 3), verbose=0, shuffle=False)
    with strategy.scope():
        state = {f"{name}/{i}": w for name in ("working", "plastic", "stable")
                 for i, w in enumerate(getattr(model, f"{name}_model").get_weights())}
        state["buffer/inputs"] = model.buffer.inputs.numpy()
        state["buffer/labels"] = model.buffer.labels.numpy()
        state["buffer/num_seen"] = model.buffer.num_seen.numpy()
        state["global_step"] = model.global_step.numpy()
    return state


def cell_name(kind: str, steps_per_execution: int, resume: bool) -> str:
    return f"{kind}-spe{steps_per_execution}" + ("-resumed" if resume else "")


def assert_same_training(got: dict[str, np.ndarray], want: dict[str, np.ndarray],
                         kind: str) -> None:
    assert got.keys() == want.keys()
    for key in want:
        if key.startswith(("buffer/", "global_step")):
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
        else:
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=TOLERANCE[kind],
                                       err_msg=key)


_REFERENCE: dict[str, dict[str, np.ndarray]] = {}


def one_device_reference(kind: str) -> dict[str, np.ndarray]:
    """One device, one step per call, no resume: what every cell must equal."""
    if kind not in _REFERENCE:
        with tempfile.TemporaryDirectory() as tmp:
            _REFERENCE[kind] = train_cell(tf.distribute.get_strategy(), kind, 1, False, tmp)
    return _REFERENCE[kind]


def _strategy(name: str) -> tf.distribute.Strategy:
    if name == "one_device":
        return tf.distribute.get_strategy()
    if name == "mirrored":  # what --strategy=mirrored builds on a machine without GPUs
        return make_strategy("mirrored")
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])  # collective all-reduce


MIRRORED_CELLS = ([("one_device", *cell) for cell in CELLS if cell[1:] != (1, False)]
                  + [("mirrored", *cell) for cell in CELLS]
                  # a user's MirroredStrategy(devices): CPU collectives, MLP (BUILD_NOTES)
                  + [("mirrored_collective", *cell) for cell in CELLS if cell[0] == "mlp"])


@pytest.mark.parametrize("strategy_name,kind,steps_per_execution,resume", MIRRORED_CELLS,
                         ids=[f"{cell[0]}-{cell_name(*cell[1:])}" for cell in MIRRORED_CELLS])
def test_cell_equals_one_device(strategy_name, kind, steps_per_execution, resume, tmp_path):
    got = train_cell(_strategy(strategy_name), kind, steps_per_execution, resume,
                     str(tmp_path))
    assert int(got["global_step"]) == 3 * STEPS_PER_EPOCH
    assert_same_training(got, one_device_reference(kind), kind)


def test_evaluate_with_several_steps_per_call_under_mirrored():
    """``evaluate`` shares the multi-step loop: a short last call, the one-device loss."""
    x, y = _task_batches("mlp", 0)
    results = []
    for strategy in (_strategy("one_device"), _strategy("mirrored_collective")):
        model = _model(strategy, "mlp", 4)
        results.append(model.evaluate(_stream(x, y), verbose=0, return_dict=True))
    assert results[1] == pytest.approx(results[0], abs=1e-6)


def test_multi_worker_cells_equal_one_device(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
    out = tmp_path / "cells.npz"
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    run_all([([sys.executable, os.path.abspath(__file__), str(i), str(out)],
              dict(env, TF_CONFIG=json.dumps({"cluster": cluster,
                                              "task": {"type": "worker", "index": i}})))
             for i in range(2)], cwd=str(tmp_path), timeout_s=TIMEOUT_S)
    saved = np.load(out)
    for cell in CELLS:
        name = cell_name(*cell)
        got = {key[len(name) + 1:]: saved[key] for key in saved.files
               if key.startswith(name + ":")}
        assert int(got["global_step"]) == 3 * STEPS_PER_EPOCH, name
        assert_same_training(got, one_device_reference(cell[0]), cell[0])


def _worker_main(index: int, out_file: str) -> None:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    results = {}
    for cell in CELLS:
        with tempfile.TemporaryDirectory() as tmp:  # every worker writes its checkpoint
            state = train_cell(strategy, *cell, checkpoint_dir=tmp)
        results.update({f"{cell_name(*cell)}:{key}": value for key, value in state.items()})
    if index == 0:
        np.savez(out_file, **results)


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]), sys.argv[2])
