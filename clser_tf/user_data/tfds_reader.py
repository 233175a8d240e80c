"""A tensorflow-datasets image-classification dataset as a user's own data (``tfds:NAME``)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from clser_tf import sources
from clser_tf.errors import DatasetError, first_line
from clser_tf.user_data.common import UserData, check_image_size, resize, size_list


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
            dataset = dataset.map(lambda image, label: (resize(image, image_size), label))
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
    check_image_size(image_size)
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
              "test_split": test_split, "image_size": size_list(image_size)}
    return UserData(data, tuple(features[label_key].names), origin)
