"""Tests of the GCIL phase sampler (clser_tf.gcil) and the gcil-cifar100 benchmark."""

import functools

import numpy as np
import pytest

from clser_tf import benchmarks, gcil
from helpers import random_dataset, write_cifar_dir


def _labels(per_class=500, num_classes=100):
    return np.random.default_rng(0).permutation(np.repeat(np.arange(num_classes), per_class))


def test_phases_follow_the_rule():
    y = _labels()
    phases = gcil.sample_phases(y, "uniform", seed=1993)
    assert len(phases) == 20
    used = np.zeros(100, int)
    for phase in phases:
        assert 1 <= len(phase.classes) <= 50 and len(set(phase.classes)) == len(phase.classes)
        assert all(count >= 1 for count in phase.counts) and sum(phase.counts) <= 1000
        np.testing.assert_array_equal(y[phase.train_indices],
                                      np.repeat(phase.classes, phase.counts))
        used[list(phase.classes)] += phase.counts
        if (used[list(phase.classes)] < 500).all():  # no class ran out: the full 1000
            assert sum(phase.counts) == 1000
    every_index = np.concatenate([p.train_indices for p in phases])
    assert len(set(every_index.tolist())) == len(every_index)  # never the same sample twice


def test_phases_are_reproducible_from_their_seed():
    y = _labels()
    first, again = gcil.sample_phases(y, "longtail", 7), gcil.sample_phases(y, "longtail", 7)
    other = gcil.sample_phases(y, "longtail", 8)
    for a, b in zip(first, again):
        assert (a.classes, a.counts) == (b.classes, b.counts)
        np.testing.assert_array_equal(a.train_indices, b.train_indices)
    assert [p.classes for p in first] != [p.classes for p in other]


def test_class_counts_are_uniform_in_1_to_50():
    phases = gcil.sample_phases(_labels(5000), "uniform", 0, num_phases=300)
    sizes = np.array([len(p.classes) for p in phases])
    assert sizes.min() == 1 and sizes.max() == 50 and abs(sizes.mean() - 25.5) < 3


def _mean_count(phases, lo, hi):
    counts = [n for p in phases for c, n in zip(p.classes, p.counts) if lo <= c < hi]
    return np.mean(counts)


def test_longtail_weights_favour_low_class_ids_and_uniform_does_not():
    np.testing.assert_allclose(gcil.class_weights(np.arange(100), "longtail"),
                               0.984 ** np.arange(100))
    np.testing.assert_array_equal(gcil.class_weights(np.arange(3), "uniform"), [1, 1, 1])
    y = _labels(5000)
    longtail = gcil.sample_phases(y, "longtail", 0, num_phases=300)
    uniform = gcil.sample_phases(y, "uniform", 0, num_phases=300)
    assert _mean_count(longtail, 0, 20) / _mean_count(longtail, 80, 100) > 1.8
    assert 0.8 < _mean_count(uniform, 0, 20) / _mean_count(uniform, 80, 100) < 1.25


def test_first_appearance_order():
    phases = (gcil.Phase((5, 2), (1, 1), np.zeros(2)), gcil.Phase((2, 9, 5), (1, 1, 1), np.zeros(3)))
    assert gcil.first_appearance_order(phases) == [5, 2, 9]


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="'zipf'"):
        gcil.sample_phases(_labels(), "zipf", 0)
    with pytest.raises(ValueError, match="phase_size=10"):
        gcil.sample_phases(_labels(), "uniform", 0, phase_size=10)


@pytest.fixture
def small_phases(monkeypatch):
    """gcil-cifar100 with 4 phases of at most 10 classes and 60 samples."""
    monkeypatch.setattr(gcil, "sample_phases", functools.partial(
        gcil.sample_phases, num_phases=4, phase_size=60, max_classes=10))


def test_benchmark_remaps_labels_by_first_appearance_with_cumulative_test_sets(
        tmp_path, small_phases):
    data = random_dataset((32, 32, 3), 1000, 300, 100)
    bench = benchmarks.load_benchmark(
        "gcil-cifar100", write_cifar_dir(tmp_path, data, 100), weight_dist="longtail",
        gcil_seed=3)
    phases = gcil.sample_phases(data.y_train, "longtail", 3)
    order = gcil.first_appearance_order(phases)
    assert bench.details["label_order"] == order
    assert (bench.setting, bench.task_il, bench.num_classes) == ("class-il", False, 100)
    original_of_test_image = {x.tobytes(): y for x, y in zip(data.x_test, data.y_test)}
    seen = []
    for task, phase in zip(bench.tasks, phases):
        seen += [c for c in phase.classes if c not in seen]
        assert task.classes == tuple(order.index(c) for c in phase.classes)
        np.testing.assert_array_equal(task.x_train, data.x_train[phase.train_indices])
        np.testing.assert_array_equal(
            task.y_train, [order.index(c) for c in data.y_train[phase.train_indices]])
        assert len(task.y_test) == np.isin(data.y_test, seen).sum()  # every seen class
        for x, label in zip(task.x_test, task.y_test):
            assert order[label] == original_of_test_image[x.tobytes()] and label < len(seen)
    assert bench.details["phases"][0] == {"classes": list(phases[0].classes),
                                          "labels": list(bench.tasks[0].classes),
                                          "counts": list(phases[0].counts)}
