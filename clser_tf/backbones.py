"""The backbones of SPEC.md: the MNIST-family MLP and the CIFAR ResNet-18.

Each takes the benchmark's raw input (uint8 pixels by default) and does its own
test-time preprocessing (scaling, normalisation), so the replay buffer stores raw
samples and an exported model serves raw images.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import layers


def mlp(input_shape: Sequence[int] = (28, 28), num_classes: int = 10,
        input_dtype: str = "uint8", scale: float = 1.0 / 255.0,
        hidden_units: int = 100) -> keras.Model:
    """MLP 784 -> 100 -> 100 -> classes (ReLU, Glorot-uniform weights, zero biases).

    Inputs are multiplied by ``scale`` (pixels to [0, 1]) and flattened first.
    """
    inputs = keras.Input(shape=tuple(input_shape), dtype=input_dtype, name="image")
    x = layers.Rescaling(scale)(inputs)
    x = layers.Flatten()(x)
    for i in range(2):
        x = layers.Dense(hidden_units, activation="relu", name=f"fc{i + 1}")(x)
    outputs = layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name="mlp")


def _basic_block(x, filters: int, stride: int, name: str, norm):
    shortcut = x
    y = layers.Conv2D(filters, 3, stride, padding="same", use_bias=False,
                      name=f"{name}_conv1")(x)
    y = layers.ReLU()(norm(name=f"{name}_bn1")(y))
    y = layers.Conv2D(filters, 3, 1, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = norm(name=f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, stride, use_bias=False,
                                 name=f"{name}_shortcut_conv")(x)
        shortcut = norm(name=f"{name}_shortcut_bn")(shortcut)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def resnet18(input_shape: Sequence[int] = (32, 32, 3), num_classes: int = 10,
             mean: Sequence[float] | None = (0.4914, 0.4822, 0.4465),
             std: Sequence[float] | None = (0.2470, 0.2435, 0.2615),
             input_dtype: str = "uint8", base_filters: int = 64,
             sync_batch_norm: bool = False) -> keras.Model:
    """CIFAR ResNet-18: 3x3 stride-1 stem, no max-pool, BasicBlocks [2, 2, 2, 2], GAP, linear.

    Raw pixels are scaled to [0, 1] and normalised by ``mean``/``std`` inside the model;
    2-D (grayscale) inputs get a channel axis first.
    ``sync_batch_norm`` makes BatchNorm synchronise its batch statistics across replicas.
    """
    def norm(name):
        return layers.BatchNormalization(momentum=0.9, epsilon=1e-5,
                                         synchronized=sync_batch_norm, name=name)

    inputs = keras.Input(shape=tuple(input_shape), dtype=input_dtype, name="image")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    if len(input_shape) == 2:
        x = layers.Reshape((*input_shape, 1))(x)
    if mean is not None and std is not None:
        x = layers.Normalization(mean=list(mean), variance=[s * s for s in std])(x)
    x = layers.Conv2D(base_filters, 3, 1, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.ReLU()(norm("stem_bn")(x))
    for stage, blocks in enumerate([2, 2, 2, 2]):
        filters = base_filters * 2 ** stage
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, stride, f"stage{stage + 1}_block{block + 1}", norm)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name="resnet18")
