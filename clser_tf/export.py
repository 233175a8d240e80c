"""The serving export of a model: a SavedModel with float32 outputs, optional TFLite and
class names (README, "Serving"). ``CLSER.export_stable`` writes its stable model with it."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Sequence

import keras
import tensorflow as tf

# Files of an export beside the SavedModel's own (``assets.extra`` is the SavedModel
# format's folder for files that the graph does not load).
CLASS_NAMES_FILE = os.path.join("assets.extra", "class_names.json")
TFLITE_FILE = "stable.tflite"


def write_serving_model(model: keras.Model, path: str) -> None:
    """``model`` as a SavedModel: ``serving_default`` returns named float32 ``logits`` and
    ``probabilities``, ``serve`` the float32 logits, both on the model's raw input."""
    spec = model.inputs[0]
    signature = [tf.TensorSpec(spec.shape, spec.dtype, name="inputs")]

    def logits(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(model(x, training=False), tf.float32)

    def outputs(x: tf.Tensor) -> dict[str, tf.Tensor]:
        z = logits(x)
        return {"logits": z, "probabilities": tf.nn.softmax(z)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", outputs, input_signature=signature)
    archive.add_endpoint("serve", logits, input_signature=signature)
    archive.write_out(path, verbose=False)


def float32_copy(model: keras.Model) -> keras.Model:
    """``model`` itself if every layer computes in float32, else a float32 copy of it
    (same weights; 16-bit inputs of nested models become float32 too)."""
    if all(layer.compute_dtype == "float32" for layer in model.layers
           if not isinstance(layer, keras.layers.InputLayer)):
        return model

    def float32_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, keras.Model):
            return float32_copy(layer)
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    def float32_input(tensor) -> keras.KerasTensor:
        dtype = "float32" if tensor.dtype in ("bfloat16", "float16") else tensor.dtype
        return keras.Input(batch_shape=tensor.shape, dtype=dtype)

    copy = keras.models.clone_model(
        model, input_tensors=keras.tree.map_structure(float32_input, model.input),
        clone_function=float32_layer)
    copy.set_weights(model.get_weights())
    return copy


def write_tflite(model: keras.Model, path: str) -> None:
    """``path/stable.tflite`` converted from the SavedModel of ``model`` at ``path``, or
    from a float32 copy of ``model`` if it computes in 16 bits (TFLite has no such ops)."""
    float32_model = float32_copy(model)
    with tempfile.TemporaryDirectory() as scratch:
        source = path
        if float32_model is not model:
            write_serving_model(float32_model, scratch)
            source = scratch
        tflite_model = tf.lite.TFLiteConverter.from_saved_model(source).convert()
    with open(os.path.join(path, TFLITE_FILE), "wb") as f:
        f.write(tflite_model)


def export_stable(model: keras.Model, path: str, *, tflite: bool = False,
                  class_names: Sequence[str] | None = None) -> None:
    """Writes ``model`` at ``path`` as ``CLSER.export_stable`` documents it."""
    num_classes = int(model.outputs[0].shape[-1])
    if class_names is not None and not (
            isinstance(class_names, (list, tuple)) and len(class_names) == num_classes
            and all(isinstance(name, str) for name in class_names)):
        raise ValueError(f"class_names={class_names!r} is invalid: it must be a list or "
                         f"tuple of {num_classes} strings, one per class.")
    write_serving_model(model, path)
    for name, wanted in ((CLASS_NAMES_FILE, class_names is not None), (TFLITE_FILE, tflite)):
        if not wanted and os.path.exists(os.path.join(path, name)):
            os.remove(os.path.join(path, name))  # left by an earlier export there
    if class_names is not None:
        os.makedirs(os.path.join(path, os.path.dirname(CLASS_NAMES_FILE)), exist_ok=True)
        with open(os.path.join(path, CLASS_NAMES_FILE), "w", encoding="utf-8") as f:
            json.dump(list(class_names), f, indent=1)
    if tflite:
        write_tflite(model, path)
