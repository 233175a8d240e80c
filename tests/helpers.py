"""Helpers shared by several test modules: tiny backbones, data files of each format,
configs parsed as the command line parses them, loopback ports and subprocesses."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from clser_tf import benchmarks, cli, sources, splits
from clser_tf.callbacks import TrainingGuard
from clser_tf.config import RunConfig

NUM_CLASSES = 4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGFILES = os.path.join(ROOT, "flags")
TIMEOUT_S = 240


@contextlib.contextmanager
def keras_dtype(dtype: str):
    """Keras's float type and default dtype policy set to ``dtype`` for the block (models,
    optimizers and metrics built in it take that dtype), as they were afterwards."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


def tiny_mlp() -> keras.Model:
    """6 float inputs -> 16 ReLU -> NUM_CLASSES logits, with seeded initial weights."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES)(hidden))


def tiny_bn_cnn(synchronized: bool) -> keras.Model:
    """8x8x3 uint8 images -> conv, BatchNorm, ReLU, pool -> NUM_CLASSES logits (seeded)."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(synchronized=synchronized)(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES)(x))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_all(commands: list[tuple[list[str], dict]], cwd: str, timeout_s: float) -> list[str]:
    """Starts every ``(command, environment)``, waits for all (bounded), always cleans them
    up, asserts each exited 0, and returns their combined stdout/stderr."""
    procs = [subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for cmd, env in commands]
    try:
        outputs = [p.communicate(timeout=timeout_s)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    return outputs


IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file holding a uint8 array."""
    header = struct.pack(f">I{array.ndim}I", 0x0800 + array.ndim, *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dir(directory, data: sources.ArrayDataset, gz: bool = False) -> str:
    """Writes ``data`` as the four MNIST IDX files (gzipped with ``gz``); returns the folder."""
    os.makedirs(directory, exist_ok=True)
    arrays = (data.x_train, data.y_train, data.x_test, data.y_test)
    for name, array in zip(IDX_NAMES, arrays):
        path = os.path.join(directory, name + (".gz" if gz else ""))
        with (gzip.open if gz else open)(path, "wb") as f:
            f.write(idx_bytes(array))
    return str(directory)


def random_dataset(image_shape, num_train, num_test, num_classes, seed=0) -> sources.ArrayDataset:
    """Random uint8 images with int64 labels cycling through every class."""
    rng = np.random.default_rng(seed)
    return sources.ArrayDataset(
        rng.integers(0, 256, (num_train, *image_shape), dtype=np.uint8),
        rng.permutation(np.arange(num_train) % num_classes).astype(np.int64),
        rng.integers(0, 256, (num_test, *image_shape), dtype=np.uint8),
        rng.permutation(np.arange(num_test) % num_classes).astype(np.int64))


def cifar_pickles(data: sources.ArrayDataset, num_classes: int) -> dict[str, bytes]:
    """The "python version" batch files of ``data`` (train split in 5 batches for CIFAR-10)."""
    label_key = b"labels" if num_classes == 10 else b"fine_labels"

    def batch(x, y):
        flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # CIFAR stores planes R, G, B
        return pickle.dumps({b"data": flat, label_key: [int(v) for v in y]})

    if num_classes == 10:
        parts = np.array_split(np.arange(len(data.y_train)), 5)
        files = {f"data_batch_{i + 1}": batch(data.x_train[p], data.y_train[p])
                 for i, p in enumerate(parts)}
        return {**files, "test_batch": batch(data.x_test, data.y_test)}
    return {"train": batch(data.x_train, data.y_train), "test": batch(data.x_test, data.y_test)}


CIFAR_FOLDERS = {10: "cifar-10-batches-py", 100: "cifar-100-python"}


def write_cifar_dir(parent, data: sources.ArrayDataset, num_classes: int) -> str:
    """Writes the extracted CIFAR folder under ``parent``; returns the folder's path."""
    folder = os.path.join(parent, CIFAR_FOLDERS[num_classes])
    os.makedirs(folder)
    for name, content in cifar_pickles(data, num_classes).items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(content)
    return folder


def comparable_results(output_dir) -> dict:
    """results.json without timings and the paths that name the run's folder."""
    with open(os.path.join(output_dir, "results.json")) as f:
        results = json.load(f)
    results.pop("timings")
    for key in ("output_dir", "export_dir", "checkpoint_dir"):
        results["config"].pop(key)
    return results


def flagfile(name: str) -> str:
    return f"--flagfile={os.path.join(FLAGFILES, name)}"


def make_config(*argv: str) -> RunConfig:
    """Parses ``argv`` as the command line does and validates it."""
    return cli.parse_config(["clser_tf", *argv])


def ring_dataset(train_per_class: int, test_per_class: int, seed: int = 0):
    """28x28 images of class c: a bright ring of radius c + 2 on noise (rotation-invariant)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:28, :28]
    radius = np.hypot(rows - 13.5, cols - 13.5)

    def split(per_class):
        labels = rng.permutation(np.tile(np.arange(10), per_class))
        images = rng.integers(0, 60, (len(labels), 28, 28)).astype(np.uint8)
        for image, label in zip(images, labels):
            image[(radius >= label + 2) & (radius < label + 3.2)] = 255
        return images, labels.astype(np.int64)

    return sources.ArrayDataset(*split(train_per_class), *split(test_per_class))


TOY = "seq-toy"  # the benchmark that register_toy_benchmark adds


def register_toy_benchmark(monkeypatch) -> benchmarks.Declaration:
    """Registers seq-toy, for the test: one declaration (8x8 RGB images, 4 classes in 2
    class-IL tasks, read from random data) that reads the benchmark-specific gcil_seed."""
    data = random_dataset((8, 8, 3), 48, 16, 4)
    declared = benchmarks.Declaration(
        benchmarks.Setting.CLASS_IL, (8, 8, 3), num_classes=4, num_tasks=2, backbone="mlp",
        augment=False, mean=None, std=None, split=splits.class_il,
        read=lambda data_dir: data, class_names=("ant", "bee", "cat", "dog"),
        settings=("gcil_seed",))
    monkeypatch.setitem(benchmarks.BENCHMARKS, TOY, declared)
    return declared


def main_command(data_dir: str, output_dir: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "clser_tf.main", "--benchmark=seq-fmnist",
            f"--data_dir={data_dir}", f"--output_dir={output_dir}", "--buffer_size=20",
            "--batch_size=8", "--replay_batch_size=8", "--lr=0.05", "--epochs=1",
            "--steps_per_execution=1", "--eval_batch_size=50", "--verbose=0", "--seed=0",
            *extra]


def mirrored() -> tf.distribute.MirroredStrategy:
    """Two logical CPUs, reducing on one device (see BUILD_NOTES: CPU collectives)."""
    return tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice())


def checkpoint_values(directory) -> dict[str, np.ndarray]:
    """Every value of the newest checkpoint but TF's save counter and the run state (its
    results are compared through results.json; it also holds the timings)."""
    reader = tf.train.load_checkpoint(str(directory))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith(("save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH",
                                    "run_state"))}


def assert_same_state(output_dir, expected_dir):
    assert comparable_results(output_dir) == comparable_results(expected_dir)
    values, expected = (checkpoint_values(os.path.join(d, "checkpoints"))
                        for d in (output_dir, expected_dir))
    assert values.keys() == expected.keys()
    for name, value in values.items():
        assert value.tobytes() == expected[name].tobytes(), name  # bit for bit


def sigint_at_step(monkeypatch, step: int) -> None:
    """Makes the runner's next run raise SIGINT (which its handler notes) after global step
    ``step``, through its TrainingGuard callback (``monkeypatch.undo()`` ends it)."""
    batch_end = TrainingGuard.on_train_batch_end

    def interrupt(self, batch, logs=None):
        if int(self.model.global_step.numpy()) == step:
            signal.raise_signal(signal.SIGINT)
        batch_end(self, batch, logs)

    monkeypatch.setattr(TrainingGuard, "on_train_batch_end", interrupt)
