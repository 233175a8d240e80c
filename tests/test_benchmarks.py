"""Tests for clser_tf.benchmarks: task splits, data-source selection and tf.data streams."""

import dataclasses
import functools
import os

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

from clser_tf import (backbones, benchmarks, gcil, image_transforms, mnist360, sources, splits,
                      streams)
from clser_tf.errors import DatasetError
from clser_tf.image_transforms import rotate
from clser_tf.model import CLSER
from helpers import write_idx_dir, random_dataset, write_cifar_dir

# Imported as a module: `from clser_tf.streams import test_stream` would make pytest
# collect test_stream as a test.


def assert_split(bench: benchmarks.Benchmark, data: sources.ArrayDataset, classes_per_task):
    """Tasks hold consecutive classes in label order and every sample of them, in order."""
    num_tasks = bench.num_classes // classes_per_task
    assert len(bench.tasks) == num_tasks
    for k, task in enumerate(bench.tasks):
        assert task.classes == tuple(range(k * classes_per_task, (k + 1) * classes_per_task))
        for x, y, all_x, all_y in ((task.x_train, task.y_train, data.x_train, data.y_train),
                                   (task.x_test, task.y_test, data.x_test, data.y_test)):
            mask = np.isin(all_y, task.classes)
            np.testing.assert_array_equal(y, all_y[mask])
            np.testing.assert_array_equal(x, all_x[mask])
            assert x.dtype == np.uint8
    assert sum(len(t.y_train) for t in bench.tasks) == len(data.y_train)
    assert sum(len(t.y_test) for t in bench.tasks) == len(data.y_test)


def test_seq_fmnist_from_idx_dir_splits_5x2(tmp_path):
    data = random_dataset((28, 28), 50, 30, 10)
    bench = benchmarks.load_benchmark("seq-fmnist", write_idx_dir(tmp_path, data, gz=True))
    assert (bench.name, bench.input_shape, bench.num_classes) == ("seq-fmnist", (28, 28), 10)
    assert (bench.backbone, bench.augment, bench.mean, bench.std) == ("mlp", False, None, None)
    assert_split(bench, data, 2)


def test_seq_cifar100_splits_5x20_with_cifar10_statistics(tmp_path):
    data = random_dataset((32, 32, 3), 220, 110, 100)
    bench = benchmarks.load_benchmark("seq-cifar100", write_cifar_dir(tmp_path, data, 100))
    assert (bench.input_shape, bench.backbone, bench.augment) == ((32, 32, 3), "resnet18", True)
    assert bench.mean == (0.4914, 0.4822, 0.4465) and bench.std == (0.2470, 0.2435, 0.2615)
    assert_split(bench, data, 20)


def test_seq_cifar10_from_folder(tmp_path):
    data = random_dataset((32, 32, 3), 25, 15, 10)
    bench = benchmarks.load_benchmark("seq-cifar10", write_cifar_dir(tmp_path, data, 10))
    assert (bench.num_classes, bench.backbone, bench.augment) == (10, "resnet18", True)
    assert_split(bench, data, 2)


def test_seq_fmnist_falls_back_to_tfds_without_default_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmarks, "DEFAULT_FMNIST_DIR", str(tmp_path / "missing"))
    with tfds.testing.mock_data(num_examples=200):
        bench = benchmarks.load_benchmark("seq-fmnist")
    assert sum(len(t.y_train) for t in bench.tasks) == 200
    assert all(t.x_train.shape[1:] == (28, 28) and t.x_train.dtype == np.uint8
               for t in bench.tasks)


def test_seq_fmnist_lists_every_place_looked_when_all_fail(tmp_path, monkeypatch):
    missing = str(tmp_path / "missing")
    monkeypatch.setattr(benchmarks, "DEFAULT_FMNIST_DIR", missing)

    def offline(name, data_dir=None):
        raise DatasetError(f"tfds {name!r} needs internet")

    monkeypatch.setattr(sources, "load_tfds", offline)
    with pytest.raises(DatasetError) as info:
        benchmarks.load_benchmark("seq-fmnist")
    assert missing in str(info.value) and "'fashion_mnist'" in str(info.value)


def test_seq_fmnist_bad_data_dir_does_not_fall_back(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "load_tfds", pytest.fail)
    with pytest.raises(DatasetError, match=str(tmp_path / "nowhere")):
        benchmarks.load_benchmark("seq-fmnist", str(tmp_path / "nowhere"))


def test_label_outside_range_names_value(tmp_path):
    data = random_dataset((28, 28), 20, 10, 10)
    data.y_test[3] = 12
    with pytest.raises(DatasetError, match="label 12 .*\\[0, 10\\)"):
        benchmarks.load_benchmark("seq-mnist", write_idx_dir(tmp_path, data))


def test_wrong_image_shape_is_rejected(tmp_path):
    data = random_dataset((20, 20), 20, 10, 10)
    with pytest.raises(DatasetError, match="\\(20, 20\\).*\\(28, 28\\)"):
        benchmarks.load_benchmark("seq-fmnist", write_idx_dir(tmp_path, data))


def test_task_without_training_samples_is_rejected(tmp_path):
    data = random_dataset((28, 28), 20, 10, 8)  # classes 8 and 9 absent
    with pytest.raises(DatasetError, match="task 4 \\(classes \\(8, 9\\)\\)"):
        benchmarks.load_benchmark("seq-fmnist", write_idx_dir(tmp_path, data))


def test_unknown_benchmark_names_value_and_choices():
    with pytest.raises(ValueError, match="'seq-svhn'") as info:
        benchmarks.load_benchmark("seq-svhn")
    assert all(name in str(info.value) for name in benchmarks.BENCHMARKS)


def test_seq_tinyimg_requires_data_dir():
    with pytest.raises(DatasetError, match="data_dir.*tiny-imagenet-200"):
        benchmarks.load_benchmark("seq-tinyimg")


@pytest.mark.skipif(not os.path.isdir(benchmarks.DEFAULT_FMNIST_DIR),
                    reason="dataset-fashion-mnist is not installed")
def test_seq_fmnist_reads_installed_dataset():
    bench = benchmarks.load_benchmark("seq-fmnist")
    assert sum(len(t.y_train) for t in bench.tasks) == 60000
    assert sum(len(t.y_test) for t in bench.tasks) == 10000
    assert all(len(t.y_train) == 12000 and len(t.y_test) == 2000 for t in bench.tasks)


# ----------------------------------------------------------------------------- streams


def make_task(num_train=37, num_test=13, image_shape=(8, 8, 3)) -> benchmarks.Task:
    data = random_dataset(image_shape, num_train, num_test, 2)
    return benchmarks.Task((0, 1), data.x_train, data.y_train, data.x_test, data.y_test)


def epochs(ds, count=2):
    """``count`` passes over ``ds`` as lists of (images, labels) numpy batches."""
    return [[(x.numpy(), y.numpy()) for x, y in ds] for _ in range(count)]


def flatten(epoch):
    return np.concatenate([x for x, _ in epoch]), np.concatenate([y for _, y in epoch])


def test_train_stream_drops_remainder_and_keeps_raw_dtypes():
    task = make_task()
    epoch = epochs(streams.train_stream(task, 8, seed=1), 1)[0]
    assert len(epoch) == 4  # 37 // 8, the last 5 samples dropped
    for x, y in epoch:
        assert x.shape == (8, 8, 8, 3) and x.dtype == np.uint8 and y.dtype == np.int32


def test_train_stream_samples_are_the_tasks_and_shuffled():
    task = make_task(num_train=32)
    x, y = flatten(epochs(streams.train_stream(task, 8, seed=1), 1)[0])
    order = [int(np.flatnonzero((task.x_train == image).all(axis=(1, 2, 3)))[0]) for image in x]
    assert sorted(order) == list(range(32)) and order != list(range(32))
    np.testing.assert_array_equal(y, task.y_train[order])


def test_train_stream_order_is_keyed_on_seed_and_epoch_only():
    task = make_task()

    def order(seed, epoch, start_batch=0):
        return flatten(epochs(streams.train_stream(task, 8, seed, epoch, start_batch), 1)[0])[0]

    first = order(3, 0)
    np.testing.assert_array_equal(first, order(3, 0))  # no hidden state: rebuilt, the same
    np.testing.assert_array_equal(first, flatten(epochs(streams.train_stream(
        task, 8, seed=3))[1])[0])  # iterated again, the same too
    assert not np.array_equal(first, order(4, 0))
    assert not np.array_equal(first, order(3, 1))  # every epoch is shuffled afresh


def test_train_stream_resumes_an_epoch_at_any_batch():
    task = make_task()
    whole = epochs(streams.train_stream(task, 8, seed=5, epoch=2), 1)[0]
    for start in range(len(whole) + 1):
        rest = epochs(streams.train_stream(task, 8, seed=5, epoch=2, start_batch=start), 1)[0]
        assert len(rest) == len(whole) - start
        for (x, y), (x_whole, y_whole) in zip(rest, whole[start:]):
            np.testing.assert_array_equal(x, x_whole)
            np.testing.assert_array_equal(y, y_whole)


def test_train_stream_rejects_bad_arguments():
    task = make_task(image_shape=(8, 8))
    with pytest.raises(ValueError, match="batch_size=0"):
        streams.train_stream(task, 0, seed=0)
    with pytest.raises(ValueError, match="batch_size=38 .*37"):
        streams.train_stream(task, 38, seed=0)
    with pytest.raises(ValueError, match="epoch=-1 is invalid: it must be an int >= 0"):
        streams.train_stream(task, 8, seed=0, epoch=-1)
    with pytest.raises(ValueError, match="start_batch=5 is invalid: .* <= 4"):
        streams.train_stream(task, 8, seed=0, start_batch=5)


def test_test_stream_keeps_remainder_and_order():
    task = make_task()
    batches = epochs(streams.test_stream(task, 5), 1)[0]
    assert [len(y) for _, y in batches] == [5, 5, 3]
    x, y = flatten(batches)
    np.testing.assert_array_equal(x, task.x_test)
    np.testing.assert_array_equal(y, task.y_test)
    assert x.dtype == np.uint8 and y.dtype == np.int32


# ----------------------------------------------------------------------------- domain-IL


@pytest.mark.parametrize("name, kind", [("perm-mnist", "permutation"), ("rot-mnist", "rotation")])
def test_domain_il_has_20_tasks_of_all_classes_sharing_the_data(tmp_path, name, kind):
    data = random_dataset((28, 28), 40, 20, 10)
    bench = benchmarks.load_benchmark(name, write_idx_dir(tmp_path, data), seed=3)
    assert (bench.setting, bench.task_il, bench.num_classes, len(bench.tasks)) == (
        "domain-il", False, 10, 20)
    drawn = image_transforms.draw_task_transforms(kind, 20, 784, seed=3)
    assert bench.details == {"source": "mnist",
                             "task_transforms": [t.describe() for t in drawn]}
    for task, transform in zip(bench.tasks, drawn):
        assert task.classes == tuple(range(10)) and task.transform.describe() == transform.describe()
        assert task.x_train is bench.tasks[0].x_train and task.x_test is bench.tasks[0].x_test
        np.testing.assert_array_equal(task.x_train, data.x_train)


def test_a_tasks_transform_is_applied_to_its_train_and_test_batches_alike(tmp_path):
    data = random_dataset((28, 28), 40, 20, 10)
    bench = benchmarks.load_benchmark("perm-mnist", write_idx_dir(tmp_path, data), seed=1)
    task = bench.tasks[5]

    def permuted(x):
        return x.reshape(len(x), -1)[:, task.transform.permutation].reshape(x.shape)

    x, y = flatten(epochs(streams.train_stream(task, 8, seed=0), 1)[0])
    permuted_train = {image.tobytes(): label for image, label in zip(permuted(data.x_train),
                                                                      data.y_train)}
    assert all(permuted_train[image.tobytes()] == label for image, label in zip(x, y))
    x_test, y_test = flatten(epochs(streams.test_stream(task, 7), 1)[0])
    np.testing.assert_array_equal(x_test, permuted(data.x_test))
    np.testing.assert_array_equal(y_test, data.y_test)


def test_the_buffer_stores_the_transformed_samples(tmp_path):
    data = random_dataset((28, 28), 64, 10, 10)
    bench = benchmarks.load_benchmark("rot-mnist", write_idx_dir(tmp_path, data), seed=0)
    task = bench.tasks[2]
    model = CLSER(backbones.mlp(), buffer_size=16, replay_batch_size=8, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    model.fit(streams.train_stream(task, 16, seed=0), epochs=1, verbose=0)
    rotated = {image.tobytes() for image in task.transform(data.x_train).numpy()}
    raw = {image.tobytes() for image in data.x_train}
    stored = [image.tobytes() for image in model.buffer.stored_inputs().numpy()]
    assert all(image in rotated and image not in raw for image in stored)


def test_source_is_checked(tmp_path):
    with pytest.raises(ValueError, match="source='fmnist' is invalid for seq-mnist"):
        benchmarks.load_benchmark("seq-mnist", str(tmp_path), source="fmnist")
    with pytest.raises(ValueError, match="source='kmnist' is invalid"):
        benchmarks.load_benchmark("rot-mnist", str(tmp_path), source="kmnist")


def test_fmnist_source_reads_the_fashion_mnist_location(tmp_path, monkeypatch):
    data = random_dataset((28, 28), 40, 20, 10)
    monkeypatch.setattr(benchmarks, "DEFAULT_FMNIST_DIR", write_idx_dir(tmp_path, data))
    monkeypatch.setattr(sources, "load_tfds", pytest.fail)
    bench = benchmarks.load_benchmark("perm-mnist", source="fmnist")
    np.testing.assert_array_equal(bench.tasks[0].x_train, data.x_train)
    assert bench.details["source"] == "fmnist"


# ----------------------------------------------------------------------------- mnist-360


def _mnist360(tmp_path, per_class=40):
    data = random_dataset((28, 28), 10 * per_class, 50, 10)
    return data, benchmarks.load_benchmark("mnist-360", write_idx_dir(tmp_path, data))


def test_mnist360_pools_digits_0_to_8_with_rotated_test_sets(tmp_path):
    data, bench = _mnist360(tmp_path)
    assert (bench.setting, bench.num_classes, len(bench.tasks)) == ("general-continual", 10, 9)
    for digit, task in enumerate(bench.tasks):
        raw_test = data.x_test[data.y_test == digit]
        np.testing.assert_array_equal(task.x_train, data.x_train[data.y_train == digit])
        np.testing.assert_array_equal(task.x_test, rotate(
            raw_test, mnist360.evaluation_angles(len(raw_test))).numpy())
        assert task.classes == (digit,) and (task.y_test == digit).all()


def test_general_stream_follows_the_schedule_rotating_each_sample(tmp_path):
    _, bench = _mnist360(tmp_path)
    stream, schedule = streams.general_stream(bench, 16, seed=1)
    expected = mnist360.train_schedule([40] * 9, 16, np.random.default_rng(1))
    np.testing.assert_array_equal(schedule.indices, expected.indices)
    batches = epochs(stream, 1)[0]
    assert [len(y) for _, y in batches] == schedule.batch_sizes.tolist()
    x, y = flatten(batches)
    raw = np.stack([bench.tasks[d].x_train[i] for d, i in zip(schedule.digits,
                                                               schedule.indices)])
    np.testing.assert_array_equal(x, rotate(raw, schedule.angles).numpy())
    np.testing.assert_array_equal(y, schedule.digits)
    rest = epochs(streams.general_stream(bench, 16, seed=1, start_batch=7)[0], 1)[0]
    assert len(rest) == len(batches) - 7  # resuming skips the batches already trained
    np.testing.assert_array_equal(flatten(rest)[0], flatten(batches[7:])[0])


def test_held_out_slice_spreads_over_every_test_set(tmp_path):
    _, bench = _mnist360(tmp_path)
    x, y = flatten(epochs(streams.held_out_slice(bench.tasks, 18, 5), 1)[0])
    all_x = np.concatenate([t.x_test for t in bench.tasks])
    picked = np.linspace(0, len(all_x) - 1, 18).round().astype(int)
    np.testing.assert_array_equal(x, all_x[picked])
    assert sorted(set(y.tolist())) == list(range(9))


def test_streams_prefetch_without_the_autotune_thread():
    task = make_task()
    for stream in (streams.train_stream(task, 8, seed=1), streams.test_stream(task, 8)):
        assert stream.options().autotune.enabled is False
    plain = streams._slices(task.x_test, task.y_test).batch(8)
    np.testing.assert_array_equal(
        np.concatenate([y for _, y in streams.prefetched(plain)]), task.y_test)


# ----------------------------------------------------------------------------- the registry


def _synthetic_files(monkeypatch):
    """Every declaration that reads files of its own reads random data of its declared shape
    and classes instead (10 training and 2 test samples per class, at least 2000 / 400), and
    GCIL phases are small enough for that data."""
    for name, declared in list(benchmarks.BENCHMARKS.items()):
        if declared.read is not None:
            n = declared.num_classes
            data = random_dataset(declared.input_shape, max(10 * n, 2000), max(2 * n, 400), n)
            monkeypatch.setitem(benchmarks.BENCHMARKS, name, dataclasses.replace(
                declared, read=lambda data_dir, data=data: data))
    monkeypatch.setattr(gcil, "sample_phases", functools.partial(
        gcil.sample_phases, phase_size=60, max_classes=10))


@pytest.mark.parametrize("name", [name for name, declared in benchmarks.BENCHMARKS.items()
                                  if declared.read_own is None])  # own data: test_own_data
def test_every_declaration_loads_as_declared(name, monkeypatch):
    _synthetic_files(monkeypatch)
    declared = benchmarks.BENCHMARKS[name]
    bench = benchmarks.load_benchmark(name)
    assert (bench.name, bench.setting, bench.task_il) == (name, declared.setting,
                                                         declared.task_il)
    assert (bench.input_shape, bench.num_classes, len(bench.tasks)) == (
        declared.input_shape, declared.num_classes, declared.num_tasks)
    assert (bench.backbone, bench.augment, bench.mean, bench.std) == (
        declared.backbone, declared.augment, declared.mean, declared.std)
    origin = next(iter(declared.sources.values())) if declared.sources else name
    assert bench.class_names == benchmarks.BENCHMARKS[origin].class_names
    for task in bench.tasks:
        assert task.x_train.shape[1:] == task.x_test.shape[1:] == declared.input_shape
        assert len(task.y_train) and len(task.y_test)
        assert all(0 <= c < declared.num_classes for c in task.classes)


def test_the_declarations_are_the_benchmarks_of_before():
    assert benchmarks.names() == (
        "seq-fmnist", "seq-mnist", "seq-cifar10", "seq-cifar100", "seq-tinyimg", "perm-mnist",
        "rot-mnist", "mnist-360", "gcil-cifar100", "folder", "arrays", "tfds:NAME")
    assert benchmarks.accepting("num_tasks") == benchmarks.accepting("class_order") == (
        "seq-fmnist", "seq-mnist", "seq-cifar10", "seq-cifar100", "seq-tinyimg", "folder",
        "arrays", "tfds:NAME")
    assert benchmarks.accepting("image_size") == ("folder", "tfds:NAME")
    assert benchmarks.declaration("tfds:eurosat/rgb") is benchmarks.BENCHMARKS["tfds:NAME"]
    assert benchmarks.accepting("source") == ("perm-mnist", "rot-mnist", "mnist-360")
    assert benchmarks.accepting("weight_dist") == benchmarks.accepting("gcil_seed") == (
        "gcil-cifar100",)
    assert benchmarks.accepting("curve_samples") == ("mnist-360",)
    assert benchmarks.accepting("lr") == ()
    assert benchmarks.source_names() == ("mnist", "fmnist")
    assert benchmarks.BENCHMARKS["seq-mnist"].class_names == tuple("0123456789")


def test_a_declaration_reads_its_own_files_or_another_benchmarks():
    fields = dict(input_shape=(8, 8, 3), num_classes=4, num_tasks=2, backbone="mlp",
                  augment=False, mean=None, std=None, split=splits.class_il)
    with pytest.raises(ValueError, match="exactly one of them"):
        benchmarks.Declaration(benchmarks.Setting.CLASS_IL, **fields)
    with pytest.raises(ValueError, match="exactly one of them"):
        benchmarks.Declaration(benchmarks.Setting.CLASS_IL, **fields, read=pytest.fail,
                               sources={"mnist": "seq-mnist"})
    with pytest.raises(ValueError, match="exactly one of them"):
        benchmarks.Declaration(benchmarks.Setting.CLASS_IL, **fields, read=pytest.fail,
                               read_own=pytest.fail)
