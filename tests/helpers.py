"""Helpers shared by several test modules (tiny backbones, loopback ports, subprocesses)."""

from __future__ import annotations

import socket
import subprocess

import keras

NUM_CLASSES = 4


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
