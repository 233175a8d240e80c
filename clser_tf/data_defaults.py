"""Your own data as a benchmark: the checks of its arrays and what it defaults to (the
backbone, the augmentation, the per-channel normalisation computed from its training split).
"""

from __future__ import annotations

import numpy as np

from clser_tf import sources

_STATISTICS_CHUNK = 4096  # images per chunk when computing the channel statistics


def _checked_images(split: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim not in (3, 4) or not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"x_{split} of shape {x.shape} and dtype {x.dtype} is invalid: images "
                         "must be uint8 or float, N x H x W or N x H x W x C.")
    if x.ndim == 4 and x.shape[-1] == 1:  # one channel: stored as N x H x W
        x = x[..., 0]
    return x if x.dtype == np.uint8 else x.astype(np.float32)


def _checked_labels(split: str, y: np.ndarray, count: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y_{split} of shape {y.shape} and dtype {y.dtype} is invalid: labels "
                         "must be one integer per image.")
    if len(y) != count:
        raise ValueError(f"x_{split} has {count} images but y_{split} has {len(y)} labels.")
    return y.astype(np.int64)


def checked_arrays(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                   y_test: np.ndarray) -> tuple[sources.ArrayDataset, int]:
    """The arrays as an :class:`~clser_tf.sources.ArrayDataset` and the number of classes;
    ``ValueError`` (naming the bad array or label) unless the images are uint8 or float of
    one shape and the labels are integers ``0..K-1``, each with training samples, with no
    test label unknown in training."""
    x_train, x_test = _checked_images("train", x_train), _checked_images("test", x_test)
    y_train = _checked_labels("train", y_train, len(x_train))
    y_test = _checked_labels("test", y_test, len(x_test))
    if x_train.shape[1:] != x_test.shape[1:] or x_train.dtype != x_test.dtype:
        raise ValueError(f"train images ({x_train.shape[1:]}, {x_train.dtype}) and test images "
                         f"({x_test.shape[1:]}, {x_test.dtype}) differ: they must match.")
    if not len(y_train) or y_train.min() < 0:
        raise ValueError("y_train is invalid: labels must be integers >= 0, with at least "
                         "one training image.")
    num_classes = int(y_train.max()) + 1
    missing = sorted(set(range(num_classes)) - set(np.unique(y_train).tolist()))
    if missing:
        raise ValueError(f"class {missing[0]} has no training images: labels must be "
                         f"0..{num_classes - 1}, each with training images.")
    unknown = sorted(set(np.unique(y_test).tolist()) - set(range(num_classes)))
    if unknown:
        raise ValueError(f"test label {unknown[0]} is unknown in training (labels "
                         f"0..{num_classes - 1}).")
    return sources.ArrayDataset(x_train, y_train, x_test, y_test), num_classes


def input_scale(dtype: np.dtype | str) -> float:
    """What the backbone multiplies raw inputs by: uint8 pixels to [0, 1], floats as is."""
    return 1.0 / 255.0 if np.dtype(dtype) == np.uint8 else 1.0


def channel_statistics(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of images ``x`` after :func:`input_scale`
    (one channel for N x H x W images), accumulated in float64 chunk by chunk."""
    scale = input_scale(x.dtype)
    channels = 1 if x.ndim == 3 else x.shape[-1]
    total = np.zeros(channels)
    squares = np.zeros(channels)
    for start in range(0, len(x), _STATISTICS_CHUNK):
        chunk = x[start:start + _STATISTICS_CHUNK].astype(np.float64).reshape(
            -1, channels) * scale
        total += chunk.sum(0)
        squares += (chunk * chunk).sum(0)
    count = x.size / channels
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
    return (tuple(round(float(m), 6) for m in mean),
            tuple(round(float(max(s, 1e-6)), 6) for s in std))


def default_backbone(input_shape: tuple[int, ...]) -> str:
    """``mlp`` for single-channel images of at most 32 x 32, else ``resnet18``."""
    single_channel = len(input_shape) == 2
    return "mlp" if single_channel and max(input_shape) <= 32 else "resnet18"


def default_augment(input_shape: tuple[int, ...]) -> bool:
    """Crop-and-flip for colour (3-channel) images, none otherwise."""
    return len(input_shape) == 3 and input_shape[-1] == 3
