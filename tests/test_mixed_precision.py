"""Mixed precision: the backbone computes in bfloat16, the state CLS-ER keeps stays exact."""

import keras
import numpy as np
import pytest

from clser_tf import backbones
from clser_tf.model import CLSER


@pytest.fixture
def mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_mixed_bfloat16_trains_and_keeps_float32_state(mixed_bfloat16):
    keras.utils.set_random_seed(0)
    model = CLSER(backbones.mlp((8, 8), 2, hidden_units=16), buffer_size=32,
                  replay_batch_size=8, reg_weight=0.5, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 256)
    x = np.where(y[:, None, None] == 1, 200, 30).astype(np.uint8) + rng.integers(
        0, 40, (256, 8, 8)).astype(np.uint8)  # two separable classes
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    assert model.working_model.layers[-1].compute_dtype == "bfloat16"
    assert history["loss"][-1] < history["loss"][0]
    assert history["accuracy"][-1] > 0.9
    assert model.buffer.stored_inputs().dtype == "uint8"  # raw samples, not bfloat16
    for ema in (model.plastic_model, model.stable_model):
        assert all(w.dtype == "float32" for w in ema.weights)
    _, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.9
