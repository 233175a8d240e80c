"""Tests for clser_tf.sources on small files written to tmp_path (and tfds mock data)."""

import os
import pickle
import tarfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from clser_tf import sources
from clser_tf.errors import DatasetError
from helpers import idx_bytes, write_idx_dir, random_dataset, CIFAR_FOLDERS, write_cifar_dir

CIFAR_ARCHIVES = {10: "cifar-10-python.tar.gz", 100: "cifar-100-python.tar.gz"}


def write_cifar_archive(parent, data: sources.ArrayDataset, num_classes: int) -> str:
    """Writes the CIFAR .tar.gz archive under ``parent``; returns the archive's path."""
    folder = write_cifar_dir(os.path.join(parent, "extract"), data, num_classes)
    archive = os.path.join(parent, CIFAR_ARCHIVES[num_classes])
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=CIFAR_FOLDERS[num_classes])
    return archive


def assert_same(actual: sources.ArrayDataset, expected: sources.ArrayDataset):
    for field in ("x_train", "y_train", "x_test", "y_test"):
        got, want = getattr(actual, field), getattr(expected, field)
        assert got.dtype == want.dtype, field
        np.testing.assert_array_equal(got, want, err_msg=field)


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_dir_round_trips_plain_and_gz(tmp_path, gz):
    data = random_dataset((28, 28), 30, 12, 10)
    assert_same(sources.read_idx_dir(write_idx_dir(tmp_path, data, gz)), data)


def test_read_idx_dir_accepts_mixed_plain_and_gz(tmp_path):
    data = random_dataset((5, 7), 6, 4, 10)
    write_idx_dir(tmp_path, data, gz=True)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(data.y_test))
    assert_same(sources.read_idx_dir(str(tmp_path)), data)


def test_read_idx_bad_magic_names_file(tmp_path):
    write_idx_dir(tmp_path, random_dataset((28, 28), 6, 4, 10))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x0d\x03" + path.read_bytes()[4:])  # 0x0d: float data
    with pytest.raises(DatasetError, match="magic") as info:
        sources.read_idx_dir(str(tmp_path))
    assert str(path) in str(info.value)


def test_read_idx_labels_file_in_place_of_images_is_rejected(tmp_path):
    data = random_dataset((28, 28), 6, 4, 10)
    write_idx_dir(tmp_path, data)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(data.y_test))
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.*magic"):
        sources.read_idx_dir(str(tmp_path))


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated_file_names_file(tmp_path, gz):
    write_idx_dir(tmp_path, random_dataset((28, 28), 6, 4, 10), gz)
    path = tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DatasetError) as info:
        sources.read_idx_dir(str(tmp_path))
    assert str(path) in str(info.value)


def test_read_idx_count_mismatch_names_both_files(tmp_path):
    data = random_dataset((28, 28), 6, 4, 10)
    write_idx_dir(tmp_path, data)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(data.y_train[:5]))
    with pytest.raises(DatasetError, match="6 images.*5 labels") as info:
        sources.read_idx_dir(str(tmp_path))
    assert str(tmp_path / "train-images-idx3-ubyte") in str(info.value)
    assert str(tmp_path / "train-labels-idx1-ubyte") in str(info.value)


def test_read_idx_missing_dir_names_path_and_how_to_get_data(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist") as info:
        sources.read_idx_dir(missing)
    assert missing in str(info.value)


def test_read_idx_missing_file_names_both_candidates(tmp_path):
    write_idx_dir(tmp_path, random_dataset((28, 28), 6, 4, 10))
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(DatasetError) as info:
        sources.read_idx_dir(str(tmp_path))
    assert str(tmp_path / "t10k-labels-idx1-ubyte.gz") in str(info.value)


# ----------------------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("num_classes", [10, 100])
def test_read_cifar_folder_and_its_parent(tmp_path, num_classes):
    data = random_dataset((32, 32, 3), 23, 7, num_classes)
    folder = write_cifar_dir(tmp_path, data, num_classes)
    assert_same(sources.read_cifar_dir(folder, num_classes), data)
    assert_same(sources.read_cifar_dir(str(tmp_path), num_classes), data)


@pytest.mark.parametrize("num_classes", [10, 100])
def test_read_cifar_archive_and_its_folder(tmp_path, num_classes):
    data = random_dataset((32, 32, 3), 23, 7, num_classes)
    archive = write_cifar_archive(tmp_path / "dl", data, num_classes)
    assert_same(sources.read_cifar_dir(archive, num_classes), data)
    os.rename(archive, tmp_path / os.path.basename(archive))
    assert_same(sources.read_cifar_dir(str(tmp_path), num_classes), data)


def test_read_cifar_missing_names_every_place_looked(tmp_path):
    with pytest.raises(DatasetError, match="cifar-10-python.tar.gz") as info:
        sources.read_cifar_dir(str(tmp_path))
    assert str(tmp_path / "cifar-10-batches-py") in str(info.value)
    assert str(tmp_path / "cifar-10-python.tar.gz") in str(info.value)


def test_read_cifar_missing_batch_names_file(tmp_path):
    folder = write_cifar_dir(tmp_path, random_dataset((32, 32, 3), 10, 5, 10), 10)
    os.remove(os.path.join(folder, "data_batch_3"))
    with pytest.raises(DatasetError, match="data_batch_3"):
        sources.read_cifar_dir(folder)


def test_read_cifar_rejects_pickles_that_would_run_code(tmp_path):
    folder = write_cifar_dir(tmp_path, random_dataset((32, 32, 3), 10, 5, 10), 10)

    class Exploit:
        def __reduce__(self):
            return os.system, ("echo pwned",)

    path = os.path.join(folder, "data_batch_1")
    with open(path, "wb") as f:
        pickle.dump({b"data": Exploit(), b"labels": []}, f)
    with pytest.raises(DatasetError, match="not allowed") as info:
        sources.read_cifar_dir(folder)
    assert path in str(info.value)


def test_read_cifar_wrong_label_key_names_key(tmp_path):
    data = random_dataset((32, 32, 3), 10, 5, 10)
    write_cifar_dir(tmp_path, data, 10)
    os.rename(tmp_path / "cifar-10-batches-py", tmp_path / "cifar-100-python")
    for name in ("data_batch_1", "test_batch"):  # CIFAR-100 names; labels under b"labels"
        os.rename(tmp_path / "cifar-100-python" / name,
                  tmp_path / "cifar-100-python" / ("train" if name != "test_batch" else "test"))
    with pytest.raises(DatasetError, match="fine_labels"):
        sources.read_cifar_dir(str(tmp_path), 100)


def test_read_cifar_rejects_unsupported_num_classes(tmp_path):
    with pytest.raises(ValueError, match="num_classes=20.*10 or 100"):
        sources.read_cifar_dir(str(tmp_path), 20)


# ----------------------------------------------------------------------------- Tiny ImageNet


def write_jpeg(path, colour, size=64):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.broadcast_to(np.asarray(colour, np.uint8), (size, size, 3))
    tf.io.write_file(str(path), tf.io.encode_jpeg(image, quality=100))


def write_tinyimg(parent, wnids=("n02", "n01"), train_per_class=3):
    """A miniature tiny-imagenet-200 tree of flat-coloured 64x64 JPEGs.

    Returns the root and the (colour, wnid) pairs of the train and val images in read order.
    """
    root = os.path.join(parent, "tiny-imagenet-200")
    os.makedirs(root)
    with open(os.path.join(root, "wnids.txt"), "w") as f:
        f.write("\n".join(wnids) + "\n")
    train = []
    for wnid in sorted(wnids):
        for i in range(train_per_class):
            colour = (40 * len(train), 10 * i, 200)
            write_jpeg(os.path.join(root, "train", wnid, "images", f"{wnid}_{i}.JPEG"), colour)
            train.append((colour, wnid))
    val = [((0, 50 * i, 100), wnids[i % len(wnids)]) for i in range(4)]
    for i, (colour, _) in enumerate(val):
        write_jpeg(os.path.join(root, "val", "images", f"val_{i}.JPEG"), colour)
    with open(os.path.join(root, "val", "val_annotations.txt"), "w") as f:
        f.writelines(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63\n" for i, (_, wnid) in enumerate(val))
    return root, train, val


def assert_images(images, labels, expected, wnids):
    label_of = {wnid: i for i, wnid in enumerate(sorted(wnids))}
    assert images.shape == (len(expected), 64, 64, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [label_of[w] for _, w in expected])
    colours = np.array([c for c, _ in expected], np.int32)[:, None, None, :]
    assert np.abs(images.astype(np.int32) - colours).max() <= 3  # JPEG is lossy


def test_read_tinyimg_labels_are_sorted_wnid_indices(tmp_path):
    wnids = ("n02", "n01")  # listed unsorted: n01 -> 0, n02 -> 1
    root, train, val = write_tinyimg(tmp_path, wnids)
    for path in (root, str(tmp_path)):
        data = sources.read_tinyimg_dir(path)
        assert_images(data.x_train, data.y_train, train, wnids)
        assert_images(data.x_test, data.y_test, val, wnids)


def test_read_tinyimg_missing_names_path(tmp_path):
    with pytest.raises(DatasetError, match="tiny-imagenet-200.zip") as info:
        sources.read_tinyimg_dir(str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere" / "wnids.txt") in str(info.value)


def test_read_tinyimg_unknown_val_wnid_names_it(tmp_path):
    root, _, _ = write_tinyimg(tmp_path)
    with open(os.path.join(root, "val", "val_annotations.txt"), "a") as f:
        f.write("val_9.JPEG\tn99\t0\t0\t63\t63\n")
    with pytest.raises(DatasetError, match="line 5.*n99"):
        sources.read_tinyimg_dir(root)


def test_read_tinyimg_corrupt_jpeg_names_file(tmp_path):
    root, _, _ = write_tinyimg(tmp_path)
    path = os.path.join(root, "train", "n01", "images", "n01_1.JPEG")
    with open(path, "wb") as f:
        f.write(b"not a jpeg")
    with pytest.raises(DatasetError) as info:
        sources.read_tinyimg_dir(root)
    assert path in str(info.value)


# ----------------------------------------------------------------------------- tfds


@pytest.mark.parametrize("name, image_shape", [("mnist", (28, 28)), ("cifar10", (32, 32, 3))])
def test_load_tfds_gives_raw_numpy_arrays(name, image_shape):
    with tfds.testing.mock_data(num_examples=12):
        data = sources.load_tfds(name)
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert x.shape == (12, *image_shape) and x.dtype == np.uint8
        assert y.shape == (12,) and y.dtype == np.int64
        assert ((y >= 0) & (y < 10)).all()


def test_load_tfds_failure_names_dataset_and_internet(tmp_path):
    with pytest.raises(DatasetError, match="internet") as info:
        sources.load_tfds("no_such_dataset_xyz", data_dir=str(tmp_path))
    message = str(info.value)
    assert "'no_such_dataset_xyz'" in message and str(tmp_path) in message
    assert len(message.splitlines()) == 1  # not tfds' list of every dataset
