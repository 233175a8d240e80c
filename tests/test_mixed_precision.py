"""Mixed precision: the backbone computes in 16 bits, the state CLS-ER keeps stays exact."""

import keras
import numpy as np
import pytest

from clser_tf import backbones
from clser_tf.model import CLSER


@pytest.fixture(params=["mixed_bfloat16", "mixed_float16"])
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_trains_and_keeps_float32_state(policy):
    keras.utils.set_random_seed(0)
    model = CLSER(backbones.mlp((8, 8), 2, hidden_units=16), buffer_size=32,
                  replay_batch_size=8, reg_weight=0.5, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 256)
    x = np.where(y[:, None, None] == 1, 200, 30).astype(np.uint8) + rng.integers(
        0, 40, (256, 8, 8)).astype(np.uint8)  # two separable classes
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    assert model.working_model.layers[-1].compute_dtype == policy.removeprefix("mixed_")
    assert history["loss"][-1] < history["loss"][0]
    assert history["accuracy"][-1] > 0.9
    assert model.buffer.stored_inputs().dtype == "uint8"  # raw samples, not bfloat16
    for ema in (model.plastic_model, model.stable_model):
        assert all(w.dtype == "float32" for w in ema.weights)
    _, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.9
