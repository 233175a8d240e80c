"""The exported stable model from every way of training: signature, float32 outputs, TFLite.

Each setting trains two steps, exports, and compares what the SavedModel serves with
``model.predict``. Tolerances: float32 1e-5; under a mixed policy the model computes in
16 bits, and the served float32 logits may differ from ``predict``'s 16-bit ones by one
unit in the last place of that dtype at the logits' scale (bfloat16 2**-7, float16 2**-10,
relative); measured: identical in every setting here.
"""

import json
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from clser_tf import backbones, benchmarks, runner
from clser_tf.export import CLASS_NAMES_FILE, TFLITE_FILE
from clser_tf.model import CLSER
from helpers import make_config, mirrored, ring_dataset, write_idx_dir

NUM_CLASSES = 3
EPSILON = {"float32": 0.0, "mixed_bfloat16": 2.0**-7, "mixed_float16": 2.0**-10}


@pytest.fixture(autouse=True)
def float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def mlp() -> keras.Model:
    return backbones.mlp((8, 8), NUM_CLASSES, hidden_units=16)


def resnet18() -> keras.Model:
    return backbones.resnet18((8, 8, 3), NUM_CLASSES, base_filters=4)


def synced_resnet18() -> keras.Model:
    """Under replicas: per-replica BatchNorm would leave each replica its own moving
    statistics (Keras 3 keeps them per replica), and ``predict`` would use them per shard."""
    return backbones.resnet18((8, 8, 3), NUM_CLASSES, base_filters=4, sync_batch_norm=True)


def own_backbone() -> keras.Model:
    """A user's plain functional model on float32 features, with BatchNorm and a nested
    Sequential block."""
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.Sequential([keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(8)])(x)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES)(x))


def samples(backbone: keras.Model, n: int, seed: int = 0) -> np.ndarray:
    spec = backbone.inputs[0]
    rng = np.random.default_rng(seed)
    if spec.dtype == "uint8":
        return rng.integers(0, 256, (n, *spec.shape[1:]), dtype=np.uint8)
    return rng.normal(size=(n, *spec.shape[1:])).astype(np.float32)


def trained(backbone_fn, policy: str = "float32", strategy=None, **kwargs) -> CLSER:
    """Two steps of a CLSER on ``backbone_fn()`` (built under ``policy``, in ``strategy``)."""
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    with (strategy or tf.distribute.get_strategy()).scope():
        model = CLSER(backbone_fn(), buffer_size=8, replay_batch_size=4, reg_weight=0.5,
                      stable_update_freq=1.0, seed=0, **kwargs)
        model.compile(keras.optimizers.SGD(0.01))
    x = samples(model.working_model, 8)
    model.fit(x, np.arange(8) % NUM_CLASSES, batch_size=4, shuffle=False, verbose=0)
    return model


SETTINGS = {
    "float32-mlp-fused": (mlp, "float32", False, {}),
    "float32-mlp-two_pass": (mlp, "float32", False, {"fused_forward": False}),
    "mixed_bfloat16-mlp": (mlp, "mixed_bfloat16", False, {}),
    "mixed_float16-mlp": (mlp, "mixed_float16", False, {}),
    "mirrored-mlp": (mlp, "float32", True, {}),
    "float32-resnet18": (resnet18, "float32", False, {}),
    "mixed_bfloat16-resnet18-two_pass": (resnet18, "mixed_bfloat16", False,
                                         {"fused_forward": False}),
    "mirrored-mixed_float16-resnet18": (synced_resnet18, "mixed_float16", True, {}),
    "float32-own_backbone": (own_backbone, "float32", False, {}),
    "mixed_bfloat16-own_backbone": (own_backbone, "mixed_bfloat16", False, {}),
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_export_serves_named_float32_outputs_equal_to_predict(setting, tmp_path):
    backbone_fn, policy, distributed, kwargs = SETTINGS[setting]
    model = trained(backbone_fn, policy, mirrored() if distributed else None, **kwargs)
    if policy != "float32":
        assert model.stable_model.layers[-1].compute_dtype != "float32"  # really 16-bit
    model.export_stable(str(tmp_path / "export"))
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    signature = loaded.signatures["serving_default"]
    spec = model.stable_model.inputs[0]
    assert signature.structured_input_signature == ((), {"inputs": tf.TensorSpec(
        (None, *spec.shape[1:]), spec.dtype, name="inputs")})
    assert {name: out.dtype for name, out in signature.structured_outputs.items()} == {
        "logits": tf.float32, "probabilities": tf.float32}

    x = samples(model.stable_model, 10, seed=1)
    served = signature(inputs=tf.constant(x))
    logits = loaded.serve(tf.constant(x))
    assert logits.dtype == tf.float32
    np.testing.assert_array_equal(logits.numpy(), served["logits"].numpy())
    expected = np.asarray(model.predict(x, verbose=0), np.float32)
    tolerance = max(1e-5, EPSILON[policy] * np.abs(expected).max())
    np.testing.assert_allclose(served["logits"].numpy(), expected, rtol=0, atol=tolerance)
    np.testing.assert_allclose(served["probabilities"].numpy(),
                               tf.nn.softmax(served["logits"]).numpy(), atol=1e-6)


def tflite_outputs(path: str, x: np.ndarray) -> dict:
    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice (LiteRT)
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=path)
    assert interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["inputs"], "outputs": ["logits", "probabilities"]}}
    runner = interpreter.get_signature_runner("serving_default")
    return runner(inputs=x)


@pytest.mark.parametrize("backbone_fn", [mlp, resnet18, own_backbone])
def test_tflite_file_matches_the_saved_model(backbone_fn, tmp_path):
    model = trained(backbone_fn)
    model.export_stable(str(tmp_path / "export"), tflite=True)
    x = samples(model.stable_model, 10, seed=2)
    lite = tflite_outputs(str(tmp_path / "export" / TFLITE_FILE), x)
    served = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"](
        inputs=tf.constant(x))
    for name in ("logits", "probabilities"):
        assert lite[name].dtype == np.float32
        np.testing.assert_allclose(lite[name], served[name].numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("backbone_fn", [resnet18, own_backbone])
def test_tflite_of_a_mixed_precision_model_is_its_float32_computation(backbone_fn, tmp_path):
    model = trained(backbone_fn, "mixed_bfloat16")
    model.export_stable(str(tmp_path / "export"), tflite=True)
    keras.mixed_precision.set_global_policy("float32")
    float32_stable = backbone_fn()
    float32_stable.set_weights(model.stable_model.get_weights())
    x = samples(model.stable_model, 10, seed=2)
    lite = tflite_outputs(str(tmp_path / "export" / TFLITE_FILE), x)
    np.testing.assert_allclose(lite["logits"], float32_stable(x).numpy(), rtol=0, atol=1e-4)
    bfloat16 = model.predict(x, verbose=0).astype(np.float32)
    assert not np.array_equal(lite["logits"], bfloat16)  # not the 16-bit computation...
    np.testing.assert_allclose(lite["logits"], bfloat16, rtol=0,  # ...but close to it
                               atol=4 * EPSILON["mixed_bfloat16"] * np.abs(bfloat16).max())


def test_class_names_are_recorded_and_stale_files_removed(tmp_path):
    model = trained(mlp)
    path = str(tmp_path / "export")
    model.export_stable(path, tflite=True, class_names=("cat", "dog", "bird"))
    with open(os.path.join(path, CLASS_NAMES_FILE), encoding="utf-8") as f:
        assert json.load(f) == ["cat", "dog", "bird"]
    assert os.path.isfile(os.path.join(path, TFLITE_FILE))
    model.export_stable(path)  # again, without either: an older file would mislead
    assert not os.path.exists(os.path.join(path, CLASS_NAMES_FILE))
    assert not os.path.exists(os.path.join(path, TFLITE_FILE))


@pytest.mark.parametrize("class_names", [["cat", "dog"], "abc", ["cat", "dog", 3]])
def test_bad_class_names_are_refused_before_anything_is_written(class_names, tmp_path):
    model = trained(mlp)
    with pytest.raises(ValueError, match=r"class_names=.* is invalid: it must be a list or "
                                         r"tuple of 3 strings"):
        model.export_stable(str(tmp_path / "export"), class_names=class_names)
    assert not (tmp_path / "export").exists()


def test_runner_exports_float32_outputs_tflite_and_label_names_after_mixed_bfloat16(
        tmp_path, capsys):
    data = ring_dataset(10, 3)
    argv = (f"--data_dir={write_idx_dir(tmp_path / 'd', data)}",
            f"--output_dir={tmp_path / 'run'}", "--mixed_precision=mixed_bfloat16",
            "--verbose=0", "--tensorboard=false", "--steps_per_execution=5")
    runner.run(make_config(*argv))
    export = str(tmp_path / "run" / "export")
    assert not os.path.exists(os.path.join(export, TFLITE_FILE))
    capsys.readouterr()
    runner.run(make_config(*argv, "--export_tflite"))  # the finished run, now with TFLite
    assert "every task is trained" in capsys.readouterr().out  # not a deciding setting
    signature = tf.saved_model.load(export).signatures["serving_default"]
    assert {name: out.dtype for name, out in signature.structured_outputs.items()} == {
        "logits": tf.float32, "probabilities": tf.float32}
    with open(os.path.join(export, CLASS_NAMES_FILE), encoding="utf-8") as f:
        assert json.load(f) == list(benchmarks.BENCHMARKS["seq-fmnist"].class_names)
    served = signature(inputs=tf.constant(data.x_test))["logits"].numpy()
    lite = tflite_outputs(os.path.join(export, TFLITE_FILE), data.x_test)["logits"]
    np.testing.assert_allclose(lite, served, rtol=0,
                               atol=4 * EPSILON["mixed_bfloat16"] * np.abs(served).max())


def test_export_tflite_needs_an_export():
    with pytest.raises(ValueError, match="--export_tflite=True is invalid: it needs an export, "
                                         "but --export_dir is empty"):
        make_config("--export_tflite", "--export_dir=")
