"""Whether the train step runs as one XLA computation: ``jit_compile`` resolved.

``"auto"`` is on with one replica on a GPU (a step at the reference's batch sizes is bound
by kernel launches, which XLA fuses) and on a CPU for a backbone without convolutions;
off on a CPU for a convolutional backbone and under several replicas (where True is
refused: one XLA computation cannot reach the variables of several devices). Measured on a CPU
(BUILD_NOTES, "XLA step"): the MLP step is faster with XLA, the ResNet-18 step slower
(XLA:CPU's convolutions are slower than TensorFlow's oneDNN ones).
"""

from __future__ import annotations

import keras
import tensorflow as tf

JIT_COMPILE_CHOICES = ("auto", "true", "false")


def has_convolutions(model: keras.Model) -> bool:
    """Whether any layer of ``model`` (nested ones included) is a convolution."""
    return any("Conv" in cls.__name__ for layer in model._flatten_layers()
               for cls in type(layer).__mro__)


def resolve_jit_compile(value: bool | str, strategy: tf.distribute.Strategy,
                        backbone: keras.Model) -> bool:
    """``value`` (``"auto"``, True/False or ``"true"``/``"false"``) as a bool for
    ``backbone`` under ``strategy``; anything else raises a one-line ``ValueError``."""
    if isinstance(value, str) and value.lower() in JIT_COMPILE_CHOICES:
        value = {"auto": "auto", "true": True, "false": False}[value.lower()]
    if value == "auto":
        on_gpu = bool(tf.config.list_logical_devices("GPU"))
        return strategy.num_replicas_in_sync == 1 and (
            on_gpu or not has_convolutions(backbone))
    if value is True and strategy.num_replicas_in_sync > 1:
        raise ValueError(
            f"jit_compile=True is invalid under {strategy.num_replicas_in_sync} replicas: "
            "the XLA step runs on one device; use auto or false.")
    if isinstance(value, bool):
        return value
    raise ValueError(f"jit_compile={value!r} is invalid: it must be one of "
                     f"{', '.join(JIT_COMPILE_CHOICES)} (or a bool).")
