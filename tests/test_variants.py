"""The method variants are what they say: er is CLS-ER's working model with λ = 0 step for
step; stable-only / plastic-only keep one teacher; sgd never replays (plain SGD); joint
trains one task of every task's data; the runner refuses what a variant cannot do."""

import json

import keras
import numpy as np
import pytest

from clser_tf import runner
from clser_tf.model import CLSER
from clser_tf.variants import VARIANTS
from helpers import make_config, random_dataset, write_idx_dir

SETTINGS = dict(buffer_size=6, replay_batch_size=5, plastic_alpha=0.3, stable_alpha=0.99,
                stable_update_freq=0.5, seed=3)


def mlp(seed: int = 0) -> keras.Model:
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, activation="relu",
                           kernel_initializer=keras.initializers.GlorotUniform(seed))(inputs)
    return keras.Model(inputs, keras.layers.Dense(
        3, kernel_initializer=keras.initializers.GlorotUniform(seed + 1))(x))


def data(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 4)).astype(np.float32),
            rng.integers(0, 3, n).astype(np.int64))


def trained(jit_compile="auto", **kwargs) -> tuple[CLSER, dict]:
    model = CLSER(mlp(), **{**SETTINGS, **kwargs})
    model.compile(keras.optimizers.SGD(0.1), jit_compile=jit_compile)
    x, y = data()
    history = model.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    return model, {k: v[-1] for k, v in history.history.items()}


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_er_is_clser_with_no_consistency_loss_step_for_step(jit_compile):
    # Bit for bit without XLA; with it, within float rounding: XLA fuses the two steps'
    # different graphs (CLS-ER's has teachers and a 0 * MSE term) into different kernels.
    er, _ = trained(jit_compile, semantic_memories=(), reg_weight=0.0)
    clser, _ = trained(jit_compile, reg_weight=0.0)
    assert er.plastic_model is None and er.stable_model is None
    assert er.serving_model is er.working_model
    if jit_compile:
        for u, v in zip(er.working_model.get_weights(), clser.working_model.get_weights()):
            np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
    else:
        assert_same_weights(er.working_model.get_weights(), clser.working_model.get_weights())
    np.testing.assert_array_equal(er.buffer.labels.numpy(), clser.buffer.labels.numpy())
    with_loss, _ = trained(reg_weight=2.0)  # and λ matters, so the check can fail
    assert not np.allclose(with_loss.working_model.get_weights()[0],
                           clser.working_model.get_weights()[0])


@pytest.mark.parametrize("memory", ["stable", "plastic"])
def test_one_semantic_memory_is_always_the_teacher(memory):
    model, logs = trained(semantic_memories=(memory,), reg_weight=1.0)
    other = "plastic" if memory == "stable" else "stable"
    assert getattr(model, f"{other}_model") is None
    assert model.serving_model is getattr(model, f"{memory}_model")
    assert logs["stable_teacher_fraction"] == (1.0 if memory == "stable" else 0.0)
    assert logs["consistency_loss"] > 0


def test_sgd_never_replays_and_is_plain_sgd():
    model, logs = trained(semantic_memories=(), replay=False, reg_weight=0.0)
    assert model.buffer is None
    assert logs["consistency_loss"] == 0.0
    plain = mlp()
    plain.compile(keras.optimizers.SGD(0.1),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data()
    plain.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    for u, v in zip(model.working_model.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)


def test_semantic_memories_must_be_a_subset():
    with pytest.raises(ValueError, match=r"semantic_memories=\('fast',\) is invalid"):
        CLSER(mlp(), semantic_memories=("fast",))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_idx_dir(tmp_path_factory.mktemp("data"), random_dataset((28, 28), 200, 50, 10))


def run_flags(data_dir, output_dir, *extra):
    return ("--benchmark=seq-fmnist", f"--data_dir={data_dir}", f"--output_dir={output_dir}",
            "--buffer_size=20", "--batch_size=8", "--replay_batch_size=8", "--verbose=0",
            "--steps_per_execution=1", "--tensorboard=false", "--export_dir=", *extra)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_variant_runs_and_reports_its_model(variant, data_dir, tmp_path):
    results = runner.run(make_config(*run_flags(data_dir, tmp_path, f"--variant={variant}")))
    assert results["config"]["variant"] == variant
    assert set(results["models"]) == set(VARIANTS[variant].models)
    assert results["headline"]["model"] == VARIANTS[variant].reported_model
    matrix = results["models"][VARIANTS[variant].reported_model]["matrix"]["class_il"]
    if variant == "joint":  # one task of all 200 samples (25 steps), each task's test set
        assert len(matrix) == 1 and len(matrix[0]) == 5
        assert results["models"]["working"]["summary"]["class_il"]["forgetting"] is None
        assert len(results["timings"]["train_s"]) == 1
    else:
        assert [len(row) for row in matrix] == [1, 2, 3, 4, 5]
    with open(tmp_path / "results.json") as f:
        assert json.load(f)["config"]["variant"] == variant


@pytest.mark.parametrize("extra, message", [
    (("--variant=joint", "--benchmark=mnist-360"),
     r"--variant='joint' is invalid: the joint task is built for .*not --benchmark=mnist-360"),
    (("--variant=joint", "--benchmark=perm-mnist"), r"not --benchmark=perm-mnist"),
    (("--variant=er", "--eval_models=working,stable"),
     r"--eval_models='working,stable' is invalid: --variant=er has no stable model, only "
     r"working"),
])
def test_what_a_variant_cannot_do_is_one_line(extra, message, data_dir, tmp_path):
    flags = [f for f in run_flags(data_dir, tmp_path) if not f.startswith("--benchmark")]
    benchmark = [f for f in extra if f.startswith("--benchmark")] or ["--benchmark=seq-fmnist"]
    with pytest.raises(ValueError, match=message):
        make_config(*flags, *benchmark, *[f for f in extra if not f.startswith("--bench")])
