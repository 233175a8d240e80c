"""The backbones of SPEC.md (the MNIST-family MLP and the CIFAR ResNet-18) and your own,
named ``MODULE:FUNCTION``.

Each takes the benchmark's raw input (uint8 pixels by default) and does its own
test-time preprocessing (scaling, normalisation), so the replay buffer stores raw
samples and an exported model serves raw images. The preprocessing constants are exact in
a float64 model (the lock-step check's): Keras casts a Python float to a layer's dtype
through float32, so the scale is a float64 NumPy value and the normalisation is
:class:`Standardize`; in float32 both compute what Keras's own layers compute, bit for bit.
"""

from __future__ import annotations

import importlib
import math
import re
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops


def _torch_uniform(fan_in: int) -> keras.initializers.Initializer:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for conv/linear weights
    (kaiming_uniform with a=sqrt(5)) and for the linear bias."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def _torch_conv_init() -> keras.initializers.Initializer:
    """PyTorch's default convolution/linear weight init, U(+-1/sqrt(fan_in)), by fan-in."""
    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


@keras.saving.register_keras_serializable(package="clser_tf")
class TorchBatchNorm(layers.BatchNormalization):
    """BatchNormalization that updates its moving variance with the *unbiased* batch
    variance (times n/(n-1)), as PyTorch's BatchNorm does; normalisation itself uses the
    biased one, as both frameworks do. Masked and renorm calls fall back to Keras's own."""

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        mean, variance = self._moments(x, None)
        count = ops.cast(ops.size(x) // ops.shape(x)[-1], x.dtype)
        if self.synchronized:
            count = count * tf.distribute.get_replica_context().num_replicas_in_sync
        momentum = self.momentum
        self.moving_mean.assign(ops.cast(self.moving_mean, x.dtype) * momentum
                                + mean * (1.0 - momentum))
        self.moving_variance.assign(ops.cast(self.moving_variance, x.dtype) * momentum
                                    + variance * (count / (count - 1.0)) * (1.0 - momentum))
        outputs = ops.batch_normalization(
            x, mean, variance, axis=self.axis,
            offset=ops.cast(self.beta, x.dtype) if self.center else None,
            scale=ops.cast(self.gamma, x.dtype) if self.scale else None,
            epsilon=self.epsilon)
        return ops.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="clser_tf")
class Standardize(layers.Layer):
    """``(x - mean) / sqrt(std**2)`` per channel (last axis): Keras's ``Normalization``
    with a given mean and variance, except that the constants are exact in a float64 model
    (Keras's takes them through float32, also after a ``clone_model``); in other dtypes it
    computes the same bit for bit."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def _constant(self, values: np.ndarray):
        wide = "float64" if self.compute_dtype == "float64" else "float32"
        return ops.cast(ops.convert_to_tensor(values, dtype=wide), self.compute_dtype)

    def call(self, inputs):
        mean = self._constant(np.asarray(self.mean, np.float64))
        variance = self._constant(np.square(np.asarray(self.std, np.float64)))
        return ops.divide(ops.subtract(ops.cast(inputs, self.compute_dtype), mean),
                          ops.maximum(ops.sqrt(variance), keras.config.epsilon()))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean), "std": list(self.std)}


def mlp(input_shape: Sequence[int] = (28, 28), num_classes: int = 10,
        input_dtype: str = "uint8", scale: float = 1.0 / 255.0,
        hidden_units: int = 100) -> keras.Model:
    """MLP 784 -> 100 -> 100 -> classes (ReLU, Glorot-uniform weights, zero biases).

    Inputs are multiplied by ``scale`` (pixels to [0, 1]) and flattened first.
    """
    inputs = keras.Input(shape=tuple(input_shape), dtype=input_dtype, name="image")
    x = layers.Rescaling(np.float64(scale))(inputs)
    x = layers.Flatten()(x)
    for i in range(2):
        x = layers.Dense(hidden_units, activation="relu", name=f"fc{i + 1}")(x)
    outputs = layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name="mlp")


def _conv3x3(x, filters: int, stride: int, name: str):
    """The reference's conv3x3: padding 1 on every side (stride 2 too), no bias."""
    x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return layers.Conv2D(filters, 3, stride, padding="valid", use_bias=False,
                         kernel_initializer=_torch_conv_init(), name=name)(x)


def _basic_block(x, filters: int, stride: int, name: str, norm):
    shortcut = x
    y = _conv3x3(x, filters, stride, f"{name}_conv1")
    y = layers.ReLU()(norm(name=f"{name}_bn1")(y))
    y = _conv3x3(y, filters, 1, f"{name}_conv2")
    y = norm(name=f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, stride, use_bias=False,
                                 kernel_initializer=_torch_conv_init(),
                                 name=f"{name}_shortcut_conv")(x)
        shortcut = norm(name=f"{name}_shortcut_bn")(shortcut)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def resnet18(input_shape: Sequence[int] = (32, 32, 3), num_classes: int = 10,
             mean: Sequence[float] | None = (0.4914, 0.4822, 0.4465),
             std: Sequence[float] | None = (0.2470, 0.2435, 0.2615),
             input_dtype: str = "uint8", base_filters: int = 64,
             sync_batch_norm: bool = False, scale: float = 1.0 / 255.0) -> keras.Model:
    """CIFAR ResNet-18 as the reference's backbone/ResNet18.py builds it: 3x3 stride-1
    stem, no max-pool, BasicBlocks [2, 2, 2, 2], GAP, linear.

    Every 3x3 convolution pads 1 pixel on each side (stride 2 included; Keras "same" would
    pad 0 before / 1 after), weights and the linear bias use PyTorch's default
    U(+-1/sqrt(fan_in)), BatchNorm has PyTorch's momentum 0.1, eps 1e-5 and unbiased
    running variance (:class:`TorchBatchNorm`).

    Raw inputs are multiplied by ``scale`` (pixels to [0, 1]) and normalised by
    ``mean``/``std`` inside the model;
    2-D (grayscale) inputs get a channel axis first.
    ``sync_batch_norm`` makes BatchNorm synchronise its batch statistics across replicas.
    """
    def norm(name):
        return TorchBatchNorm(momentum=0.9, epsilon=1e-5,
                              synchronized=sync_batch_norm, name=name)

    inputs = keras.Input(shape=tuple(input_shape), dtype=input_dtype, name="image")
    x = layers.Rescaling(np.float64(scale))(inputs)
    if len(input_shape) == 2:
        x = layers.Reshape((*input_shape, 1))(x)
    if mean is not None and std is not None:
        x = Standardize(mean, std, name="normalization")(x)
    x = _conv3x3(x, base_filters, 1, "stem_conv")
    x = layers.ReLU()(norm("stem_bn")(x))
    for stage, blocks in enumerate([2, 2, 2, 2]):
        filters = base_filters * 2 ** stage
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, stride, f"stage{stage + 1}_block{block + 1}", norm)
    x = layers.GlobalAveragePooling2D()(x)
    head_init = _torch_uniform(x.shape[-1])
    outputs = layers.Dense(num_classes, kernel_initializer=head_init,
                           bias_initializer=head_init, name="classifier")(x)
    return keras.Model(inputs, outputs, name="resnet18")


BUILT_IN = ("mlp", "resnet18")
_CUSTOM = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def custom_function(spec: str) -> Callable[..., keras.Model]:
    """The function ``FUNCTION`` of ``MODULE:FUNCTION`` (imported from the Python path);
    ``ValueError`` naming the spec unless it imports and is callable."""
    if not _CUSTOM.match(spec):
        raise ValueError(f"--backbone={spec!r} is invalid: it must be one of "
                         f"{', '.join(BUILT_IN)} or MODULE:FUNCTION.")
    module_name, function_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any failure of the user's module is a bad --backbone
        raise ValueError(f"--backbone={spec!r} is invalid: module {module_name!r} cannot be "
                         f"imported ({type(error).__name__}: {error}).") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ValueError(f"--backbone={spec!r} is invalid: {module_name} has no function "
                         f"{function_name!r}.")
    return function


def custom(spec: str, input_shape: Sequence[int], num_classes: int) -> keras.Model:
    """``FUNCTION(input_shape, num_classes)`` of ``MODULE:FUNCTION``, checked: a built
    Keras model from raw inputs of ``input_shape`` to ``num_classes`` logits."""
    model = custom_function(spec)(tuple(input_shape), num_classes)
    if not isinstance(model, keras.Model) or not model.built or len(model.inputs or []) != 1:
        raise ValueError(f"--backbone={spec!r} is invalid: it returned {type(model).__name__}, "
                         "not a built keras.Model with one input (start it with "
                         "keras.Input(shape=input_shape)).")
    inputs, outputs = tuple(model.inputs[0].shape[1:]), model.outputs[0].shape
    if inputs != tuple(input_shape):
        raise ValueError(f"--backbone={spec!r} is invalid: its input shape is {inputs}, the "
                         f"data's is {tuple(input_shape)}.")
    if len(outputs) != 2 or outputs[-1] != num_classes:
        raise ValueError(f"--backbone={spec!r} is invalid: its output shape is "
                         f"{tuple(outputs)}; it must be (batch, {num_classes}), one logit per "
                         "class.")
    return model
