"""Whether the train step runs as one XLA computation: ``jit_compile`` resolved.

``"auto"`` is on with one replica on a GPU (a step at the reference's batch sizes is bound
by kernel launches, which XLA fuses) and off on a CPU, where it is measured not to win
(BUILD_NOTES, "The XLA step"): XLA makes the MLP step 13-17 % faster but its compile costs
the default run what it gains, and 0.2 GB of peak memory; it makes the ResNet-18 step 40 %
slower (XLA:CPU's convolutions are slower than TensorFlow's oneDNN ones). Under several
replicas it is off, and True is refused: one XLA computation cannot reach the variables of
several devices.
"""

from __future__ import annotations

import tensorflow as tf

JIT_COMPILE_CHOICES = ("auto", "true", "false")


def resolve_jit_compile(value: bool | str, strategy: tf.distribute.Strategy) -> bool:
    """``value`` (``"auto"``, True/False or ``"true"``/``"false"``) as a bool under
    ``strategy``; anything else raises a one-line ``ValueError``."""
    if isinstance(value, str) and value.lower() in JIT_COMPILE_CHOICES:
        value = {"auto": "auto", "true": True, "false": False}[value.lower()]
    if value == "auto":
        return strategy.num_replicas_in_sync == 1 and bool(
            tf.config.list_logical_devices("GPU"))
    if value is True and strategy.num_replicas_in_sync > 1:
        raise ValueError(
            f"jit_compile=True is invalid under {strategy.num_replicas_in_sync} replicas: "
            "the XLA step runs on one device; use auto or false.")
    if isinstance(value, bool):
        return value
    raise ValueError(f"jit_compile={value!r} is invalid: it must be one of "
                     f"{', '.join(JIT_COMPILE_CHOICES)} (or a bool).")
