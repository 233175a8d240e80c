"""An image folder, ``train/<class>/*`` and ``test/<class>/*``, as a user's own data."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from clser_tf import sources
from clser_tf.errors import DatasetError, first_line
from clser_tf.user_data.common import UserData, check_image_size, resize, size_list, some


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
        found = f"found only {some(names)}" if names else "it is empty"
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
                  else resize(tf.constant(image), image_size).numpy() for image in images]
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
    check_image_size(image_size)
    if not os.path.isdir(data_dir):
        raise DatasetError(f"image folder {data_dir!r} does not exist: {_FOLDER_LAYOUT}.")
    classes = _class_folders(data_dir, "train")
    test_classes = _class_folders(data_dir, "test")
    for name in test_classes:
        if name not in classes:
            raise DatasetError(
                f"test class folder {os.path.join(data_dir, 'test', name)!r} is not a train "
                f"class; the train classes are {some(classes)}.")
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
    origin = {"folder": os.path.abspath(data_dir), "image_size": size_list(image_size)}
    return UserData(data, tuple(classes), origin)
