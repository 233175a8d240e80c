"""A pair of npz files, ``train.npz`` and ``test.npz``, as a user's own data."""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from clser_tf import sources
from clser_tf.errors import DatasetError, first_line
from clser_tf.user_data.common import UserData, some


_ARRAYS_LAYOUT = ("an arrays folder must hold train.npz and test.npz, each with arrays x "
                  "(uint8 or float images, N x H x W or N x H x W x C) and y (integer labels)")


def _load_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``x`` and ``y`` of one npz file."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path!r} does not exist: {_ARRAYS_LAYOUT}.")
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise DatasetError(f"{path!r} is a single .npy array, not an npz file of x and y "
                               f"(write it with numpy.savez(path, x=..., y=...)).")
        with npz:
            missing = [key for key in ("x", "y") if key not in npz.files]
            if missing:
                raise DatasetError(f"{path!r} has no array {' or '.join(missing)}: its arrays "
                                   f"are {some(npz.files) or 'none'}; {_ARRAYS_LAYOUT}.")
            return npz["x"], npz["y"]
    except DatasetError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DatasetError(f"{path!r} is not a valid npz file: {type(err).__name__}: "
                           f"{first_line(err)}") from err


def _check_images(path: str, x: np.ndarray) -> np.ndarray:
    """``x`` as uint8 (integers in 0..255) or float32 images, ``[N,H,W]`` or ``[N,H,W,C]``."""
    if x.dtype.kind not in "uif":
        raise DatasetError(f"x in {path!r} is {x.dtype}, not numeric: it must be uint8 or float "
                           f"images.")
    if x.ndim not in (3, 4):
        raise DatasetError(f"x in {path!r} has shape {x.shape}: it must be N x H x W or "
                           f"N x H x W x C images.")
    if len(x) == 0:
        raise DatasetError(f"x in {path!r} holds no images.")
    if x.dtype.kind == "f":
        x = x.astype(np.float32)
    elif x.dtype != np.uint8:
        if x.min() < 0 or x.max() > 255:
            raise DatasetError(f"x in {path!r} is {x.dtype} from {x.min()} to {x.max()}: integer "
                               f"images must be in 0..255 (or save them as float).")
        x = x.astype(np.uint8)
    return x[..., 0] if x.ndim == 4 and x.shape[-1] == 1 else x


def _check_labels(path: str, y: np.ndarray, n: int) -> np.ndarray:
    """``y`` as int64 ``[N]`` (``[N, 1]`` is flattened)."""
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"y in {path!r} is {y.dtype}: labels must be integers.")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetError(f"y in {path!r} has shape {y.shape}: labels must be N or N x 1.")
    if len(y) != n:
        raise DatasetError(f"{path!r} holds {n} images in x but {len(y)} labels in y.")
    return y.astype(np.int64)


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _load_npz(path)
    x = _check_images(path, x)
    return x, _check_labels(path, y, len(x))


def read_arrays(data_dir: str) -> UserData:
    """Reads ``DIR/train.npz`` and ``DIR/test.npz``, each with images ``x`` and labels ``y``.

    The classes are the sorted distinct train labels: a label becomes its index there and a
    class's name is ``str(label)``. ``N x H x W x 1`` images are squeezed to ``N x H x W``;
    float images become float32 (not rescaled), integer images uint8.
    """
    train_path, test_path = (os.path.join(data_dir, f"{split}.npz") for split in ("train", "test"))
    x_train, y_train = _read_npz(train_path)
    x_test, y_test = _read_npz(test_path)
    if (x_train.shape[1:], x_train.dtype) != (x_test.shape[1:], x_test.dtype):
        raise DatasetError(f"train images in {train_path!r} are {x_train.dtype} "
                           f"{x_train.shape[1:]} but test images in {test_path!r} are "
                           f"{x_test.dtype} {x_test.shape[1:]}: they must match.")
    classes = np.unique(y_train)
    unknown = np.setdiff1d(y_test, classes)
    if len(unknown):
        raise DatasetError(f"{test_path!r} has label {unknown[0]} which no train image in "
                           f"{train_path!r} has; the train labels are {some(classes)}.")
    data = sources.ArrayDataset(x_train, np.searchsorted(classes, y_train).astype(np.int64),
                                x_test, np.searchsorted(classes, y_test).astype(np.int64))
    origin = {"arrays": os.path.abspath(data_dir), "labels": [int(c) for c in classes]}
    return UserData(data, tuple(str(int(c)) for c in classes), origin)
