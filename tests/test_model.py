"""Tests of clser_tf.model.CLSER: the step against NumPy, EMA, determinism, save/load, export."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import clser_tf
from clser_tf.draws import (PLASTIC_STREAM, REPLAY_STREAM, RESERVOIR_STREAM, STABLE_STREAM,
                            stream_seed)
from clser_tf.memories import ema_alpha
from clser_tf.model import CLSER
from helpers import keras_dtype

NUM_CLASSES = 3
LR = 0.1
# Small buffer (reservoir replacement), plastic and stable EMA settings that differ.
SETTINGS = dict(buffer_size=6, replay_batch_size=5, reg_weight=0.7, plastic_alpha=0.3,
                plastic_update_freq=1.0, stable_alpha=0.99, stable_update_freq=0.5, seed=3)


# ----------------------------------------------------------------------------- helpers
def tiny_mlp(seed: int = 0, input_dtype: str = "float32") -> keras.Model:
    """Input(4) -> Dense(8, relu) -> Dense(3), seeded, with non-zero biases."""
    inputs = keras.Input((4,), dtype=input_dtype)
    x = inputs if input_dtype == "float32" else keras.layers.Rescaling(1.0 / 255.0)(inputs)
    init = lambda s: dict(kernel_initializer=keras.initializers.GlorotUniform(seed + s),
                          bias_initializer=keras.initializers.RandomNormal(0, 0.3, seed + s))
    x = keras.layers.Dense(8, activation="relu", **init(1))(x)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, **init(2))(x))


def make_clser(backbone=None, lr: float = LR, **kwargs) -> CLSER:
    """A compiled CLSER on a tiny MLP with SETTINGS, overridden by ``kwargs``."""
    model = CLSER(backbone if backbone is not None else tiny_mlp(), **{**SETTINGS, **kwargs})
    model.compile(keras.optimizers.SGD(lr))
    return model


def make_data(n: int, seed: int = 0, labels=range(NUM_CLASSES)):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 4)).astype(np.float32),
            rng.choice(np.asarray(list(labels)), size=n).astype(np.int64))


def fit(model: CLSER, x, y, batch_size: int = 4) -> dict:
    """One ``fit`` epoch in order; returns the last epoch's logs."""
    history = model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return {name: values[-1] for name, values in history.history.items()}


def state(model: CLSER) -> list[np.ndarray]:
    """Everything a step changes: the three models, the buffer and the global step."""
    return [*model.working_model.get_weights(), *model.plastic_model.get_weights(),
            *model.stable_model.get_weights(), model.buffer.stored_inputs().numpy(),
            model.buffer.labels.numpy(), model.buffer.num_seen.numpy(),
            model.global_step.numpy()]


def assert_states_equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def states_equal(a, b) -> bool:
    return all(u.shape == v.shape and np.array_equal(u, v) for u, v in zip(a, b))


def uniform(seed: int, stream: int, step: int, shape, dtype=tf.float32) -> np.ndarray:
    """The exact uniforms the model draws for one random stream at one global step."""
    return tf.random.stateless_uniform(shape, stream_seed(seed, stream, step),
                                       dtype=dtype).numpy()


class NumpyCLSER:
    """SPEC steps 1-6 for the tiny MLP in float64 NumPy, with hand-written gradients."""

    def __init__(self, weights, buffer_size, replay_batch_size, reg_weight, plastic_alpha,
                 plastic_update_freq, stable_alpha, stable_update_freq, seed, lr=LR):
        self.working = [np.asarray(w, np.float64) for w in weights]
        self.plastic = [w.copy() for w in self.working]
        self.stable = [w.copy() for w in self.working]
        self.capacity, self.replay_batch_size = buffer_size, replay_batch_size
        self.reg_weight, self.seed, self.lr = reg_weight, seed, lr
        self.ema = [("plastic", PLASTIC_STREAM, plastic_alpha, plastic_update_freq),
                    ("stable", STABLE_STREAM, stable_alpha, stable_update_freq)]
        self.buffer_x = np.zeros((buffer_size, 4))
        self.buffer_y = np.zeros(buffer_size, np.int64)
        self.num_seen = self.global_step = 0

    @staticmethod
    def forward(params, x):
        w1, b1, w2, b2 = params
        pre = x @ w1 + b1
        hidden = np.maximum(pre, 0)
        return hidden @ w2 + b2, (x, pre, hidden)

    @staticmethod
    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def step(self, x, y) -> dict:
        x = np.asarray(x, np.float64)
        step = self.global_step
        # 1. Replay batch: the smallest keys among the filled slots, in ascending key order.
        filled = min(self.num_seen, self.capacity)
        keys = uniform(self.seed, REPLAY_STREAM, step, [self.capacity])[:filled]
        index = np.argsort(keys, kind="stable")[: self.replay_batch_size]
        x_m, y_m = self.buffer_x[index], self.buffer_y[index]
        num_replay = len(index)
        # 2. Teachers: stable row if it gives the label a strictly higher probability.
        z_s, z_p = self.forward(self.stable, x_m)[0], self.forward(self.plastic, x_m)[0]
        rows = np.arange(num_replay)
        stable_chosen = self.softmax(z_s)[rows, y_m] > self.softmax(z_p)[rows, y_m]
        teacher = np.where(stable_chosen[:, None], z_s, z_p)
        # 3. CE over the merged batch + λ MSE over the replay slice, and its gradient.
        x_all, y_all = np.concatenate([x, x_m]), np.concatenate([y, y_m])
        logits, (inputs, pre, hidden) = self.forward(self.working, x_all)
        probs = self.softmax(logits)
        n = len(y_all)
        ce = -np.mean(np.log(probs[np.arange(n), y_all]))
        diff = logits[len(y):] - teacher
        mse = np.sum(diff ** 2) / max(num_replay * NUM_CLASSES, 1)
        d_logits = probs.copy()
        d_logits[np.arange(n), y_all] -= 1
        d_logits /= n
        d_logits[len(y):] += 2 * self.reg_weight * diff / max(num_replay * NUM_CLASSES, 1)
        w1, b1, w2, b2 = self.working
        d_hidden = d_logits @ w2.T * (pre > 0)
        grads = [inputs.T @ d_hidden, d_hidden.sum(0), hidden.T @ d_logits, d_logits.sum(0)]
        # 4. SGD.
        self.working = [w - self.lr * g for w, g in zip(self.working, grads)]
        # 5. Algorithm R, one sample at a time.
        draws = uniform(self.seed, RESERVOIR_STREAM, step, [len(y)], tf.float64)
        for k in range(len(y)):
            n_seen = self.num_seen
            slot = n_seen if n_seen < self.capacity else math.floor(draws[k] * (n_seen + 1))
            if slot < self.capacity:
                self.buffer_x[slot], self.buffer_y[slot] = x[k], y[k]
            self.num_seen += 1
        # 6. global_step += 1, then plastic and stable EMA with probability r.
        self.global_step += 1
        updated = {}
        for name, stream, alpha_max, freq in self.ema:
            updated[name] = bool(uniform(self.seed, stream, step, []) < np.float32(freq))
            if updated[name]:
                alpha = min(1 - 1 / (self.global_step + 1), alpha_max)
                setattr(self, name, [alpha * e + (1 - alpha) * w
                                     for e, w in zip(getattr(self, name), self.working)])
        return dict(ce_loss=ce, consistency_loss=mse, loss=ce + self.reg_weight * mse,
                    num_replay=num_replay, stable_chosen=stable_chosen, updated=updated,
                    stable_teacher_fraction=stable_chosen.mean() if num_replay else 0.0)


def close(actual, expected, atol=1e-5):
    """``assert_allclose`` for arrays or equally long lists of arrays."""
    if isinstance(actual, list):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            np.testing.assert_allclose(a, e, rtol=1e-5, atol=atol)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=atol)


# ------------------------------------------------------------------ 1. step vs NumPy
@pytest.mark.parametrize("fused_forward", [True, False])
def test_compiled_step_matches_numpy_reimplementation(fused_forward):
    model = make_clser(fused_forward=fused_forward)
    reference = NumpyCLSER(model.working_model.get_weights(), **SETTINGS)
    x, y = make_data(28, seed=1)
    seen_replay_sizes, seen_choices, seen_updates = set(), set(), set()
    for step in range(7):
        xb, yb = x[4 * step: 4 * step + 4], y[4 * step: 4 * step + 4]
        logs = fit(model, xb, yb)
        expected = reference.step(xb, yb)
        for name in ("ce_loss", "consistency_loss", "loss", "stable_teacher_fraction"):
            close(logs[name], expected[name])
        close(model.working_model.get_weights(), reference.working)
        close(model.plastic_model.get_weights(), reference.plastic)
        close(model.stable_model.get_weights(), reference.stable)
        np.testing.assert_array_equal(model.buffer.stored_inputs().numpy(),
                                      reference.buffer_x.astype(np.float32))
        np.testing.assert_array_equal(model.buffer.labels.numpy(), reference.buffer_y)
        assert model.buffer.num_seen.numpy() == reference.num_seen
        assert model.global_step.numpy() == reference.global_step
        seen_replay_sizes.add(expected["num_replay"])
        seen_choices |= set(expected["stable_chosen"].tolist())
        seen_updates.add(expected["updated"]["stable"])
    # The run covered: empty buffer, partial buffer, full replay batch; both teacher
    # choices; stable updates taken and skipped; reservoir replacement (28 seen > 6).
    assert {0, 4, 5} <= seen_replay_sizes
    assert seen_choices == {True, False}
    assert seen_updates == {True, False}


def test_ties_go_to_the_plastic_teacher():
    model = make_clser(plastic_alpha=0.5, stable_alpha=0.5,  # identical EMA models
                       plastic_update_freq=1.0, stable_update_freq=1.0)
    logs = fit(model, *make_data(24), batch_size=4)
    assert_states_equal(model.plastic_model.get_weights(), model.stable_model.get_weights())
    assert logs["consistency_loss"] > 0  # replay (and teachers) were used
    assert logs["stable_teacher_fraction"] == 0.0


def test_fused_and_separate_forward_agree_for_an_mlp():
    x, y = make_data(24, seed=2)
    fused, separate = make_clser(fused_forward=True), make_clser(fused_forward=False)
    fit(fused, x, y)
    fit(separate, x, y)
    for u, v in zip(state(fused), state(separate)):
        close(u, v)


# ------------------------------------------------------------------------------ 3. EMA
def test_ema_alpha_warm_up_schedule():
    close(ema_alpha(1, 0.99).numpy(), 0.5)
    close(ema_alpha(2, 0.99).numpy(), 2 / 3)
    close(ema_alpha(9, 0.99).numpy(), 0.9)
    close(ema_alpha(1000, 0.99).numpy(), 0.99)
    close(ema_alpha(3, 0.6).numpy(), 0.6)


def test_a_float64_model_steps_in_float64():
    """Logits, losses and the EMA's alpha take the model's float64 (the lock-step check
    runs so): the first step's CE is NumPy's float64 CE, and after two steps the plastic
    model is the float64 average (float32 anywhere would be off by about 1e-8)."""
    with keras_dtype("float64"):
        model = make_clser(tiny_mlp(), plastic_update_freq=1.0, plastic_alpha=0.99)
    x, y = make_data(8)
    logits = model.working_model(x[:4]).numpy()  # an MLP: no batch state to disturb
    expected_ce = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(4), y[:4]])
    plastic = model.working_model.get_weights()
    for step in (1, 2):
        logs = model.train_on_batch(x[4 * step - 4: 4 * step], y[4 * step - 4: 4 * step],
                                    return_dict=True)
        if step == 1:  # an empty buffer: the loss is the current batch's CE
            assert abs(logs["ce_loss"] - expected_ce) < 1e-14 * abs(expected_ce)
        alpha = 1 - 1 / (step + 1)
        plastic = [alpha * p + (1 - alpha) * w
                   for p, w in zip(plastic, model.working_model.get_weights())]
    got = model.plastic_model.get_weights()
    assert all(w.dtype == np.float64 for w in got)
    assert max(np.abs(g - p).max() for g, p in zip(got, plastic)) < 1e-15
    assert ema_alpha(2, 0.99, tf.float64).numpy() == 1 - 1 / 3  # as the reference computes


def test_update_frequency_zero_never_updates_the_ema_models():
    model = make_clser(plastic_update_freq=0.0, stable_update_freq=0.0)
    initial = model.working_model.get_weights()
    fit(model, *make_data(24))
    assert model.global_step.numpy() == 6
    assert not states_equal(model.working_model.get_weights(), initial)
    assert_states_equal(model.plastic_model.get_weights(), initial)
    assert_states_equal(model.stable_model.get_weights(), initial)


def test_update_frequency_one_updates_every_step():
    model = make_clser(plastic_update_freq=1.0, plastic_alpha=0.9,
                       stable_update_freq=1.0, stable_alpha=0.99)
    x, y = make_data(20)
    plastic = stable = model.working_model.get_weights()
    for step in range(1, 6):
        fit(model, x[4 * step - 4: 4 * step], y[4 * step - 4: 4 * step])
        working = model.working_model.get_weights()
        ema = lambda old, a: [a * e + (1 - a) * w for e, w in zip(old, working)]
        plastic = ema(plastic, min(1 - 1 / (step + 1), 0.9))
        stable = ema(stable, min(1 - 1 / (step + 1), 0.99))
        close(model.plastic_model.get_weights(), plastic)
        close(model.stable_model.get_weights(), stable)


def test_plastic_and_stable_differ_only_when_their_settings_differ():
    x, y = make_data(24)
    base = dict(plastic_alpha=0.5, plastic_update_freq=1.0,
                stable_alpha=0.5, stable_update_freq=1.0)
    same = make_clser(**base)
    fit(same, x, y)
    assert_states_equal(same.plastic_model.get_weights(), same.stable_model.get_weights())
    for settings in (dict(stable_alpha=0.99), dict(stable_update_freq=0.5)):
        model = make_clser(**{**base, **settings})
        fit(model, x, y)
        assert not states_equal(model.plastic_model.get_weights(),
                                model.stable_model.get_weights()), settings


# ---------------------------------------------------------------------- 4. determinism
def _two_tasks(seed: int) -> CLSER:
    model = make_clser(seed=seed)
    fit(model, *make_data(16, seed=10, labels=[0, 1]))
    fit(model, *make_data(16, seed=11, labels=[2]))
    return model


def test_same_seed_gives_identical_state_after_two_tasks():
    assert_states_equal(state(_two_tasks(seed=5)), state(_two_tasks(seed=5)))


def test_another_seed_gives_a_different_state():
    a, b = state(_two_tasks(seed=5)), state(_two_tasks(seed=6))
    assert not states_equal(a, b)
    assert not np.array_equal(a[-4], b[-4])  # the buffer's contents are seed-driven


# ---------------------------------------------------------- 5. tasks, save/load round trip
def test_two_tasks_keep_the_buffer_and_count_global_steps():
    model = make_clser(buffer_size=20, replay_batch_size=8)
    fit(model, *make_data(40, seed=10, labels=[0, 1]))
    labels_after_task1 = model.buffer.labels.numpy().copy()
    fit(model, *make_data(24, seed=11, labels=[2]))
    labels = model.buffer.labels.numpy()
    assert model.buffer.num_seen.numpy() == 64
    assert model.global_step.numpy() == 16 and model.optimizer.iterations.numpy() == 16
    assert set(labels_after_task1) == {0, 1}
    kept = labels != 2
    assert np.any(kept) and np.any(~kept)  # task-1 samples survive, task-2 ones entered
    np.testing.assert_array_equal(labels[kept], labels_after_task1[kept])


def test_save_load_round_trip_continues_training_identically(tmp_path):
    x1, y1 = make_data(24, seed=10, labels=[0, 1])
    x2, y2 = make_data(4, seed=11, labels=[2])
    model = make_clser(stable_update_freq=0.5)
    fit(model, x1, y1)
    path = str(tmp_path / "clser.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert_states_equal(state(loaded), state(model))
    fit(model, x2, y2)
    fit(loaded, x2, y2)
    assert loaded.global_step.numpy() == 7
    assert_states_equal(state(loaded), state(model))


# ------------------------------------------------------------------------- 6. export
def test_exported_stable_model_serves_the_same_predictions(tmp_path):
    model = make_clser(stable_update_freq=1.0)
    fit(model, *make_data(16))
    x, _ = make_data(10, seed=4)
    path = str(tmp_path / "stable")
    model.export_stable(path)
    loaded = tf.saved_model.load(path)  # keep a reference: it owns the variables
    served = loaded.serve(tf.constant(x)).numpy()
    close(served, model.predict(x, verbose=0))
    close(served, model.stable_model(x).numpy())
    assert not np.allclose(served, model.working_model(x).numpy())


# ---------------------------------------------------------------------- 7. ResNet / BN
def _bn_layers(model: keras.Model) -> dict:
    return {layer.name: layer for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)}


def test_resnet18_step_averages_only_trainable_weights():
    """Reference BatchNorm: gamma/beta are averaged, moving stats come from teacher passes."""
    keras.utils.set_random_seed(0)
    backbone = clser_tf.backbones.resnet18(input_shape=(32, 32, 3), num_classes=4,
                                           base_filters=4)
    model = CLSER(backbone, buffer_size=16, replay_batch_size=8, reg_weight=0.15,
                  stable_alpha=0.9, stable_update_freq=1.0, plastic_alpha=0.9,
                  plastic_update_freq=1.0, replay_augment=clser_tf.RandomCropFlip(), seed=1)
    model.compile(keras.optimizers.SGD(0.05))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(32, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 4, size=32)
    working, ema_models = _bn_layers(model.working_model), (
        _bn_layers(model.stable_model), _bn_layers(model.plastic_model))
    names = ("gamma", "beta", "moving_mean")
    expected = {(layer, name): getattr(working[layer], name).numpy()
                for layer in working for name in names}  # EMA of the working model
    for step in range(1, 5):
        logs = fit(model, x[8 * step - 8: 8 * step], y[8 * step - 8: 8 * step], batch_size=8)
        assert np.isfinite(logs["loss"])
        alpha = min(1 - 1 / (step + 1), 0.9)
        for (layer, name), value in expected.items():
            expected[layer, name] = (alpha * value +
                                     (1 - alpha) * getattr(working[layer], name).numpy())
        if step == 1:  # empty buffer: no teacher pass yet, so moving stats are untouched
            for ema in ema_models:
                for layer in ema.values():
                    np.testing.assert_array_equal(layer.moving_mean.numpy(), 0.0)
                    np.testing.assert_array_equal(layer.moving_variance.numpy(), 1.0)
    assert model.global_step.numpy() == 4
    for ema in ema_models:
        for layer_name, layer in ema.items():
            close(layer.gamma.numpy(), expected[layer_name, "gamma"])  # averaged
            close(layer.beta.numpy(), expected[layer_name, "beta"])
            assert not np.allclose(layer.moving_mean.numpy(),
                                   expected[layer_name, "moving_mean"], atol=1e-4)
            # Updated by the teacher passes (training mode) of steps 2-4.
            assert not np.allclose(layer.moving_mean.numpy(), 0.0)
            assert not np.allclose(layer.moving_variance.numpy(), 1.0)


# ------------------------------------------------------------------- 8. bad arguments
@pytest.mark.parametrize("name, value", [
    ("buffer_size", 0), ("buffer_size", -1), ("buffer_size", 1.5),
    ("replay_batch_size", 0), ("stable_alpha", 1.0), ("stable_alpha", -0.1),
    ("plastic_alpha", 1.5), ("stable_update_freq", 1.1), ("stable_update_freq", -0.1),
    ("reg_weight", -1),
])
def test_bad_constructor_argument_raises_value_error_naming_it(name, value):
    with pytest.raises(ValueError, match=f"{name}={value!r}"):
        CLSER(tiny_mlp(), **{name: value})


@pytest.mark.parametrize("backbone", [
    lambda x: x, keras.layers.Dense(3), keras.Sequential([keras.layers.Dense(3)]),
], ids=["function", "layer", "unbuilt_sequential"])
def test_bad_backbone_raises_value_error(backbone):
    with pytest.raises(ValueError, match="backbone="):
        CLSER(backbone)


def test_compile_with_a_loss_raises():
    with pytest.raises(ValueError, match="loss"):
        CLSER(tiny_mlp()).compile(loss="mse")


@pytest.mark.parametrize("bad_label", [3, -1])
def test_out_of_range_numpy_labels_raise_value_error_naming_the_label(bad_label):
    model = make_clser()
    x, y = make_data(8)
    y[5] = bad_label
    with pytest.raises(ValueError, match=f"label {bad_label} "):
        model.fit(x, y, batch_size=4, verbose=0)
    assert model.global_step.numpy() == 0


def test_out_of_range_dataset_labels_raise_mentioning_num_classes():
    model = make_clser()
    x, y = make_data(8)
    y[5] = NUM_CLASSES
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes"):
        model.fit(dataset, verbose=0)


# ------------------------------------------------------------- 9. logs and evaluation
def test_fit_logs_all_loss_terms_and_metrics():
    logs = fit(make_clser(), *make_data(16))
    assert {"loss", "ce_loss", "consistency_loss", "accuracy",
            "stable_teacher_fraction"} <= set(logs)
    close(logs["loss"], logs["ce_loss"] + 0.7 * logs["consistency_loss"])


def test_evaluate_returns_the_stable_model_loss_and_accuracy():
    model = make_clser(stable_update_freq=1.0)
    fit(model, *make_data(24))
    x, y = make_data(10, seed=7)  # 10 samples in batches of 4: a partial last batch
    results = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    logits = model.stable_model(x).numpy().astype(np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    close(results["loss"], -np.mean(log_probs[np.arange(10), y]))
    close(results["accuracy"], np.mean(logits.argmax(1) == y))
    working_logits = model.working_model(x).numpy()
    assert not np.allclose(logits, working_logits)


# ------------------------------------------------------------------ 10. storage dtype
def test_uint8_backbone_buffer_stores_raw_uint8_inputs():
    model = make_clser(tiny_mlp(input_dtype="uint8"), buffer_size=12)
    x = np.random.default_rng(0).integers(0, 256, size=(12, 4), dtype=np.uint8)
    y = np.arange(12) % NUM_CLASSES
    fit(model, x, y)
    assert model.buffer.stored_inputs().dtype == "uint8"
    assert model.buffer.inputs.shape[1] * 4 == x[0].size  # one byte per pixel, packed
    np.testing.assert_array_equal(model.buffer.stored_inputs().numpy(), x)
    np.testing.assert_array_equal(model.buffer.labels.numpy(), y)


def test_two_pass_runs_the_replay_pass_first_as_the_reference():
    """observe() runs net(buf) then net(cat(batch, buf)): BatchNorm takes the merged batch last."""
    inputs = keras.Input((2,))
    x = keras.layers.BatchNormalization(momentum=0.0, name="bn")(inputs)  # keeps the last batch
    backbone = keras.Model(inputs, keras.layers.Dense(3)(x))
    model = clser_tf.CLSER(backbone, buffer_size=8, replay_batch_size=4, seed=0,
                           fused_forward=False)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    labels = np.zeros(8, np.int64)
    model.fit(np.full((8, 2), 5.0, np.float32), labels, batch_size=8, epochs=1, verbose=0)
    model.fit(np.full((8, 2), 1.0, np.float32), labels, batch_size=8, epochs=1, verbose=0)
    moving_mean = np.asarray(model.working_model.get_layer("bn").moving_mean)
    np.testing.assert_allclose(moving_mean, (8 * 1.0 + 4 * 5.0) / 12, rtol=1e-6)
