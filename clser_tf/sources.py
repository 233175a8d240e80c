"""Raw dataset readers: IDX (MNIST family), CIFAR "python version", Tiny ImageNet, tfds.

Every reader returns an :class:`ArrayDataset` of numpy arrays in the raw dtype (uint8
images, int64 labels) and raises :class:`DatasetError` naming the path(s) it looked at and
how to get the data when something is missing or malformed.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import os
import pickle
import struct
import tarfile
import zlib
from typing import BinaryIO

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from clser_tf.errors import DatasetError, first_line


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
    """Train and test splits as numpy arrays: uint8 images and int64 labels."""

    x_train: np.ndarray  # uint8, [N, 28, 28] for the MNIST family, [N, H, W, 3] for colour
    y_train: np.ndarray  # int64 [N]
    x_test: np.ndarray
    y_test: np.ndarray


# ----------------------------------------------------------------------------- IDX

_IDX_HELP = ("Get the IDX files (for Fashion-MNIST: `apt-get install dataset-fashion-mnist`, "
             "which puts them in /usr/share/datasets/fashion-mnist) and pass --data_dir=DIR.")
_IDX_SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find_idx_file(directory: str, name: str) -> str:
    candidates = [os.path.join(directory, name), os.path.join(directory, name + ".gz")]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise DatasetError(f"IDX file not found: looked at {candidates}. {_IDX_HELP}")


def read_idx_file(path: str, ndim: int) -> np.ndarray:
    """Reads one uint8 IDX file of ``ndim`` dimensions (plain or gzipped)."""
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"Cannot read IDX file {path!r}: {err}") from err
    magic = int.from_bytes(raw[:4], "big")
    expected_magic = 0x0800 + ndim  # 0x08 = unsigned byte data, then the number of dims
    if len(raw) >= 4 and magic != expected_magic:
        raise DatasetError(f"IDX file {path!r} has magic number {magic:#010x}; expected "
                           f"{expected_magic:#010x} (uint8 data with {ndim} dimension(s)).")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"IDX file {path!r} is truncated: {len(raw)} bytes, shorter than "
                           f"its {header}-byte header.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected_size = header + int(np.prod(dims))
    if len(raw) != expected_size or 0 in dims[1:]:
        raise DatasetError(f"IDX file {path!r} is truncated or malformed: {len(raw)} bytes for "
                           f"dims {dims}, expected {expected_size} bytes.")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def read_idx_dir(path: str) -> ArrayDataset:
    """Reads MNIST-style IDX files (``train-images-idx3-ubyte`` etc., each optionally ``.gz``).

    Checks the magic numbers, the dimensions and that image and label counts match.
    Images come back as ``[N, H, W]`` uint8, labels as int64.
    """
    if not os.path.isdir(path):
        raise DatasetError(f"IDX directory {path!r} does not exist. {_IDX_HELP}")
    arrays = []
    for images_name, labels_name in _IDX_SPLITS.values():
        images_path = _find_idx_file(path, images_name)
        labels_path = _find_idx_file(path, labels_name)
        images = read_idx_file(images_path, 3)
        labels = read_idx_file(labels_path, 1)
        if len(images) != len(labels):
            raise DatasetError(f"{images_path!r} holds {len(images)} images but {labels_path!r} "
                               f"holds {len(labels)} labels.")
        arrays += [images, labels.astype(np.int64)]
    if arrays[0].shape[1:] != arrays[2].shape[1:]:
        raise DatasetError(f"IDX train images in {path!r} are {arrays[0].shape[1:]} but test "
                           f"images are {arrays[2].shape[1:]}.")
    return ArrayDataset(*arrays)


# ----------------------------------------------------------------------------- CIFAR


@dataclasses.dataclass(frozen=True)
class _CifarLayout:
    folder: str
    archive: str
    train: tuple[str, ...]
    test: str
    label_key: bytes
    tfds_name: str


_CIFAR_LAYOUTS = {
    10: _CifarLayout("cifar-10-batches-py", "cifar-10-python.tar.gz",
                     tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", b"labels",
                     "cifar10"),
    100: _CifarLayout("cifar-100-python", "cifar-100-python.tar.gz", ("train",), "test",
                      b"fine_labels", "cifar100"),
}
# Globals a CIFAR pickle may reference: numpy's array reconstruction and nothing else, so a
# tampered file cannot run code on load.
_CIFAR_PICKLE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _CIFAR_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _read_cifar_batch(f: BinaryIO, where: str, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Unpickles one CIFAR batch into ``[N, 3072]`` uint8 pixels and int64 labels."""
    try:
        batch = _CifarUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], np.uint8)
        labels = np.asarray(batch[label_key], np.int64)
    except (pickle.UnpicklingError, EOFError, OSError, zlib.error, TypeError, KeyError,
            ValueError) as err:
        raise DatasetError(f"{where} is not a CIFAR batch with b'data' and {label_key!r}: "
                           f"{err!r}") from err
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise DatasetError(f"{where}: data {data.shape} and labels {labels.shape} are not "
                           f"[N, 3072] and [N].")
    return data, labels


def _cifar_batches_from_dir(folder: str, names: list[str], label_key: bytes) -> dict:
    batches = {}
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                batches[name] = _read_cifar_batch(f, repr(path), label_key)
        except FileNotFoundError as err:
            raise DatasetError(f"CIFAR batch {path!r} is missing.") from err
    return batches


def _cifar_batches_from_archive(archive: str, layout: _CifarLayout, names: list[str]) -> dict:
    batches = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:  # one pass: seeking back in a .tar.gz re-decompresses it
                folder, name = os.path.split(member.name)
                if folder == layout.folder and name in names and member.isfile():
                    where = f"{member.name!r} in {archive!r}"
                    batches[name] = _read_cifar_batch(tar.extractfile(member), where,
                                                      layout.label_key)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"Cannot read CIFAR archive {archive!r}: {err}") from err
    missing = [f"{layout.folder}/{name}" for name in names if name not in batches]
    if missing:
        raise DatasetError(f"CIFAR archive {archive!r} lacks {missing}.")
    return batches


def read_cifar_dir(path: str, num_classes: int = 10) -> ArrayDataset:
    """Reads CIFAR-10 or CIFAR-100 (fine labels) in the "python version" pickle format.

    ``path`` may be the extracted folder (``cifar-10-batches-py`` / ``cifar-100-python``),
    a folder containing it, or the ``.tar.gz`` archive itself or a folder containing it.
    Images come back as ``[N, 32, 32, 3]`` uint8, labels as int64.
    """
    if num_classes not in _CIFAR_LAYOUTS:
        raise ValueError(f"num_classes={num_classes!r} is invalid: CIFAR has 10 or 100 classes.")
    layout = _CIFAR_LAYOUTS[num_classes]
    names = [*layout.train, layout.test]
    nested_folder = os.path.join(path, layout.folder)
    nested_archive = os.path.join(path, layout.archive)
    if os.path.isfile(path):
        batches = _cifar_batches_from_archive(path, layout, names)
    elif os.path.isfile(os.path.join(path, layout.test)):
        batches = _cifar_batches_from_dir(path, names, layout.label_key)
    elif os.path.isdir(nested_folder):
        batches = _cifar_batches_from_dir(nested_folder, names, layout.label_key)
    elif os.path.isfile(nested_archive):
        batches = _cifar_batches_from_archive(nested_archive, layout, names)
    else:
        raise DatasetError(
            f"CIFAR-{num_classes} not found: looked for {os.path.join(path, layout.test)!r}, "
            f"{nested_folder!r} and {nested_archive!r}. Download "
            f"https://www.cs.toronto.edu/~kriz/{layout.archive} and pass --data_dir=<that file "
            f"or its folder>, or leave data_dir unset to use tensorflow-datasets "
            f"{layout.tfds_name!r} (needs internet the first time).")

    def to_images(data: np.ndarray) -> np.ndarray:
        return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)

    train = [batches[name] for name in layout.train]
    x_test, y_test = batches[layout.test]
    return ArrayDataset(to_images(np.concatenate([x for x, _ in train])),
                        np.concatenate([y for _, y in train]), to_images(x_test), y_test)


# ----------------------------------------------------------------------------- Tiny ImageNet

_TINYIMG_HELP = ("Download http://cs231n.stanford.edu/tiny-imagenet-200.zip, unzip it and pass "
                 "--data_dir=<the tiny-imagenet-200 folder or its parent>.")


def _decode_jpegs(paths: list[str]) -> np.ndarray:
    """Decodes same-sized JPEGs into one preallocated ``[N, H, W, 3]`` uint8 array."""
    images = None
    for i, path in enumerate(paths):
        try:
            image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3).numpy()
        except tf.errors.OpError as err:
            raise DatasetError(f"Cannot decode JPEG {path!r}: {err.message}") from err
        if images is None:
            images = np.empty((len(paths), *image.shape), np.uint8)
        elif image.shape != images.shape[1:]:
            raise DatasetError(f"JPEG {path!r} is {image.shape}; {paths[0]!r} is "
                               f"{images.shape[1:]}: all images must have one size.")
        images[i] = image
    return images


def _read_val_annotations(root: str, label_of: dict[str, int]) -> tuple[list[str], list[int]]:
    annotations = os.path.join(root, "val", "val_annotations.txt")
    try:
        with open(annotations) as f:
            rows = [line.split("\t") for line in f if line.strip()]
    except OSError as err:
        raise DatasetError(f"Cannot read {annotations!r}: {err}. {_TINYIMG_HELP}") from err
    paths, labels = [], []
    for line_number, row in enumerate(rows, 1):
        if len(row) < 2 or row[1] not in label_of:
            raise DatasetError(f"{annotations!r} line {line_number}: {row[:2]} does not name an "
                               f"image and a wnid listed in wnids.txt.")
        paths.append(os.path.join(root, "val", "images", row[0]))
        labels.append(label_of[row[1]])
    return paths, labels


def read_tinyimg_dir(path: str) -> ArrayDataset:
    """Reads the standard ``tiny-imagenet-200`` layout (the folder itself or its parent).

    Training images come from ``train/<wnid>/images/*.JPEG``, test images from the
    ``val`` split (``val/images`` labelled by ``val/val_annotations.txt``). The label of a
    wnid is its index in ``sorted(wnids)`` from ``wnids.txt``. Images come back as
    ``[N, 64, 64, 3]`` uint8 (greyscale JPEGs are expanded to 3 channels), labels as int64.
    """
    candidates = [path, os.path.join(path, "tiny-imagenet-200")]
    root = next((c for c in candidates if os.path.isfile(os.path.join(c, "wnids.txt"))), None)
    if root is None:
        looked = [os.path.join(c, "wnids.txt") for c in candidates]
        raise DatasetError(f"Tiny ImageNet not found: looked for {looked}. {_TINYIMG_HELP}")
    with open(os.path.join(root, "wnids.txt")) as f:
        wnids = sorted({line.strip() for line in f if line.strip()})
    if not wnids:
        raise DatasetError(f"{os.path.join(root, 'wnids.txt')!r} lists no wnids. {_TINYIMG_HELP}")
    label_of = {wnid: label for label, wnid in enumerate(wnids)}
    train_paths, train_labels = [], []
    for wnid in wnids:
        image_dir = os.path.join(root, "train", wnid, "images")
        paths = sorted(glob.glob(os.path.join(glob.escape(image_dir), "*.JPEG")))
        if not paths:
            raise DatasetError(f"No *.JPEG training images in {image_dir!r}. {_TINYIMG_HELP}")
        train_paths += paths
        train_labels += [label_of[wnid]] * len(paths)
    test_paths, test_labels = _read_val_annotations(root, label_of)
    if not test_paths:
        raise DatasetError(f"{os.path.join(root, 'val', 'val_annotations.txt')!r} lists no "
                           f"images. {_TINYIMG_HELP}")
    return ArrayDataset(_decode_jpegs(train_paths), np.asarray(train_labels, np.int64),
                        _decode_jpegs(test_paths), np.asarray(test_labels, np.int64))


# ----------------------------------------------------------------------------- tfds

_TFDS_CHUNK = 10_000


def tfds_split_to_numpy(split: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Collects a supervised tfds split in chunks.

    ``tfds.load(batch_size=-1)`` is avoided on purpose: when the split size is unknown
    (e.g. under ``tfds.testing.mock_data``) it batches by ``sys.maxsize``, which aborts
    the process in TF 2.21.
    """
    chunks = list(tfds.as_numpy(split.batch(_TFDS_CHUNK)))
    if not chunks:
        raise DatasetError("the split is empty")
    images = np.concatenate([x for x, _ in chunks])
    if images.ndim == 4 and images.shape[-1] == 1:  # MNIST family: [N, 28, 28, 1] -> [N, 28, 28]
        images = images[..., 0]
    return images, np.concatenate([y for _, y in chunks]).astype(np.int64)


def tfds_failure(name: str, data_dir: str | None, err: BaseException) -> DatasetError:
    """The one-line error for tensorflow-datasets failing to get ``name`` (offline, most often)."""
    return DatasetError(
        f"tensorflow-datasets could not load {name!r} (data_dir={data_dir!r}): "
        f"{type(err).__name__}: {first_line(err)}. tfds downloads {name!r} on first use, "
        f"which needs internet; offline, pass a data_dir where it was already prepared "
        f"(`tfds build {name} --data_dir=DIR` on a connected machine).")


def load_tfds(name: str, data_dir: str | None = None) -> ArrayDataset:
    """Loads the train and test splits of tensorflow-datasets ``name`` as numpy arrays.

    Single-channel images (the MNIST family) are squeezed to ``[N, H, W]``.
    """
    try:
        splits = tfds.load(name, split=["train", "test"], as_supervised=True,
                           data_dir=data_dir)
        (x_train, y_train), (x_test, y_test) = map(tfds_split_to_numpy, splits)
    except Exception as err:  # tfds fails in many ways offline (network, import, not found)
        raise tfds_failure(name, data_dir, err) from err
    return ArrayDataset(x_train, y_train, x_test, y_test)
