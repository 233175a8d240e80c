"""Tests for clser_tf.user_data: tfds mock data, image folders and npz files in tmp_path."""

import os
import struct

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from clser_tf import sources, user_data
from clser_tf.errors import DatasetError


def error_message(read, *args, **kwargs) -> str:
    """The message of the one-line DatasetError that ``read(*args, **kwargs)`` raises."""
    with pytest.raises(DatasetError) as info:
        read(*args, **kwargs)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    return message


# ----------------------------------------------------------------------------- image_size


@pytest.mark.parametrize("text, size", [("32,24", (32, 24)), (" 8, 1", (8, 1))])
def test_parse_image_size_reads_h_comma_w(text, size):
    assert user_data.parse_image_size(text) == size


@pytest.mark.parametrize("text", ["abc", "32", "32,0", "1,2,3", "3.5,4", "", "-4,4"])
def test_parse_image_size_refuses_bad_text(text):
    with pytest.raises(ValueError, match="it must be H,W with two integers >= 1") as info:
        user_data.parse_image_size(text)
    assert f"--image_size={text!r} is invalid" in str(info.value)


@pytest.mark.parametrize("read", [user_data.read_folder, user_data.read_tfds])
def test_readers_refuse_a_bad_image_size(tmp_path, read):
    with pytest.raises(ValueError, match=r"image_size=\(0, 4\) is invalid"):
        read(str(tmp_path), image_size=(0, 4))


# ----------------------------------------------------------------------------- tfds


def write_tfds_metadata(data_dir, name: str, splits: tuple[str, ...], num_examples: int):
    """Writes the dataset_info.json of ``name`` listing ``splits`` under ``data_dir``, for
    ``tfds.testing.mock_data(policy=USE_FILES, data_dir=data_dir)``."""
    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE):
        builder = tfds.builder(name)
        infos = [tfds.core.SplitInfo(
            name=split, shard_lengths=[num_examples], num_bytes=0,
            filename_template=tfds.core.ShardedFileTemplate(
                data_dir=str(data_dir), dataset_name=builder.name, split=split,
                filetype_suffix="tfrecord")) for split in splits]
        builder.info.set_splits(tfds.core.SplitDict(infos))
        folder = os.path.join(data_dir, builder.info.full_name)
        os.makedirs(folder)
        builder.info.write_to_directory(folder)


def mock_split(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The (image, label) arrays tfds gives for a split of ``name`` (under mock_data)."""
    split = tfds.builder(name).as_dataset(split="train", shuffle_files=False)
    examples = list(tfds.as_numpy(split))
    return (np.stack([e["image"] for e in examples]),
            np.array([e["label"] for e in examples], np.int64))


@pytest.mark.parametrize("name, image_shape, num_classes", [
    ("mnist", (28, 28), 10),  # [N, 28, 28, 1] squeezed
    ("svhn_cropped", (32, 32, 3), 10),  # also has an "id" Text feature
    ("cifar100", (32, 32, 3), 100),  # two ClassLabels: "label" (100), "coarse_label" (20)
])
def test_read_tfds_gives_arrays_class_names_and_origin(name, image_shape, num_classes):
    with tfds.testing.mock_data(num_examples=12):
        got = user_data.read_tfds(name)
        expected = sources.load_tfds(name)
        names = tfds.builder(name).info.features["label"].names
    for x, y in ((got.data.x_train, got.data.y_train), (got.data.x_test, got.data.y_test)):
        assert x.shape == (12, *image_shape) and x.dtype == np.uint8
        assert y.shape == (12,) and y.dtype == np.int64
        assert ((y >= 0) & (y < num_classes)).all()
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(got.data, field), getattr(expected, field))
    assert got.class_names == tuple(names) and len(got.class_names) == num_classes
    assert got.origin == {"tfds": name, "image_feature": "image", "label_feature": "label",
                          "test_split": "test", "image_size": None}


@pytest.mark.parametrize("splits, test_split", [
    (("train", "validation", "test"), "test"),
    (("train", "validation"), "validation"),
])
def test_read_tfds_takes_test_else_validation(tmp_path, splits, test_split):
    write_tfds_metadata(tmp_path, "eurosat/rgb", splits, 10)
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=str(tmp_path)):
        got = user_data.read_tfds("eurosat/rgb")
    assert got.origin["test_split"] == test_split
    assert got.data.x_train.shape == got.data.x_test.shape == (6, 64, 64, 3)


def test_read_tfds_holds_out_a_fifth_of_train_without_test_split(tmp_path):
    write_tfds_metadata(tmp_path, "eurosat/rgb", ("train",), 10)  # eurosat has only train
    with tfds.testing.mock_data(num_examples=10, policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=str(tmp_path)):
        got = user_data.read_tfds("eurosat/rgb")
        x, y = mock_split("eurosat/rgb")
        names = tfds.builder("eurosat/rgb").info.features["label"].names
    order = np.random.default_rng(0).permutation(10)
    test, train = np.sort(order[:2]), np.sort(order[2:])
    np.testing.assert_array_equal(got.data.x_train, x[train])
    np.testing.assert_array_equal(got.data.y_train, y[train])
    np.testing.assert_array_equal(got.data.x_test, x[test])
    np.testing.assert_array_equal(got.data.y_test, y[test])
    assert got.origin["test_split"] == "train[held-out 20%]"
    assert got.class_names == tuple(names) and "AnnualCrop" in names


def test_read_tfds_without_train_split_names_the_splits(tmp_path):
    write_tfds_metadata(tmp_path, "eurosat/rgb", ("test",), 10)
    with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=str(tmp_path)):
        message = error_message(user_data.read_tfds, "eurosat/rgb")
    assert "tfds:eurosat/rgb has no 'train' split: its splits are test." in message


def test_read_tfds_images_of_different_sizes_need_image_size():
    with tfds.testing.mock_data(num_examples=5):  # tf_flowers: Image(shape=(None, None, 3))
        message = error_message(user_data.read_tfds, "tf_flowers")
    assert message.startswith("tfds:tf_flowers split 'train': images of different sizes: "
                              "example 0 is ")
    assert "--image_size=H,W" in message


def test_read_tfds_resizes_to_image_size():
    with tfds.testing.mock_data(num_examples=5):
        got = user_data.read_tfds("tf_flowers", image_size=(8, 6))
        raw = next(iter(tfds.builder("tf_flowers").as_dataset(split="train",
                                                              shuffle_files=False)))["image"]
    assert got.data.x_train.shape == got.data.x_test.shape == (5, 8, 6, 3)
    assert got.data.x_train.dtype == np.uint8
    expected = np.clip(np.round(tf.image.resize(raw, (8, 6)).numpy()), 0, 255)
    np.testing.assert_array_equal(got.data.x_train[0], expected.astype(np.uint8))
    assert got.origin["image_size"] == [8, 6] and len(got.class_names) == 5


class ClserTwoImagesTwoLabels(tfds.core.GeneratorBasedBuilder):
    """A dataset (registered as clser_two_images_two_labels) whose "image" and "label"
    features come after another Image and another ClassLabel."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "coarse": tfds.features.ClassLabel(names=["x", "y"]),
            "thumbnail": tfds.features.Image(shape=(2, 2, 3)),
            "image": tfds.features.Image(shape=(6, 5, 1)),
            "label": tfds.features.ClassLabel(names=["p", "q", "r"]),
        }))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        yield from ()


def test_read_tfds_prefers_the_image_and_label_features():
    with tfds.testing.mock_data(num_examples=3):
        got = user_data.read_tfds("clser_two_images_two_labels")
    assert got.data.x_train.shape == (3, 6, 5) and got.class_names == ("p", "q", "r")
    assert (got.origin["image_feature"], got.origin["label_feature"]) == ("image", "label")


def test_read_tfds_unknown_name_says_it_does_not_exist(tmp_path):
    with tfds.testing.mock_data(num_examples=2):
        message = error_message(user_data.read_tfds, "no_such_dataset_xyz", str(tmp_path))
    assert message.startswith("tfds:no_such_dataset_xyz does not exist")
    assert str(tmp_path) in message


def test_read_tfds_unknown_config_names_it():
    with tfds.testing.mock_data(num_examples=2):
        message = error_message(user_data.read_tfds, "eurosat/nope")
    assert message.startswith("tensorflow-datasets cannot make a builder for tfds:eurosat/nope")
    assert "BuilderConfig nope not found" in message


@pytest.mark.parametrize("name, missing, features", [
    ("imdb_reviews", "image (Image)", "text (Text), label (ClassLabel)"),
    ("celeb_a", "label (ClassLabel)", "image (Image), landmarks (FeaturesDict)"),
])
def test_read_tfds_without_image_or_label_names_the_features(name, missing, features):
    with tfds.testing.mock_data(num_examples=2):
        message = error_message(user_data.read_tfds, name)
    assert message.startswith(f"tfds:{name} has no {missing} feature: features are {features}")


def test_read_tfds_download_failure_says_internet(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Network is unreachable")

    with tfds.testing.mock_data(num_examples=2), monkeypatch.context() as patch:
        patch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
        message = error_message(user_data.read_tfds, "mnist", str(tmp_path))
    assert "could not load 'mnist'" in message and "Network is unreachable" in message
    assert "internet" in message and str(tmp_path) in message


# ----------------------------------------------------------------------------- image folder


def bmp_bytes(image: np.ndarray) -> bytes:
    """A 24-bit uncompressed BMP of an ``[H, W, 3]`` uint8 image."""
    height, width, _ = image.shape
    row = (width * 3 + 3) // 4 * 4
    pixels = b"".join(image[y, :, ::-1].tobytes().ljust(row, b"\0")
                      for y in reversed(range(height)))  # bottom-up rows of BGR
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835,
                       0, 0)
    return header + info + pixels


def write_image(path, image) -> None:
    """Writes an ``[H, W, C]`` uint8 image as PNG, JPEG, BMP or GIF (by ``path``'s
    extension)."""
    image = np.asarray(image, np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    extension = os.path.splitext(str(path))[1].lower()
    if extension == ".gif":
        pil = pytest.importorskip("PIL.Image")
        pil.fromarray(image).save(path, format="GIF")
        return
    if extension == ".bmp":
        data = bmp_bytes(image)
    elif extension == ".png":
        data = tf.io.encode_png(image).numpy()
    else:
        data = tf.io.encode_jpeg(image, quality=100).numpy()
    with open(path, "wb") as f:
        f.write(data)


def flat(colour, height=6, width=5) -> np.ndarray:
    """A ``[height, width, len(colour)]`` image of one colour."""
    return np.broadcast_to(np.asarray(colour, np.uint8), (height, width, len(colour)))


def test_read_folder_reads_png_and_jpeg_with_sorted_class_labels(tmp_path):
    files = {  # dog is created first; labels follow the sorted names: bird 0, cat 1, dog 2
        "train/dog/b.png": (200, 10, 10), "train/dog/a.jpg": (180, 30, 20),
        "train/cat/x.JPEG": (10, 200, 10), "train/bird/1.png": (10, 10, 200),
        "test/dog/t.png": (90, 90, 0), "test/bird/u.jpeg": (0, 90, 90),
    }  # cat has no test folder: allowed
    for name, colour in files.items():
        write_image(tmp_path / name, flat(colour))
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / ".cache").mkdir()
    got = user_data.read_folder(str(tmp_path))
    train_order = ["train/bird/1.png", "train/cat/x.JPEG", "train/dog/a.jpg", "train/dog/b.png"]
    test_order = ["test/bird/u.jpeg", "test/dog/t.png"]
    assert got.class_names == ("bird", "cat", "dog")
    np.testing.assert_array_equal(got.data.y_train, [0, 1, 2, 2])
    np.testing.assert_array_equal(got.data.y_test, [0, 2])
    assert got.data.y_train.dtype == got.data.y_test.dtype == np.int64
    for x, order in ((got.data.x_train, train_order), (got.data.x_test, test_order)):
        assert x.shape == (len(order), 6, 5, 3) and x.dtype == np.uint8
        expected = np.stack([flat(files[name]) for name in order]).astype(np.int32)
        assert np.abs(x.astype(np.int32) - expected).max() <= 2  # JPEG is lossy
    np.testing.assert_array_equal(got.data.x_train[3], flat(files["train/dog/b.png"]))  # PNG
    assert got.origin == {"folder": str(tmp_path), "image_size": None}


def test_read_folder_all_greyscale_gives_single_channel(tmp_path):
    write_image(tmp_path / "train/a/1.png", flat((30,)))
    write_image(tmp_path / "train/b/1.jpg", flat((200,)))
    grey_alpha = np.concatenate([flat((90,)), flat((7,))], -1)
    write_image(tmp_path / "train/b/2.png", grey_alpha)
    write_image(tmp_path / "test/a/1.png", flat((60,)))
    got = user_data.read_folder(str(tmp_path))
    assert got.data.x_train.shape == (3, 6, 5) and got.data.x_test.shape == (1, 6, 5)
    assert np.abs(got.data.x_train[:, 0, 0].astype(int) - [30, 200, 90]).max() <= 1
    assert got.data.x_test[0, 0, 0] == 60


def test_read_folder_mixed_channels_give_rgb_of_every_format(tmp_path):
    write_image(tmp_path / "train/a/grey.png", flat((40,)))
    write_image(tmp_path / "train/a/rgba.PNG", flat((1, 2, 3, 128)))
    write_image(tmp_path / "train/b/pic.BMP", flat((50, 60, 70)))
    write_image(tmp_path / "train/b/pic.gif", flat((255, 0, 0)))
    write_image(tmp_path / "test/b/pic.bmp", flat((9, 8, 7)))
    got = user_data.read_folder(str(tmp_path))
    assert got.data.x_train.shape == (4, 6, 5, 3) and got.data.x_test.shape == (1, 6, 5, 3)
    # sorted: a/grey.png, a/rgba.PNG, b/pic.BMP, b/pic.gif
    expected = [(40, 40, 40), (1, 2, 3), (50, 60, 70), (255, 0, 0)]
    np.testing.assert_array_equal(got.data.x_train[:, 2, 3], expected)
    np.testing.assert_array_equal(got.data.x_test[0], flat((9, 8, 7)))


def test_read_folder_resizes_to_image_size(tmp_path):
    gradient = np.arange(8 * 6 * 3).reshape(8, 6, 3).astype(np.uint8)
    write_image(tmp_path / "train/a/big.png", gradient)
    write_image(tmp_path / "train/b/small.png", flat((7, 8, 9), 4, 4))
    write_image(tmp_path / "test/a/same.png", flat((1, 2, 3), 4, 3))
    got = user_data.read_folder(str(tmp_path), image_size=(4, 3))
    assert got.data.x_train.shape == (2, 4, 3, 3) and got.data.x_test.shape == (1, 4, 3, 3)
    expected = np.clip(np.round(tf.image.resize(gradient, (4, 3)).numpy()), 0, 255)
    np.testing.assert_array_equal(got.data.x_train[0], expected.astype(np.uint8))
    np.testing.assert_array_equal(got.data.x_train[1], flat((7, 8, 9), 4, 3))
    np.testing.assert_array_equal(got.data.x_test[0], flat((1, 2, 3), 4, 3))
    assert got.origin["image_size"] == [4, 3]


def test_read_folder_images_of_different_sizes_name_two_files(tmp_path):
    write_image(tmp_path / "train/a/big.png", flat((1, 2, 3), 8, 6))
    write_image(tmp_path / "train/a/small.png", flat((1, 2, 3), 4, 4))
    write_image(tmp_path / "test/a/t.png", flat((1, 2, 3), 8, 6))
    message = error_message(user_data.read_folder, str(tmp_path))
    assert (f"{str(tmp_path / 'train/a/big.png')!r} is 8x6 but "
            f"{str(tmp_path / 'train/a/small.png')!r} is 4x4") in message
    assert "--image_size=H,W" in message


def make_folder(root, names) -> None:
    """Writes a 2x2 PNG at every name (a path under ``root``); names ending in / are
    folders."""
    for name in names:
        if name.endswith("/"):
            os.makedirs(root / name, exist_ok=True)
        elif name.endswith(".png"):
            write_image(root / name, flat((5, 5, 5), 2, 2))
        else:
            os.makedirs(os.path.dirname(root / name), exist_ok=True)
            (root / name).write_text("text")


@pytest.mark.parametrize("names, wrong", [
    ([], "{root}' does not exist"),
    (["train/a/1.png"], "has no 'test' folder ('{root}/test' does not exist)"),
    (["test/a/1.png"], "has no 'train' folder ('{root}/train' does not exist)"),
    (["train/x.png", "test/a/1.png"], "'{root}/train' holds no class folders"),
    (["train/a/1.png", "train/b/readme.txt", "test/a/1.png"],
     "class folder '{root}/train/b' holds no PNG, JPEG, BMP or GIF images (found only "
     "readme.txt)"),
    (["train/a/1.png", "test/a/"], "class folder '{root}/test/a' holds no PNG, JPEG, BMP or GIF "
     "images (it is empty)"),
    (["train/a/1.png", "train/b/1.png", "test/fox/1.png"],
     "test class folder '{root}/test/fox' is not a train class; the train classes are a, b."),
])
def test_read_folder_bad_layout_names_what_is_wrong(tmp_path, names, wrong):
    root = tmp_path / "data"
    if names:
        make_folder(root, names)
    message = error_message(user_data.read_folder, str(root))
    assert wrong.format(root=root) in message


def test_read_folder_corrupt_image_names_the_file(tmp_path):
    make_folder(tmp_path, ["train/a/1.png", "test/a/1.png"])
    bad = tmp_path / "train" / "a" / "2.jpg"
    bad.write_bytes(b"not a jpeg at all")
    message = error_message(user_data.read_folder, str(tmp_path))
    assert message.startswith(f"cannot read image {str(bad)!r}")


# ----------------------------------------------------------------------------- npz arrays


def write_npz(folder, split: str, **arrays) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{split}.npz")
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("image_shape, dtype, stored_shape", [
    ((5, 4), np.uint8, (5, 4)),
    ((5, 4, 1), np.uint8, (5, 4)),  # squeezed
    ((5, 4, 3), np.float64, (5, 4, 3)),  # float32, not rescaled
    ((5, 4, 3), np.int64, (5, 4, 3)),  # integers in 0..255 become uint8
])
def test_read_arrays_remaps_labels_to_sorted_class_indices(tmp_path, image_shape, dtype,
                                                           stored_shape):
    rng = np.random.default_rng(1)
    x_train = (rng.random((4, *image_shape)) * 255).astype(dtype)
    x_test = (rng.random((2, *image_shape)) * 255).astype(dtype)
    write_npz(tmp_path, "train", x=x_train, y=np.array([7, 3, 7, 9], np.int32))
    write_npz(tmp_path, "test", x=x_test, y=np.array([[9], [3]]))  # [N, 1] labels
    got = user_data.read_arrays(str(tmp_path))
    assert got.class_names == ("3", "7", "9")
    np.testing.assert_array_equal(got.data.y_train, [1, 0, 1, 2])
    np.testing.assert_array_equal(got.data.y_test, [2, 0])
    assert got.data.y_train.dtype == got.data.y_test.dtype == np.int64
    want_dtype = np.float32 if dtype == np.float64 else np.uint8
    for x, raw in ((got.data.x_train, x_train), (got.data.x_test, x_test)):
        assert x.shape == (len(raw), *stored_shape) and x.dtype == want_dtype
        np.testing.assert_array_equal(x, raw.reshape(x.shape).astype(want_dtype))
    assert got.origin == {"arrays": str(tmp_path), "labels": [3, 7, 9]}


def good_arrays(n=4):
    return {"x": np.zeros((n, 3, 3), np.uint8), "y": np.arange(n) % 2}


@pytest.mark.parametrize("train, wrong", [
    ({"x": np.zeros((4, 3, 3), np.uint8), "labels": np.zeros(4, int)},
     "has no array y: its arrays are x, labels"),
    ({"x": np.zeros((4, 3, 3), np.uint8), "y": np.zeros(3, int)},
     "holds 4 images in x but 3 labels in y"),
    ({"x": np.zeros((4, 3, 3), np.uint8), "y": np.array([0, 1, 0.5, 1])},
     "y in '{path}' is float64: labels must be integers"),
    ({"x": np.zeros((4, 3, 3), np.uint8), "y": np.array([0.0, 1.0, 0.0, 1.0])},
     "labels must be integers"),
    ({"x": np.zeros((4, 3, 3), np.uint8), "y": np.array(["a", "b", "a", "b"])},
     "is <U1: labels must be integers"),
    ({"x": np.zeros((4, 9), np.uint8), "y": np.zeros(4, int)},
     "x in '{path}' has shape (4, 9): it must be N x H x W or N x H x W x C"),
    ({"x": np.full((4, 3, 3), "a"), "y": np.zeros(4, int)}, "is <U1, not numeric"),
    ({"x": np.full((4, 3, 3), 300), "y": np.zeros(4, int)}, "from 300 to 300"),
    ({"x": np.zeros((0, 3, 3), np.uint8), "y": np.zeros(0, int)}, "holds no images"),
])
def test_read_arrays_bad_train_npz_names_what_is_wrong(tmp_path, train, wrong):
    path = write_npz(tmp_path, "train", **train)
    write_npz(tmp_path, "test", **good_arrays())
    message = error_message(user_data.read_arrays, str(tmp_path))
    assert wrong.format(path=path) in message and path in message


def test_read_arrays_missing_file_names_the_path(tmp_path):
    write_npz(tmp_path, "train", **good_arrays())
    message = error_message(user_data.read_arrays, str(tmp_path))
    assert f"{str(tmp_path / 'test.npz')!r} does not exist" in message


@pytest.mark.parametrize("content, wrong", [
    (b"garbage, not a zip", "is not a valid npz file"),
    (b"PK\x03\x04 truncated zip", "is not a valid npz file"),
    ("npy", "is a single .npy array, not an npz file"),
])
def test_read_arrays_invalid_npz_names_the_file(tmp_path, content, wrong):
    write_npz(tmp_path, "train", **good_arrays())
    path = tmp_path / "test.npz"
    if content == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    else:
        path.write_bytes(content)
    message = error_message(user_data.read_arrays, str(tmp_path))
    assert f"{str(path)!r} {wrong}" in message


def test_read_arrays_train_and_test_shapes_must_match(tmp_path):
    write_npz(tmp_path, "train", **good_arrays())
    write_npz(tmp_path, "test", x=np.zeros((2, 4, 3), np.uint8), y=np.zeros(2, int))
    message = error_message(user_data.read_arrays, str(tmp_path))
    assert "are uint8 (3, 3) but test images" in message and "uint8 (4, 3)" in message


def test_read_arrays_unknown_test_label_is_named(tmp_path):
    write_npz(tmp_path, "train", x=np.zeros((4, 3, 3), np.uint8), y=np.array([2, 5, 2, 5]))
    write_npz(tmp_path, "test", x=np.zeros((2, 3, 3), np.uint8), y=np.array([5, 4]))
    message = error_message(user_data.read_arrays, str(tmp_path))
    assert "has label 4 which no train image" in message
    assert "the train labels are 2, 5." in message
