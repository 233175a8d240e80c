"""A user's own image-classification data: a tensorflow-datasets name, an image folder, npz.

Each reader returns a :class:`UserData`: the arrays (an :class:`sources.ArrayDataset` of uint8
images, or float32 when the user's arrays were float, and int64 labels in
``[0, len(class_names))``), the class names, and a JSON-ready record of where the data came
from. Single-channel images are ``[N, H, W]``, others ``[N, H, W, C]``. Every problem a user
can fix raises a one-line :class:`DatasetError` naming the bad value or path.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
import zlib

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from clser_tf import sources
from clser_tf.errors import DatasetError, first_line


@dataclasses.dataclass(frozen=True)
class UserData:
    """A user's dataset: arrays, class names, and where it came from."""

    data: sources.ArrayDataset  # x: uint8 (float32 for float arrays) [N,H,W] or [N,H,W,C]
    class_names: tuple[str, ...]  # label k's name
    origin: dict  # JSON-ready record for results.json


def parse_image_size(text: str) -> tuple[int, int]:
    """``"H,W"`` (the ``--image_size`` flag) as ``(H, W)``."""
    parts = text.split(",")
    try:
        size = tuple(int(part) for part in parts)
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"--image_size={text!r} is invalid: it must be H,W with two integers "
                         f">= 1.")
    return size


def _check_image_size(image_size: tuple[int, int] | None) -> None:
    valid = (image_size is None or (
        isinstance(image_size, (tuple, list)) and len(image_size) == 2
        and all(isinstance(n, (int, np.integer)) and n >= 1 for n in image_size)))
    if not valid:
        raise ValueError(f"image_size={image_size!r} is invalid: it must be (H, W) with two "
                         f"integers >= 1, or None.")


def _resize(image: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """``tf.image.resize`` (bilinear) back to the image's dtype (integers rounded, clipped)."""
    resized = tf.image.resize(image, image_size)
    if image.dtype.is_integer:
        resized = tf.clip_by_value(tf.round(resized), image.dtype.min, image.dtype.max)
    return tf.cast(resized, image.dtype)


def _some(items: list) -> str:
    """At most ten items, comma-separated (a dataset may have a thousand classes)."""
    items = [str(item) for item in items]
    return ", ".join(items[:10]) + (f", ... ({len(items)} in all)" if len(items) > 10 else "")


def _size_list(image_size: tuple[int, int] | None) -> list[int] | None:
    return None if image_size is None else [int(n) for n in image_size]


# ----------------------------------------------------------------------------- tfds

_HELD_OUT = "train[held-out 20%]"
_HELD_OUT_SEED = 0


def _pick_feature(features: tfds.features.FeaturesDict, kind: type, preferred: str) -> str | None:
    """The key of a top-level feature of type ``kind``: ``preferred`` if it is one, else the
    first."""
    keys = [key for key, feature in features.items() if isinstance(feature, kind)]
    return preferred if preferred in keys else (keys[0] if keys else None)


def _describe(features: tfds.features.FeaturesDict) -> str:
    return ", ".join(f"{key} ({type(feature).__name__})" for key, feature in features.items())


def _tfds_builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError as err:
        where = f" and data_dir={data_dir!r} holds none by that name" if data_dir else ""
        raise DatasetError(
            f"tfds:{name} does not exist: tensorflow-datasets {tfds.__version__} has no dataset "
            f"{name!r}{where} (see https://www.tensorflow.org/datasets/catalog/overview)."
        ) from err
    except Exception as err:  # a bad version or config, a missing module
        raise DatasetError(f"tensorflow-datasets cannot make a builder for tfds:{name} "
                           f"(data_dir={data_dir!r}): {type(err).__name__}: "
                           f"{first_line(err)}") from err


def _test_split(name: str, known_splits: list[str]) -> str:
    """The test split: "test", else "validation", else the held-out fifth of "train". Without
    split names (``tfds.testing.mock_data`` without metadata files accepts any split) it is
    "test"."""
    if not known_splits:
        return "test"
    if "train" not in known_splits:
        raise DatasetError(f"tfds:{name} has no 'train' split: its splits are "
                           f"{', '.join(known_splits)}.")
    for split in ("test", "validation"):
        if split in known_splits:
            return split
    return _HELD_OUT


def _stack_one_size(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Collects a split whose images may differ in size one by one; all must have one size."""
    images, labels = [], []
    for index, (image, label) in enumerate(tfds.as_numpy(dataset)):
        if images and image.shape != images[0].shape:
            raise DatasetError(
                f"images of different sizes: example 0 is "
                f"{images[0].shape[0]}x{images[0].shape[1]}, example {index} is "
                f"{image.shape[0]}x{image.shape[1]}; pass --image_size=H,W (image_size=(H, W)) "
                f"to resize them.")
        images.append(image)
        labels.append(label)
    if not images:
        raise DatasetError("the split is empty")
    x = np.stack(images)
    return (x[..., 0] if x.ndim == 4 and x.shape[-1] == 1 else x), np.asarray(labels, np.int64)


def _read_tfds_split(builder: tfds.core.DatasetBuilder, name: str, split: str,
                     keys: tuple[str, str], image_size: tuple[int, int] | None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The (image, label) pairs of one split as numpy arrays, resized if ``image_size``."""
    image_key, label_key = keys
    try:
        dataset = builder.as_dataset(split=split, shuffle_files=False).map(
            lambda example: (example[image_key], example[label_key]))
        if image_size is not None:
            dataset = dataset.map(lambda image, label: (_resize(image, image_size), label))
        if dataset.element_spec[0].shape.is_fully_defined():
            return sources.tfds_split_to_numpy(dataset)
        return _stack_one_size(dataset)
    except DatasetError as err:  # the split is empty, or its images differ in size
        raise DatasetError(f"tfds:{name} split {split!r}: {err}") from err
    except Exception as err:  # corrupt or missing record files
        raise DatasetError(f"tensorflow-datasets could not read split {split!r} of tfds:{name}: "
                           f"{type(err).__name__}: {first_line(err)}") from err


def _hold_out(name: str, x: np.ndarray, y: np.ndarray) -> sources.ArrayDataset:
    """Splits "train" into 4/5 train and 1/5 test by a permutation with numpy seed 0."""
    if len(x) < 2:
        raise DatasetError(f"tfds:{name} has no test or validation split and {len(x)} train "
                           f"example(s): too few to hold out a test fifth.")
    order = np.random.default_rng(_HELD_OUT_SEED).permutation(len(x))
    held_out = max(1, len(x) // 5)
    test, train = np.sort(order[:held_out]), np.sort(order[held_out:])
    return sources.ArrayDataset(x[train], y[train], x[test], y[test])


def read_tfds(name: str, data_dir: str | None = None,
              image_size: tuple[int, int] | None = None) -> UserData:
    """Reads tensorflow-datasets image classification ``name`` (e.g. ``"svhn_cropped"``).

    The images come from its ``tfds.features.Image`` feature and the labels and class names
    from its ``tfds.features.ClassLabel`` (keys "image" and "label" preferred when there are
    several). The test split is "test", else "validation", else a deterministic fifth of
    "train" held out. ``data_dir`` is TFDS's data dir. Images of different sizes need
    ``image_size=(H, W)``, which resizes every image (bilinear).
    """
    _check_image_size(image_size)
    builder = _tfds_builder(name, data_dir)
    features = builder.info.features
    image_key = _pick_feature(features, tfds.features.Image, "image")
    label_key = _pick_feature(features, tfds.features.ClassLabel, "label")
    for key, what in ((image_key, "image (Image)"), (label_key, "label (ClassLabel)")):
        if key is None:
            raise DatasetError(f"tfds:{name} has no {what} feature: features are "
                               f"{_describe(features)}.")
    try:
        builder.download_and_prepare()
    except Exception as err:  # tfds fails in many ways offline
        raise sources.tfds_failure(name, data_dir, err) from err
    test_split = _test_split(name, list(builder.info.splits))
    keys = (image_key, label_key)
    x_train, y_train = _read_tfds_split(builder, name, "train", keys, image_size)
    if test_split == _HELD_OUT:
        data = _hold_out(name, x_train, y_train)
    else:
        data = sources.ArrayDataset(
            x_train, y_train, *_read_tfds_split(builder, name, test_split, keys, image_size))
    if data.x_train.shape[1:] != data.x_test.shape[1:]:
        raise DatasetError(
            f"tfds:{name} train images are {data.x_train.shape[1:]} but {test_split} images are "
            f"{data.x_test.shape[1:]}; pass --image_size=H,W (image_size=(H, W)) to resize them.")
    origin = {"tfds": name, "image_feature": image_key, "label_feature": label_key,
              "test_split": test_split, "image_size": _size_list(image_size)}
    return UserData(data, tuple(features[label_key].names), origin)


# ----------------------------------------------------------------------------- image folder

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_FOLDER_LAYOUT = "it must hold train/<class>/<image> and test/<class>/<image> files"


def _subfolders(path: str) -> list[str]:
    """The sorted names of the (non-hidden) folders in ``path``."""
    return sorted(entry.name for entry in os.scandir(path)
                  if entry.is_dir() and not entry.name.startswith("."))


def _image_files(class_dir: str) -> list[str]:
    """The sorted PNG, JPEG, BMP and GIF files (by extension) in ``class_dir``; at least one."""
    names = sorted(entry.name for entry in os.scandir(class_dir) if entry.is_file())
    images = [name for name in names if name.lower().endswith(_IMAGE_EXTENSIONS)]
    if not images:
        found = f"found only {_some(names)}" if names else "it is empty"
        raise DatasetError(f"class folder {class_dir!r} holds no PNG, JPEG, BMP or GIF images "
                           f"({found}).")
    return [os.path.join(class_dir, name) for name in images]


def _class_folders(data_dir: str, split: str) -> list[str]:
    path = os.path.join(data_dir, split)
    if not os.path.isdir(path):
        raise DatasetError(f"image folder {data_dir!r} has no {split!r} folder ({path!r} does not "
                           f"exist): {_FOLDER_LAYOUT}.")
    classes = _subfolders(path)
    if not classes:
        raise DatasetError(f"{path!r} holds no class folders: put each class's images in "
                           f"{split}/<class>/.")
    return classes


def _decode(path: str, channels: int) -> np.ndarray:
    """Decodes one image file (first frame of a GIF) into ``[H, W, C]``; 0 channels: native."""
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels,
                                   expand_animations=False)
        return image.numpy()
    except tf.errors.OpError as err:
        raise DatasetError(f"cannot read image {path!r}: {first_line(err.message)}") from err


def _decode_all(paths: list[str]) -> list[np.ndarray]:
    """Decodes every image with one channel count: 1 if every image is greyscale (with or
    without alpha), else 3 (RGB; alpha dropped). Returns the images as decoded, one size or
    not."""
    images = [_decode(path, 0) for path in paths]
    channels = 1 if all(image.shape[-1] <= 2 for image in images) else 3
    return [image if image.shape[-1] == channels else _decode(path, channels)
            for path, image in zip(paths, images)]


def _one_size(paths: list[str], images: list[np.ndarray],
              image_size: tuple[int, int] | None) -> np.ndarray:
    """Stacks the images, resizing each to ``image_size`` if given; else all must have one
    size. Single-channel images come back as ``[N, H, W]``."""
    if image_size is not None:
        images = [image if image.shape[:2] == tuple(image_size)
                  else _resize(tf.constant(image), image_size).numpy() for image in images]
    for path, image in zip(paths, images):
        if image.shape[:2] != images[0].shape[:2]:
            (h0, w0), (h, w) = images[0].shape[:2], image.shape[:2]
            raise DatasetError(f"{paths[0]!r} is {h0}x{w0} but {path!r} is {h}x{w}: all images "
                               f"must have one size; pass --image_size=H,W to resize them.")
    x = np.stack(images)
    return x[..., 0] if x.shape[-1] == 1 else x


def read_folder(data_dir: str, image_size: tuple[int, int] | None = None) -> UserData:
    """Reads ``DIR/train/<class>/*`` and ``DIR/test/<class>/*`` PNG, JPEG, BMP and GIF files.

    The class names are the sorted train class folder names; a label is the index of its
    class. Other files are ignored. Every image is decoded with one channel count (1 if all
    are greyscale, else 3). All images must have one size unless ``image_size=(H, W)``
    resizes them (bilinear, rounded to uint8). A train class may have no test folder.
    """
    _check_image_size(image_size)
    if not os.path.isdir(data_dir):
        raise DatasetError(f"image folder {data_dir!r} does not exist: {_FOLDER_LAYOUT}.")
    classes = _class_folders(data_dir, "train")
    test_classes = _class_folders(data_dir, "test")
    for name in test_classes:
        if name not in classes:
            raise DatasetError(
                f"test class folder {os.path.join(data_dir, 'test', name)!r} is not a train "
                f"class; the train classes are {_some(classes)}.")
    paths, labels = {}, {}
    for split, split_classes in (("train", classes), ("test", test_classes)):
        files = [_image_files(os.path.join(data_dir, split, name)) for name in split_classes]
        paths[split] = [path for class_files in files for path in class_files]
        labels[split] = np.asarray([classes.index(name) for name, class_files in
                                    zip(split_classes, files) for _ in class_files], np.int64)
    all_paths = paths["train"] + paths["test"]
    images = _one_size(all_paths, _decode_all(all_paths), image_size)
    n_train = len(paths["train"])
    data = sources.ArrayDataset(images[:n_train], labels["train"], images[n_train:],
                                labels["test"])
    origin = {"folder": os.path.abspath(data_dir), "image_size": _size_list(image_size)}
    return UserData(data, tuple(classes), origin)


# ----------------------------------------------------------------------------- npz arrays

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
                                   f"are {_some(npz.files) or 'none'}; {_ARRAYS_LAYOUT}.")
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
                           f"{train_path!r} has; the train labels are {_some(classes)}.")
    data = sources.ArrayDataset(x_train, np.searchsorted(classes, y_train).astype(np.int64),
                                x_test, np.searchsorted(classes, y_test).astype(np.int64))
    origin = {"arrays": os.path.abspath(data_dir), "labels": [int(c) for c in classes]}
    return UserData(data, tuple(str(int(c)) for c in classes), origin)
