"""MirroredStrategy on two logical CPUs trains exactly what one device trains."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from clser_tf import model as model_module
from clser_tf.model import CLSER
from helpers import mirrored, tiny_bn_cnn, tiny_mlp



def tasks(input_shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    for classes in ((0, 1), (2, 3)):
        if dtype == "uint8":
            x = rng.integers(0, 256, (48, *input_shape), dtype=np.uint8)
        else:
            x = rng.normal(size=(48, *input_shape)).astype(np.float32)
        yield x, rng.choice(classes, 48)


def train(strategy, backbone_fn, input_shape, dtype, **kwargs) -> CLSER:
    """Two tasks of 6 global batches of 8 (a few dozen steps in all)."""
    with strategy.scope():
        model = CLSER(backbone_fn(), buffer_size=20, replay_batch_size=6, reg_weight=0.5,
                      stable_alpha=0.9, stable_update_freq=0.6, plastic_alpha=0.8,
                      plastic_update_freq=0.9, seed=7, **kwargs)
        model.compile(optimizer=keras.optimizers.SGD(0.05))
    for x, y in tasks(input_shape, dtype):
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return model


def max_weight_difference(a: CLSER, b: CLSER) -> float:
    pairs = [(m, getattr(b, name)) for name in ("working_model", "plastic_model", "stable_model")
             for m in [getattr(a, name)]]
    return max(float(np.max(np.abs(u - v))) for ma, mb in pairs
               for u, v in zip(ma.get_weights(), mb.get_weights()))


def replica_values(variable) -> list[np.ndarray]:
    strategy = tf.distribute.get_strategy()
    return [v.numpy() for v in strategy.experimental_local_results(variable.value)]


def test_mirrored_mlp_equals_one_device():
    single = train(tf.distribute.get_strategy(), tiny_mlp, (6,), "float32")
    strategy = mirrored()
    double = train(strategy, tiny_mlp, (6,), "float32")
    assert max_weight_difference(single, double) < 1e-5
    with strategy.scope():
        for name in ("inputs", "labels", "num_seen"):
            copies = replica_values(getattr(double.buffer, name))
            for copy in copies:  # both replicas hold the single-device buffer
                np.testing.assert_array_equal(copy, getattr(single.buffer, name).numpy())
        assert replica_values(double.global_step) == [single.global_step.numpy()] * 2
    assert int(single.buffer.num_seen.numpy()) == 2 * 2 * 48


def test_mirrored_logs_the_global_loss_terms():
    single = train(tf.distribute.get_strategy(), tiny_mlp, (6,), "float32")
    double = train(mirrored(), tiny_mlp, (6,), "float32")
    x, y = next(tasks((6,), "float32", seed=1))
    logs_single = single.fit(x, y, batch_size=8, shuffle=False, verbose=0).history
    logs_double = double.fit(x, y, batch_size=8, shuffle=False, verbose=0).history
    for name in ("loss", "ce_loss", "consistency_loss", "accuracy", "stable_teacher_fraction"):
        assert logs_double[name][0] == pytest.approx(logs_single[name][0], abs=1e-5), name


def test_per_replica_random_draws_break_the_equality(monkeypatch):
    """The equality test can fail: seeds that differ per replica (a naive port) diverge."""
    single = train(tf.distribute.get_strategy(), tiny_mlp, (6,), "float32")
    original = model_module.stream_seed

    def per_replica_seed(seed, stream, step):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return original(seed, stream, step) + tf.cast([replica, 0], tf.int64)

    monkeypatch.setattr(model_module, "stream_seed", per_replica_seed)
    broken = train(mirrored(), tiny_mlp, (6,), "float32")
    assert max_weight_difference(single, broken) > 1e-3


def test_mirrored_sync_batch_norm_cnn_matches_one_device_within_tolerance():
    single = train(tf.distribute.get_strategy(), lambda: tiny_bn_cnn(True), (8, 8, 3), "uint8",
                   replay_augment=None)
    double = train(mirrored(), lambda: tiny_bn_cnn(True), (8, 8, 3), "uint8")
    assert max_weight_difference(single, double) < 1e-4
    np.testing.assert_array_equal(double.buffer.stored_inputs().numpy(), single.buffer.stored_inputs().numpy())


def test_export_from_strategy_scope_serves_without_strategy(tmp_path):
    strategy = mirrored()
    model = train(strategy, tiny_mlp, (6,), "float32")
    with strategy.scope():
        model.export_stable(str(tmp_path / "export"))
    x = np.random.default_rng(5).normal(size=(5, 6)).astype(np.float32)
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(loaded.serve(x).numpy(), model.stable_model(x).numpy(), atol=1e-6)
