"""End-to-end runs of every benchmark family on tiny data, and the new flags' validation."""

import functools
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from clser_tf import gcil, runner
from clser_tf.export import CLASS_NAMES_FILE
from clser_tf.image_transforms import draw_task_transforms
from helpers import (TOY, write_idx_dir, random_dataset, write_cifar_dir, flagfile, make_config,
                     register_toy_benchmark, ring_dataset)

CONSTANT_CLASS = 3


@pytest.fixture
def distinct_models(monkeypatch):
    """Makes the plastic model always predict CONSTANT_CLASS (runs set its update freq to 0)."""
    build = runner.build_model

    def build_with_constant_plastic(benchmark, run_config):
        model = build(benchmark, run_config)
        head = model.plastic_model.get_layer("classifier")
        kernel, bias = head.get_weights()
        bias = np.zeros_like(bias)
        bias[CONSTANT_CLASS] = 1.0  # the only non-zero logit, whatever the input
        head.set_weights([np.zeros_like(kernel), bias])
        return model

    monkeypatch.setattr(runner, "build_model", build_with_constant_plastic)


def _results(run_config):
    results = runner.run(run_config)
    with open(os.path.join(run_config.output_dir, "results.json")) as f:
        assert json.load(f) == json.loads(json.dumps(results))
    return results


FAST = ("--verbose=0", "--tensorboard=false", "--export_dir=", "--steps_per_execution=5")


def test_perm_mnist_end_to_end_evaluates_each_model(tmp_path, distinct_models):
    data = ring_dataset(16, 5)
    results = _results(make_config(
        flagfile("perm-mnist.cfg"), f"--data_dir={write_idx_dir(tmp_path / 'd', data)}",
        f"--output_dir={tmp_path / 'run'}", "--seed=4", "--batch_size=32", "--buffer_size=40",
        "--plastic_update_freq=0", "--stable_update_freq=0", *FAST))
    assert results["benchmark"]["setting"] == "domain-il"
    recorded = [t["permutation"] for t in results["benchmark"]["task_transforms"]]
    assert recorded == [t.permutation.tolist()
                        for t in draw_task_transforms("permutation", 20, 784, seed=4)]
    models = results["models"]
    for name in ("working", "plastic", "stable"):
        matrix = models[name]["matrix"]["domain_il"]
        assert set(models[name]) >= {"random_init", "before_task", "matrix", "summary"}
        assert list(models[name]["matrix"]) == ["domain_il"]  # no task-IL in domain-IL
        assert [len(row) for row in matrix] == list(range(1, 21))
    share_of_constant = 100 * np.mean(data.y_test == CONSTANT_CLASS)
    assert all(acc == share_of_constant
               for row in models["plastic"]["matrix"]["domain_il"] for acc in row)
    frozen = models["stable"]["random_init"]["domain_il"]  # stable never updated
    assert all(row == frozen[:len(row)] for row in models["stable"]["matrix"]["domain_il"])
    assert models["working"]["matrix"]["domain_il"][-1] != frozen
    assert results["headline"] == {
        "model": "stable", "domain_il": models["stable"]["summary"]["domain_il"]["final_mean"]}
    assert os.path.isfile(tmp_path / "run" / "accuracy_matrix.png")


def test_rot_mnist_end_to_end_reads_fmnist_and_records_angles(tmp_path):
    data = ring_dataset(10, 3)
    results = _results(make_config(
        flagfile("rot-mnist.cfg"), "--source=fmnist", f"--output_dir={tmp_path / 'run'}",
        f"--data_dir={write_idx_dir(tmp_path / 'fmnist', data)}",
        "--seed=2", "--batch_size=50", "--buffer_size=20", *FAST))
    angles = [t["rotation_deg"] for t in results["benchmark"]["task_transforms"]]
    assert angles == [t.degrees for t in draw_task_transforms("rotation", 20, 784, seed=2)]
    assert all(0 <= a < 180 for a in angles) and results["benchmark"]["source"] == "fmnist"
    summary = results["models"]["stable"]["summary"]["domain_il"]
    assert set(summary) == {"final_mean", "forgetting", "backward_transfer", "forward_transfer"}
    assert results["config"]["source"] == "fmnist"


def _scalar_tags(event_dir):
    tags = set()
    for path in glob.glob(os.path.join(event_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_mnist360_is_one_fit_with_a_curve_and_evaluates_each_model(tmp_path, distinct_models,
                                                                   monkeypatch):
    fits, fit = [], runner.CLSER.fit

    def counting_fit(self, *args, **kwargs):
        fits.append(kwargs["epochs"])
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(runner.CLSER, "fit", counting_fit)
    data = ring_dataset(40, 10)
    results = _results(make_config(
        flagfile("mnist-360.cfg"), f"--data_dir={write_idx_dir(tmp_path / 'd', data)}",
        f"--output_dir={tmp_path / 'run'}", "--plastic_update_freq=0", "--stable_update_freq=0",
        "--verbose=0", "--steps_per_execution=5", "--eval_every_steps=10",
        "--log_every_steps=10"))
    assert fits == [1]  # one fit, one pass over the whole stream: no task boundaries
    stream = results["benchmark"]["stream"]
    assert stream["num_samples"] == 360 and stream["batch_size"] == 16
    steps = results["curve"]["steps"]
    assert steps == [*range(0, stream["num_steps"], 10), stream["num_steps"]]
    assert results["curve"]["samples"] == 90  # the whole test set of digits 0..8
    models = results["models"]
    assert models["working"]["curve"][0] == models["stable"]["curve"][0]  # one initial model
    # each model is really evaluated: the frozen stable model scores its initial accuracy,
    # the constant plastic model the share of its class, the working model what it learnt
    assert models["stable"]["accuracy"] == pytest.approx(models["stable"]["curve"][0])
    assert models["plastic"]["accuracy"] == pytest.approx(100 / 9)
    assert models["plastic"]["per_digit"] == [0.0] * 3 + [100.0] + [0.0] * 5
    assert models["working"]["accuracy"] == pytest.approx(models["working"]["curve"][-1])
    assert models["working"]["accuracy"] > 50 > models["stable"]["accuracy"]
    assert results["headline"] == {"model": "stable", "accuracy": models["stable"]["accuracy"]}
    tags = _scalar_tags(tmp_path / "run" / "tensorboard" / "eval")
    assert {f"{name}/curve_accuracy" for name in models} <= tags
    assert {f"{name}/accuracy" for name in models} <= tags
    assert {"batch_loss", "batch_consistency_loss"} <= _scalar_tags(
        tmp_path / "run" / "tensorboard" / "train")  # step metrics, at the global step
    assert os.path.isdir(tmp_path / "run" / "export")


@pytest.fixture
def small_gcil(monkeypatch, tmp_path):
    """The CIFAR-100 folder of a tiny gcil-cifar100: 3 phases of <= 5 classes and 50 samples."""
    monkeypatch.setattr(gcil, "sample_phases", functools.partial(
        gcil.sample_phases, num_phases=3, phase_size=50, max_classes=5))
    return write_cifar_dir(tmp_path, random_dataset((32, 32, 3), 2000, 200, 100), 100)


def test_gcil_cifar100_end_to_end(tmp_path, small_gcil):
    results = _results(make_config(
        flagfile("gcil-longtail.cfg"), f"--data_dir={small_gcil}",
        f"--output_dir={tmp_path / 'run'}", "--epochs=1", "--batch_size=8", "--backbone=mlp",
        *FAST))
    assert results["benchmark"]["weight_dist"] == "longtail"
    assert results["benchmark"]["gcil_seed"] == 1993 and len(results["benchmark"]["phases"]) == 3
    matrix = results["models"]["stable"]["matrix"]
    assert list(matrix) == ["class_il"] and [len(row) for row in matrix["class_il"]] == [1, 2, 3]
    assert "diverged_at_task" not in results  # a non-finite loss stops the run instead


def test_a_phase_smaller_than_a_batch_trains_no_step(tmp_path, small_gcil):
    results = _results(make_config(
        flagfile("gcil-uniform.cfg"), f"--data_dir={small_gcil}",
        f"--output_dir={tmp_path / 'run'}", "--epochs=1", "--batch_size=64", "--backbone=mlp",
        *FAST))
    working = results["models"]["working"]
    untrained = working["random_init"]["class_il"]
    assert all(row == untrained[:len(row)] for row in working["matrix"]["class_il"])


def test_seq_fmnist_end_to_end_keeps_class_and_task_il(tmp_path):
    data = ring_dataset(10, 3)
    results = _results(make_config(
        f"--data_dir={write_idx_dir(tmp_path / 'd', data)}", f"--output_dir={tmp_path / 'run'}",
        *FAST))
    assert list(results["models"]["stable"]["matrix"]) == ["class_il", "task_il"]
    assert results["benchmark"]["task_classes"] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]


# ----------------------------------------------------------------------------- flags


@pytest.mark.parametrize("argv, message", [
    (["--benchmark=seq-cifar10", "--source=fmnist"],
     "--source='fmnist' is invalid: only perm-mnist, rot-mnist, mnist-360 read it"),
    (["--benchmark=perm-mnist", "--weight_dist=longtail"],
     "--weight_dist='longtail' is invalid: only gcil-cifar100 read it"),
    (["--benchmark=rot-mnist", "--eval_every_steps=50"], "--eval_every_steps=50 is invalid"),
    (["--benchmark=mnist-360", "--epochs=2"], "--epochs=2 is invalid: mnist-360 is one pass"),
    (["--benchmark=mnist-360", "--eval_every_steps=30"],
     "--eval_every_steps=30 is invalid: it must be a multiple of --steps_per_execution=50"),
    (["--benchmark=mnist-360", "--curve_samples=0"], "--curve_samples=0 is invalid"),
    (["--benchmark=perm-mnist", "--source=kmnist"], "kmnist"),
])
def test_bad_benchmark_flags_name_flag_value_and_allowed(argv, message):
    with pytest.raises((ValueError, flags.IllegalFlagValueError), match=message):
        make_config(*argv)


def test_default_output_dir_names_source_and_weight_dist():
    assert make_config("--benchmark=perm-mnist", "--source=fmnist").output_dir == os.path.join(
        "runs", "perm-mnist-fmnist-buf200-seed0")
    assert make_config(flagfile("gcil-longtail-500.cfg"), "--seed=3").output_dir == (
        os.path.join("runs", "gcil-cifar100-longtail-buf500-seed3"))
    assert make_config("--benchmark=mnist-360").source is None


def test_a_registered_benchmark_runs_end_to_end(tmp_path, monkeypatch):
    declared = register_toy_benchmark(monkeypatch)
    results = _results(make_config(
        f"--benchmark={TOY}", f"--output_dir={tmp_path / 'run'}", "--batch_size=8",
        "--buffer_size=16", "--replay_batch_size=8", "--verbose=0", "--tensorboard=false",
        "--steps_per_execution=2"))
    assert (results["benchmark"]["name"], results["benchmark"]["setting"]) == (TOY, "class-il")
    assert results["benchmark"]["task_classes"] == [[0, 1], [2, 3]]
    assert len(results["models"]["stable"]["matrix"]["task_il"]) == 2
    with open(tmp_path / "run" / "export" / CLASS_NAMES_FILE, encoding="utf-8") as f:
        assert json.load(f) == list(declared.class_names)
