"""Your own data and model: class_incremental, --benchmark=folder|arrays|tfds:NAME,
--num_tasks/--class_order, --backbone=MODULE:FUNCTION, --augment, and their bad input."""

import json
import os
import re
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from clser_tf import benchmarks, runner
from clser_tf.augment import random_crop_flip
from clser_tf.config import RunConfig, resolve
from clser_tf.export import CLASS_NAMES_FILE
from helpers import make_config, random_dataset, write_idx_dir

FAST = ("--verbose=0", "--tensorboard=false", "--steps_per_execution=2", "--batch_size=8",
        "--buffer_size=16", "--replay_batch_size=8", "--eval_batch_size=64")


def _arrays(image_shape=(6, 6), num_classes=4, dtype=np.uint8, seed=0):
    data = random_dataset(image_shape, 16 * num_classes, 4 * num_classes, num_classes, seed)
    convert = (lambda x: x) if dtype == np.uint8 else (lambda x: (x / 255.0).astype(dtype))
    return convert(data.x_train), data.y_train, convert(data.x_test), data.y_test


def _write_npz(directory, arrays):
    os.makedirs(directory, exist_ok=True)
    x_train, y_train, x_test, y_test = arrays
    np.savez(os.path.join(directory, "train.npz"), x=x_train, y=y_train)
    np.savez(os.path.join(directory, "test.npz"), x=x_test, y=y_test)
    return str(directory)


def _write_folder(directory, classes=("cat", "dog", "emu", "fox"), size=(8, 8)):
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 3)):
        for c, name in enumerate(classes):
            os.makedirs(directory / split / name)
            for i in range(count):
                image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                encoded = (tf.io.encode_png(image) if i % 2 else
                           tf.io.encode_jpeg(image, quality=100))
                tf.io.write_file(str(directory / split / name / f"{i}.{'png' if i % 2 else 'jpg'}"),
                                 encoded)
    return str(directory)


def _results(run_config):
    runner.run(run_config)
    with open(os.path.join(run_config.output_dir, "results.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------- class_incremental (API)
def test_class_incremental_splits_in_label_order_with_two_classes_per_task():
    bench = benchmarks.class_incremental(*_arrays(num_classes=6))
    assert [task.classes for task in bench.tasks] == [(0, 1), (2, 3), (4, 5)]
    for task in bench.tasks:
        assert set(task.y_train) == set(task.classes) == set(task.y_test)
    assert (bench.input_shape, bench.num_classes, bench.input_dtype) == ((6, 6), 6, "uint8")
    assert bench.details["class_order"] == [0, 1, 2, 3, 4, 5]


def test_random_class_order_is_reproducible_and_recorded():
    arrays = _arrays(num_classes=6)
    first = benchmarks.class_incremental(*arrays, num_tasks=3, class_order="random", seed=5)
    again = benchmarks.class_incremental(*arrays, num_tasks=3, class_order="random", seed=5)
    other = benchmarks.class_incremental(*arrays, num_tasks=3, class_order="random", seed=6)
    order = first.details["class_order"]
    assert sorted(order) == list(range(6)) and order != list(range(6))
    assert [task.classes for task in first.tasks] == [tuple(order[k:k + 2]) for k in (0, 2, 4)]
    assert [t.classes for t in again.tasks] == [t.classes for t in first.tasks]
    assert other.details["class_order"] != order


def test_statistics_and_defaults_come_from_the_data():
    x_train, y_train, x_test, y_test = _arrays((8, 8, 3))
    x_train[..., 1] = 255  # channel 1 is constant white: mean 1, std ~0
    bench = benchmarks.class_incremental(x_train, y_train, x_test, y_test)
    expected = x_train[..., 0].astype(np.float64) / 255
    assert bench.mean[0] == pytest.approx(expected.mean(), abs=1e-6)
    assert bench.std[0] == pytest.approx(expected.std(), abs=1e-6)
    assert bench.mean[1] == pytest.approx(1.0) and bench.std[1] < 1e-5
    assert (bench.backbone, bench.augment) == ("resnet18", True)  # colour
    gray = benchmarks.class_incremental(*_arrays((28, 28)))
    assert (gray.backbone, gray.augment) == ("mlp", False)
    large_gray = benchmarks.class_incremental(*_arrays((40, 40)))
    assert (large_gray.backbone, large_gray.augment) == ("resnet18", False)
    floats = benchmarks.class_incremental(*_arrays((6, 6), dtype=np.float64))
    assert floats.input_dtype == "float32"
    assert floats.mean[0] == pytest.approx(float(np.mean(_arrays((6, 6))[0] / 255.0)), abs=1e-5)


@pytest.mark.parametrize("change, message", [
    (lambda a: (a[0], a[1], a[2], a[3]), None),
    (lambda a: (a[0], a[1].astype(np.float32) + 0.5, a[2], a[3]), "labels must be one integer"),
    (lambda a: (a[0], a[1][:-1], a[2], a[3]), "has 64 images but y_train has 63"),
    (lambda a: (a[0], a[1], a[2], np.where(a[3] == 0, 9, a[3])), "test label 9 is unknown"),
    (lambda a: (a[0], np.where(a[1] == 1, 3, a[1]), a[2], a[3]), "class 1 has no training"),
    (lambda a: (a[0].astype(np.int32), a[1], a[2], a[3]), "must be uint8 or float"),
    (lambda a: (a[0], a[1], a[2][:, :5], a[3]), "differ"),
])
def test_bad_arrays_are_named(change, message):
    arrays = change(_arrays())
    if message is None:
        benchmarks.class_incremental(*arrays)
        return
    with pytest.raises(ValueError, match=message):
        benchmarks.class_incremental(*arrays)


def test_num_tasks_that_does_not_divide_the_classes_names_both_numbers():
    with pytest.raises(ValueError, match=r"num_tasks=3 is invalid: it must divide the 4 classes"):
        benchmarks.class_incremental(*_arrays(), num_tasks=3)


# ---------------------------------------------------------------- the command line
def test_arrays_run_records_the_data_and_exports_raw_float_images(tmp_path):
    data_dir = _write_npz(tmp_path / "data", _arrays((6, 6), dtype=np.float32))
    results = _results(make_config("--benchmark=arrays", f"--data_dir={data_dir}",
                                   f"--output_dir={tmp_path / 'run'}", *FAST))
    record = results["benchmark"]
    assert (record["name"], record["input_dtype"], record["num_classes"]) == (
        "arrays", "float32", 4)
    assert record["task_classes"] == [[0, 1], [2, 3]] and len(record["mean"]) == 1
    assert len(results["models"]["stable"]["matrix"]["class_il"]) == 2
    served = tf.saved_model.load(str(tmp_path / "run" / "export"))
    spec = served.signatures["serving_default"].structured_input_signature[1]["inputs"]
    assert (spec.dtype, tuple(spec.shape)) == (tf.float32, (None, 6, 6))


def test_folder_run_with_random_class_order_and_image_size(tmp_path, capsys):
    data_dir = _write_folder(tmp_path / "images")
    results = _results(make_config(
        "--benchmark=folder", f"--data_dir={data_dir}", "--image_size=6,6", "--num_tasks=2",
        "--class_order=random", "--class_order_seed=3", f"--output_dir={tmp_path / 'run'}",
        *FAST))
    record = results["benchmark"]
    order = list(np.random.default_rng(3).permutation(4))
    assert record["class_order"] == order
    assert record["task_classes"] == [order[:2], order[2:]]
    assert record["class_names"] == ["cat", "dog", "emu", "fox"]
    assert record["input_shape"] == [6, 6, 3]
    assert results["config"]["class_order"] == "random"
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("folder: 4 classes of 6x6x3 uint8 images, 2 tasks")
    assert "backbone resnet18, augmentation crop_flip" in line and "mean [" in line
    with open(tmp_path / "run" / "export" / CLASS_NAMES_FILE, encoding="utf-8") as f:
        assert json.load(f) == ["cat", "dog", "emu", "fox"]


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28)), ("svhn_cropped", (32, 32, 3))])
def test_tfds_benchmarks_of_different_shapes(tmp_path, name, shape):
    with tfds.testing.mock_data(num_examples=40):
        bench = benchmarks.load_benchmark(f"tfds:{name}", num_tasks=5)
    assert bench.input_shape == shape and bench.num_classes == 10
    assert len(bench.tasks) == 5 and bench.details["data"]["tfds"] == name


def test_tfds_run_through_the_command_line(tmp_path):
    with tfds.testing.mock_data(num_examples=40):
        config = make_config("--benchmark=tfds:mnist", "--num_tasks=2", "--export_dir=",
                             f"--output_dir={tmp_path / 'run'}", *FAST)
        results = _results(config)
    assert results["benchmark"]["name"] == "tfds:mnist"
    assert len(results["models"]["stable"]["matrix"]["task_il"]) == 2
    assert make_config("--benchmark=tfds:eurosat/rgb").output_dir == os.path.join(
        "runs", "tfds-eurosat-rgb-buf200-seed0")


def test_num_tasks_and_class_order_split_a_built_in_benchmark(tmp_path):
    data_dir = write_idx_dir(tmp_path / "idx", random_dataset((28, 28), 100, 20, 10))
    bench = benchmarks.load_benchmark("seq-mnist", data_dir, num_tasks=2,
                                      class_order="random", class_order_seed=1)
    order = [int(c) for c in np.random.default_rng(1).permutation(10)]
    assert [list(t.classes) for t in bench.tasks] == [order[:5], order[5:]]
    default = benchmarks.load_benchmark("seq-mnist", data_dir)
    assert len(default.tasks) == 5 and "class_order" not in default.details


def test_crop_flip_augments_single_channel_images():
    images = tf.reshape(tf.range(2 * 5 * 5, dtype=tf.float32), [2, 5, 5])
    out = random_crop_flip(images, tf.constant([1, 2]), padding=2)
    assert out.shape == images.shape
    assert not np.array_equal(out.numpy(), images.numpy())
    config = make_config("--augment=crop_flip")
    bench = benchmarks.class_incremental(*_arrays((6, 6)))
    assert runner.model_choices(bench, config) == ("mlp", True)


# ---------------------------------------------------------------- your own backbone
def _backbone_module(tmp_path, monkeypatch, body) -> str:
    """Writes ``body`` as a module of its own name (imports are cached by name)."""
    name = "my_backbones_" + re.sub(r"\W", "_", tmp_path.name)
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_a_custom_backbone_trains_and_serves(tmp_path, monkeypatch):
    module = _backbone_module(tmp_path, monkeypatch, """
        import keras
        def tiny(input_shape, num_classes):
            inputs = keras.Input(shape=input_shape, dtype="uint8")
            x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
            return keras.Model(inputs, keras.layers.Dense(num_classes, name="mine")(x))
    """)
    data_dir = _write_npz(tmp_path / "data", _arrays())
    config = make_config("--benchmark=arrays", f"--data_dir={data_dir}",
                         f"--backbone={module}:tiny", f"--output_dir={tmp_path / 'run'}",
                         *FAST)
    bench = benchmarks.load_benchmark("arrays", data_dir)
    model = runner.build_model(bench, config)
    assert model.working_model.get_layer("mine").units == 4
    assert len(_results(config)["models"]["stable"]["matrix"]["class_il"]) == 2


@pytest.mark.parametrize("body, spec, message", [
    ("", "missing_module:f", "module 'missing_module' cannot be imported"),
    ("x = 1\n", "my_backbones:f", "my_backbones has no function 'f'"),
    ("def f(shape, n):\n    return 3\n", "my_backbones:f", "returned int, not a built"),
    ("import keras\ndef f(shape, n):\n    i = keras.Input(shape=shape)\n"
     "    return keras.Model(i, keras.layers.Dense(n + 1)(keras.layers.Flatten()(i)))\n",
     "my_backbones:f", r"output shape is \(None, 5\); it must be \(batch, 4\)"),
    ("", "not a spec", "must be one of mlp, resnet18 or MODULE:FUNCTION"),
])
def test_bad_backbones_are_one_line_errors(tmp_path, monkeypatch, body, spec, message):
    spec = spec.replace("my_backbones", _backbone_module(tmp_path, monkeypatch, body))
    message = message.replace("my_backbones", "my_backbones_[a-z_0-9]+")
    data_dir = _write_npz(tmp_path / "data", _arrays())
    with pytest.raises(ValueError, match=message):
        config = make_config("--benchmark=arrays", f"--data_dir={data_dir}",
                             f"--backbone={spec}", f"--output_dir={tmp_path / 'run'}", *FAST)
        runner.build_model(benchmarks.load_benchmark("arrays", data_dir), config)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- bad command lines
@pytest.mark.parametrize("argv, message", [
    (["--benchmark=perm-mnist", "--num_tasks=2"], "--num_tasks=2 is invalid: only seq-fmnist"),
    (["--benchmark=mnist-360", "--class_order=random"], "--class_order='random' is invalid"),
    (["--benchmark=seq-fmnist", "--num_tasks=3"], "it must divide the 10 classes of seq-fmnist"),
    (["--benchmark=folder"], "--benchmark=folder reads DIR/train/<class>/"),
    (["--benchmark=arrays"], "DIR/train.npz and DIR/test.npz"),
    (["--benchmark=seq-fmnist", "--image_size=8,8"], "--image_size='8,8' is invalid: only"),
    (["--benchmark=tfds:mnist", "--image_size=8x8"], "--image_size='8x8' is invalid"),
    (["--benchmark=nope"], "--benchmark='nope' is invalid: it must be one of seq-fmnist"),
    (["--benchmark=tfds:"], "--benchmark='tfds:' is invalid"),
])
def test_bad_own_data_flags_name_flag_value_and_allowed(argv, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        make_config(*argv)


def test_a_bad_augment_names_the_choices():
    with pytest.raises(ValueError, match="--augment='rotate' is invalid: it must be one of "
                                         "none, crop_flip"):
        resolve(RunConfig(augment="rotate"))
