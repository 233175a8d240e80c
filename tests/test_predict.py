"""clser_tf.predict: predictions of an export from IDX, npz, PNG and JPEG files, and its errors."""

import gzip
import json
import os
import struct
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from clser_tf import backbones, predict
from clser_tf.model import CLSER

NAMES = ["zero", "one", "two"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Doubling(keras.layers.Layer):
    """A user's layer that no clser_tf code knows: loading the export must not need it."""

    def call(self, x):
        return 2.0 * x


def exported(path, class_names=None) -> CLSER:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6), dtype="uint8")
    x = Doubling()(backbones.mlp((6, 6), 3, hidden_units=8)(inputs))
    model = CLSER(keras.Model(inputs, x), buffer_size=8, replay_batch_size=4, seed=0)
    model.export_stable(str(path), class_names=class_names)
    return model


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 6, 6), dtype=np.uint8)


def write_png(path, image):
    tf.io.write_file(str(path), tf.io.encode_png(image[..., None] if image.ndim == 2 else image))


def write_idx(path, array, compress=False):
    header = struct.pack(f">I{array.ndim}I", 0x0800 + array.ndim, *array.shape)
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture
def files(tmp_path):
    """A folder of two PNGs and a JPEG, an npz of 3 images, a gzipped IDX file of 4."""
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, image in enumerate(images(2, seed=1)):
        write_png(folder / f"{i}.png", image)
    tf.io.write_file(str(folder / "c.jpg"), tf.io.encode_jpeg(images(1, seed=2)[0][..., None]))
    (folder / "notes.txt").write_text("not an image")  # skipped inside a folder
    np.savez(tmp_path / "three.npz", x=images(3, seed=3), y=np.zeros(3))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images(4, seed=4), compress=True)
    return folder, tmp_path / "three.npz", tmp_path / "t10k-images-idx3-ubyte.gz"


def test_predicts_every_image_of_every_file_kind_with_class_names(tmp_path, files):
    model = exported(tmp_path / "export", class_names=NAMES)
    folder, npz, idx = files
    export = predict.load_export(str(tmp_path / "export"))
    assert (export.input_shape, export.input_dtype, export.class_names) == (
        (6, 6), np.uint8, NAMES)
    paths = predict.image_files([str(folder), str(npz), str(idx)])
    assert [os.path.basename(p) for p in paths] == [
        "0.png", "1.png", "c.jpg", "three.npz", "t10k-images-idx3-ubyte.gz"]
    records = predict.predict(export, paths)
    jpeg = tf.io.decode_jpeg(tf.io.read_file(str(folder / "c.jpg"))).numpy()[..., 0]
    x = np.concatenate([images(2, seed=1), jpeg[None], images(3, seed=3), images(4, seed=4)])
    probabilities = tf.nn.softmax(model.predict(x, verbose=0)).numpy()
    assert [(r["file"], r["image"]) for r in records] == [
        *[(p, 0) for p in paths[:3]], *[(paths[3], i) for i in range(3)],
        *[(paths[4], i) for i in range(4)]]
    assert [r["class"] for r in records] == probabilities.argmax(1).tolist()
    assert [r["class_name"] for r in records] == [NAMES[c] for c in probabilities.argmax(1)]
    np.testing.assert_allclose([r["probability"] for r in records], probabilities.max(1),
                               atol=1e-6)
    assert predict.describe(records[0]) == (
        f"{paths[0]}  class {records[0]['class']} ({records[0]['class_name']})  "
        f"probability {records[0]['probability']:.4f}")
    assert predict.describe(records[3]).startswith(f"{paths[3]}[0]  class ")


def test_without_recorded_names_prints_the_index_only(tmp_path, files):
    exported(tmp_path / "export")
    export = predict.load_export(str(tmp_path / "export"))
    assert export.class_names is None
    (record,) = predict.predict(export, [str(files[0] / "0.png")])
    assert set(record) == {"file", "image", "class", "probability"}
    assert predict.describe(record) == (f"{files[0] / '0.png'}  class {record['class']}  "
                                        f"probability {record['probability']:.4f}")


def bad_inputs(tmp_path):
    """(file to predict on, message) pairs; each file is bad in one way."""
    write_png(tmp_path / "rgb.png", np.zeros((6, 6, 3), np.uint8))
    write_png(tmp_path / "big.png", np.zeros((7, 6), np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    write_idx(tmp_path / "wide-ubyte", np.zeros((2, 6, 7), np.uint8))
    (tmp_path / "short-ubyte").write_bytes(b"\x00\x00\x08\x03\x00")
    np.savez(tmp_path / "two.npz", a=images(1), b=images(1))
    np.savez(tmp_path / "floats.npz", x=np.zeros((1, 6, 6)))
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    return [
        ("rgb.png", r"rgb.png' has 3 channel\(s\): the export takes 1 \(input shape \(6, 6\)\)"),
        ("big.png", r"big.png' holds images of shape \(7, 6\): the export takes \(6, 6\)"),
        ("broken.png", r"broken.png' is not a readable PNG/JPEG image"),
        ("wide-ubyte", r"wide-ubyte' holds images of shape \(6, 7\)"),
        ("short-ubyte", r"IDX file .*short-ubyte' is truncated"),
        ("two.npz", r"two.npz' holds the arrays \['a', 'b'\]: it must hold one array, or one "
                    r"named x"),
        ("floats.npz", r"floats.npz' holds float64 values: the export takes uint8"),
        ("empty", r"folder .*empty' holds no image files"),
        ("notes.txt", r"notes.txt' is not an image file: allowed are IDX files"),
        ("missing.png", r"missing.png' does not exist"),
    ]


def test_each_bad_input_is_one_clear_error(tmp_path):
    exported(tmp_path / "export")
    export = predict.load_export(str(tmp_path / "export"))
    good = tmp_path / "good.png"
    write_png(good, images(1)[0])
    for name, message in bad_inputs(tmp_path):
        with pytest.raises(ValueError, match=message):
            predict.predict(export, predict.image_files([str(good), str(tmp_path / name)]))
    with pytest.raises(ValueError, match=r"--export_dir='.*nowhere' is invalid: there is no "
                                         r"SavedModel there"):
        predict.load_export(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="no images given"):
        predict.image_files([])


def test_an_export_without_the_named_signature_is_refused(tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda x: x, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "other"), signatures=module.f)
    with pytest.raises(ValueError, match="'serving_default' signature must return logits and "
                                         "probabilities"):
        predict.load_export(str(tmp_path / "other"))


def run_command(*args):
    return subprocess.run([sys.executable, "-m", "clser_tf.predict", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ROOT})


def test_command_prints_one_line_per_image_and_writes_json(tmp_path, files):
    exported(tmp_path / "export", class_names=NAMES)  # its Doubling layer is unknown there
    folder, npz, _ = files
    out = tmp_path / "predictions.json"
    done = run_command(f"--export_dir={tmp_path / 'export'}", str(folder), str(npz),
                       f"--json={out}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    records = json.loads(out.read_text())
    assert len(lines) == len(records) == 6
    assert lines == [predict.describe(record) for record in records]
    assert all(record["class_name"] in NAMES for record in records)


def test_command_error_is_one_line_and_writes_nothing(tmp_path):
    exported(tmp_path / "export")
    write_png(tmp_path / "rgb.png", np.zeros((6, 6, 3), np.uint8))
    out = tmp_path / "predictions.json"
    done = run_command(f"--export_dir={tmp_path / 'export'}", str(tmp_path / "rgb.png"),
                       f"--json={out}")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"clser_tf: error: '{tmp_path / 'rgb.png'}' has 3 channel(s): the export takes 1 "
        "(input shape (6, 6)).")
    assert done.stdout == "" and not out.exists()
