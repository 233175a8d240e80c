"""Predictions of an exported stable model: ``python -m clser_tf.predict --export_dir=DIR IMAGES...``.

``IMAGES`` are files or folders: IDX image files (names ending in ``ubyte`` or
``ubyte.gz``, as ``t10k-images-idx3-ubyte``), ``.npz`` files (the array ``x``, or the only
array: one image or a batch of them), PNG and JPEG files; a folder stands for its files of
those kinds. Every image must have the export's input shape (grayscale for a 2-D input,
that many channels for a 3-D one); values are passed as stored, cast to the export's input
dtype when no value changes. One line per image is printed (where it is, the predicted
class index, the class name when the export records them, its probability), and
``--json=PATH`` also writes them as a JSON list.

Only the SavedModel is used: it is loaded with ``tf.saved_model.load`` and run through its
``serving_default`` signature, so no model code is needed. Bad input (no export there, an
unreadable file, an image of the wrong shape, channels or dtype) ends the process with one
``clser_tf: error: ...`` line and exit code 1, before anything is predicted or written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
from absl import app, flags

from clser_tf.export import CLASS_NAMES_FILE
from clser_tf.sources import read_idx_file

SIGNATURE = "serving_default"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IDX_SUFFIXES = ("ubyte", "ubyte.gz")
SUFFIXES = (*IDX_SUFFIXES, ".npz", *IMAGE_SUFFIXES)
BATCH_SIZE = 1000

FLAGS = flags.FLAGS


@dataclasses.dataclass
class Export:
    """A loaded export: its serving signature, input spec and recorded class names."""

    serve: Any  # the ``serving_default`` concrete function
    input_shape: tuple[int, ...]  # without the batch dimension
    input_dtype: np.dtype
    class_names: list[str] | None
    saved_model: Any  # keeps the variables the signature reads alive


def load_export(path: str) -> Export:
    """Loads the SavedModel at ``path``; raises ``ValueError`` if it is not a stable export."""
    if not tf.saved_model.contains_saved_model(path):
        raise ValueError(f"--export_dir={path!r} is invalid: there is no SavedModel there "
                         "(e.g. a run's <output_dir>/export).")
    saved_model = tf.saved_model.load(path)
    serve = saved_model.signatures.get(SIGNATURE)
    outputs = serve.structured_outputs if serve is not None else {}
    if set(outputs) != {"logits", "probabilities"}:
        raise ValueError(f"--export_dir={path!r} is invalid: its {SIGNATURE!r} signature must "
                         "return logits and probabilities (export it with clser_tf's "
                         "CLSER.export_stable).")
    (spec,) = serve.structured_input_signature[1].values()
    num_classes = int(outputs["logits"].shape[-1])
    names_path = os.path.join(path, CLASS_NAMES_FILE)
    class_names = None
    if os.path.exists(names_path):
        try:
            with open(names_path, encoding="utf-8") as f:
                class_names = json.load(f)
        except (OSError, ValueError) as err:
            raise ValueError(f"{names_path!r} is unreadable: {err}") from None
        if not (isinstance(class_names, list) and len(class_names) == num_classes
                and all(isinstance(name, str) for name in class_names)):
            raise ValueError(f"{names_path!r} is invalid: it must hold a list of "
                             f"{num_classes} class names.")
    return Export(serve, tuple(spec.shape[1:]), np.dtype(spec.dtype.as_numpy_dtype),
                  class_names, saved_model)


def image_files(paths: Sequence[str]) -> list[str]:
    """``paths`` with every folder replaced by its image files (sorted by name)."""
    if not paths:
        raise ValueError("no images given: pass image files or folders after the flags.")
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, name) for name in os.listdir(path)
                           if name.lower().endswith(SUFFIXES)
                           and os.path.isfile(os.path.join(path, name)))
            if not found:
                raise ValueError(f"folder {path!r} holds no image files (allowed: IDX, .npz, "
                                 "PNG, JPEG).")
            files += found
        elif not os.path.exists(path):
            raise ValueError(f"{path!r} does not exist.")
        elif not path.lower().endswith(SUFFIXES):
            raise ValueError(f"{path!r} is not an image file: allowed are IDX files (names "
                             "ending in ubyte or ubyte.gz), .npz, .png, .jpg, .jpeg.")
        else:
            files.append(path)
    return files


def read_images(path: str, export: Export) -> np.ndarray:
    """The images of one file as ``[N, *export.input_shape]`` in the export's input dtype."""
    name = path.lower()
    if name.endswith(IDX_SUFFIXES):  # its errors are ValueErrors (DatasetError)
        images = read_idx_file(path, len(export.input_shape) + 1)
    elif name.endswith(".npz"):
        images = _read_npz(path)
    else:
        images = _decode_image(path, export.input_shape)[None]
    if images.shape == export.input_shape:
        images = images[None]
    if images.shape[1:] != export.input_shape:
        raise ValueError(f"{path!r} holds images of shape {images.shape[1:]}: the export takes "
                         f"{export.input_shape}.")
    if not np.can_cast(images.dtype, export.input_dtype, casting="safe"):
        raise ValueError(f"{path!r} holds {images.dtype} values: the export takes "
                         f"{export.input_dtype}.")
    return images.astype(export.input_dtype, copy=False)


def _read_npz(path: str) -> np.ndarray:
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single .npy array, not a zip of arrays")
        with loaded:
            arrays = {key: loaded[key] for key in loaded.files}
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path!r} is not a readable .npz file: {err}") from None
    if "x" not in arrays and len(arrays) != 1:
        raise ValueError(f"{path!r} holds the arrays {sorted(arrays)}: it must hold one array, "
                         "or one named x.")
    return arrays["x"] if "x" in arrays else next(iter(arrays.values()))


def _decode_image(path: str, input_shape: tuple[int, ...]) -> np.ndarray:
    """A PNG/JPEG as ``[H, W]`` (2-D input: grayscale only) or ``[H, W, C]``."""
    try:
        image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False).numpy()
    except tf.errors.OpError as err:
        raise ValueError(f"{path!r} is not a readable PNG/JPEG image: {err.message}") from None
    channels = input_shape[-1] if len(input_shape) == 3 else 1
    if image.shape[-1] != channels:
        raise ValueError(f"{path!r} has {image.shape[-1]} channel(s): the export takes "
                         f"{channels} (input shape {input_shape}).")
    return image[..., 0] if len(input_shape) == 2 else image


def predict(export: Export, files: Sequence[str]) -> list[dict[str, Any]]:
    """One record per image of ``files``: file, image (index in the file), class,
    class_name (when the export records them) and probability.

    Every file is read and checked before the first prediction.
    """
    batches = [read_images(path, export) for path in files]
    records = []
    for path, images in zip(files, batches):
        for start in range(0, len(images), BATCH_SIZE):
            chunk = tf.constant(images[start:start + BATCH_SIZE])
            probabilities = export.serve(chunk)["probabilities"].numpy()
            for offset, row in enumerate(probabilities):
                label = int(np.argmax(row))
                record = {"file": path, "image": start + offset, "class": label}
                if export.class_names is not None:
                    record["class_name"] = export.class_names[label]
                record["probability"] = float(row[label])
                records.append(record)
    return records


def describe(record: dict[str, Any]) -> str:
    """The printed line of one record (``file[image]`` for files of several images)."""
    where = (record["file"] if record["file"].lower().endswith(IMAGE_SUFFIXES)
             else f"{record['file']}[{record['image']}]")
    name = f" ({record['class_name']})" if "class_name" in record else ""
    return f"{where}  class {record['class']}{name}  probability {record['probability']:.4f}"


def _check_json_path(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise ValueError(f"--json={path!r} is invalid: it must be a file in an existing, "
                         "writable folder.")


def main(argv: list[str]) -> None:
    try:
        if FLAGS.export_dir is None:
            raise ValueError("--export_dir is missing: pass the exported stable model's folder "
                             "(a run's <output_dir>/export).")
        if FLAGS.json:
            _check_json_path(FLAGS.json)
        files = image_files(argv[1:])
        export = load_export(FLAGS.export_dir)
        records = predict(export, files)
    except ValueError as error:
        sys.exit(f"clser_tf: error: {error}")
    for record in records:
        print(describe(record))
    if FLAGS.json:
        with open(FLAGS.json, "w", encoding="utf-8") as f:
            json.dump(records, f, indent=1)


def _define_flags() -> None:
    """Defines the command line, only when run as a program (``clser_tf.config`` and
    ``clser_tf.bench`` define flags of their own)."""
    flags.DEFINE_string("export_dir", None, "The exported stable model (a run's "
                        "<output_dir>/export).")
    flags.DEFINE_string("json", None, "Also write the predictions to this JSON file.")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
