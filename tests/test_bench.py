"""Tests for clser_tf.bench: what it reports (never how fast: no timed assertions)."""

import subprocess
import sys

import keras
import pytest

from clser_tf import bench


@pytest.fixture(autouse=True)
def float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("fused", [True, False])
def test_measure_reports_each_figure_for_the_settings_asked(fused):
    result = bench.measure("mlp", steps=4, repeats=2, warmup_steps=2, steps_per_execution=2,
                           fused_forward=fused, jit_compile=False,
                           mixed_precision="mixed_bfloat16", eval_images=1000)
    assert (result["recipe"], result["batch_size"], result["replay_batch_size"]) == (
        "mlp", 10, 128)
    assert (result["fused_forward"], result["mixed_precision"], result["replicas"]) == (
        fused, "mixed_bfloat16", 1)
    assert len(result["ms_per_step_all_repeats"]) == 2
    assert result["ms_per_step"] > 0 and result["eval_images_per_s"] > 0
    assert result["steps_per_s"] == pytest.approx(1000.0 / result["ms_per_step"])
    assert result["samples_per_s"] == pytest.approx(10 * result["steps_per_s"])
    assert result["peak_rss_mib"] > 100


def test_synthetic_data_has_the_recipe_shapes_and_no_autotune_thread():
    recipe = bench.RECIPES["resnet18"]
    data = bench.synthetic(recipe, num_batches=3, batch_size=32, seed=0)
    batches = list(data)
    assert len(batches) == 3
    assert batches[0][0].shape == (32, 32, 32, 3) and batches[0][0].dtype == "uint8"
    assert data.options().autotune.enabled is False


def test_bad_flag_stops_with_a_message_naming_it():
    run = subprocess.run([sys.executable, "-m", "clser_tf.bench", "--steps=0"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "--steps=0 is invalid" in run.stderr
