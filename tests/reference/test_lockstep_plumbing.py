"""The lock-step check's own plumbing, without torch (these run in CI): the draws our side
records, replayed by a NumPy version of the reference's ``observe()``, reproduce our
weights, teacher choices and buffer; a wrong draw is caught; the weight names and layouts
are the reference's."""

import re

import numpy as np
import pytest
import tensorflow as tf

import lockstep
import lockstep_files
from clser_tf import backbones
from clser_tf.augment import crop_flip_draws, random_crop_flip
from lockstep_ours import RECIPES, torch_state
from numpy_side import NumpySide


def _replay(folder, tamper=lambda step, files: None, resync=False):
    """Runs tiny-mlp through our side and the NumPy reference; ``tamper(step, files)`` may
    change a step's recorded draws before the reference reads them; with ``resync`` the
    reference takes our state after every step."""
    side = None

    def reference(step):
        nonlocal side
        side = side or NumpySide(str(folder))
        path = lockstep_files.step_path(str(folder), "step", step)
        files = lockstep_files.read(path)
        if tamper(step, files):
            lockstep_files.write(path, files)
        return lockstep_files.check_step(str(folder), step, side.run_step,
                                         side.load if resync else None)

    return lockstep.run("tiny-mlp", str(folder), reference)


def test_recorded_draws_replayed_in_numpy_reproduce_our_step(tmp_path):
    reports = _replay(tmp_path)
    summary = lockstep.summary(reports)
    assert summary["steps"] == RECIPES["tiny-mlp"].steps
    assert summary["teacher_mismatches"] == 0 and summary["teacher_choices"] > 50
    assert summary["steps_buffer_differs"] == 0
    assert max(summary["all_steps_max_rel"].values()) < 1e-5, summary
    assert max(summary["max_loss_abs"].values()) < 1e-5, summary
    # The run covers every kind of draw: reservoir replacement and discards, both
    # outcomes of the stable update, the task switch.
    steps = [lockstep_files.read(lockstep_files.step_path(str(tmp_path), "step", k))
             for k in range(summary["steps"])]
    reservoir = np.concatenate([s["reservoir_draws"] for s in steps])
    capacity = RECIPES["tiny-mlp"].buffer_size
    assert (reservoir < capacity).any() and (reservoir == capacity).any()
    stable_updates = [float(s["stable_draw"]) < 0.5 for s in steps]
    assert any(stable_updates) and not all(stable_updates)
    assert {int(c) for s in steps for c in s["y"]} == {0, 1, 2, 3}


@pytest.mark.parametrize("draw, effect", [("replay_indices", "teacher_or_weights"),
                                          ("reservoir_draws", "buffer"),
                                          ("stable_draw", "stable")])
def test_a_wrong_draw_is_caught(tmp_path, draw, effect):
    def tamper(step, files):
        if step != 12:
            return False
        if draw == "replay_indices":
            files[draw] = files[draw][::-1].copy()
            files[draw][0] = (files[draw][0] + 1) % RECIPES["tiny-mlp"].buffer_size
        elif draw == "reservoir_draws":
            files[draw] = np.zeros_like(files[draw])  # every sample to slot 0
        else:
            return _flip_stable_update_at_step_12(step, files)
        return True

    report = _replay(tmp_path, tamper)[12]
    if effect == "buffer":
        assert not report["buffer_equal"]
    elif effect == "stable":
        assert report["max_rel"]["stable"] > 1e-4 and report["buffer_equal"]
    else:
        assert report["max_rel"]["working"] > 1e-4


def _flip_stable_update_at_step_12(step, files):
    if step == 12:
        files["stable_draw"] = np.float32(0.0 if files["stable_draw"] >= 0.5 else 0.99)
    return step == 12


def test_a_resync_starts_the_next_step_from_our_state(tmp_path):
    reports = _replay(tmp_path, _flip_stable_update_at_step_12, resync=True)
    assert reports[12]["max_rel"]["stable"] > 1e-4
    assert max(reports[13]["max_rel"].values()) < 1e-5  # the wrong step is not carried on
    free = _replay(tmp_path / "free", _flip_stable_update_at_step_12)
    assert free[13]["max_rel"]["stable"] > 1e-4  # without the resync it is


def _reference_resnet18_names() -> list[str]:
    """The state_dict names backbone/ResNet18.py gives (first name of each tensor)."""
    bn = ("weight", "bias", "running_mean", "running_var")
    names = ["conv1.weight", *(f"bn1.{s}" for s in bn)]
    for stage in range(1, 5):
        for block in range(2):
            prefix = f"layer{stage}.{block}"
            names += [f"{prefix}.conv1.weight", *(f"{prefix}.bn1.{s}" for s in bn),
                      f"{prefix}.conv2.weight", *(f"{prefix}.bn2.{s}" for s in bn)]
            if stage > 1 and block == 0:
                names += [f"{prefix}.shortcut.0.weight", *(f"{prefix}.shortcut.1.{s}" for s in bn)]
    return names + ["linear.weight", "linear.bias"]


def test_resnet18_weights_take_the_reference_names_and_layouts():
    net = backbones.resnet18((16, 16, 3), 7, base_filters=4)
    state = torch_state(net, resnet=True)
    assert sorted(state) == sorted(_reference_resnet18_names())
    assert state["conv1.weight"].shape == (4, 3, 3, 3)  # OIHW
    assert state["layer2.0.conv1.weight"].shape == (8, 4, 3, 3)
    assert state["layer2.0.shortcut.0.weight"].shape == (8, 4, 1, 1)
    assert state["linear.weight"].shape == (7, 32)  # [out, in]
    kernel = net.get_layer("stage2_block1_conv1").kernel.numpy()
    np.testing.assert_array_equal(state["layer2.0.conv1.weight"][5, 3], kernel[:, :, 3, 5])


def test_mlp_weights_take_the_reference_names_and_layouts():
    net = backbones.mlp((6, 6), 4)
    state = torch_state(net, resnet=False)
    assert {k: v.shape for k, v in state.items()} == {
        "fc1.weight": (100, 36), "fc1.bias": (100,), "fc2.weight": (100, 100),
        "fc2.bias": (100,), "classifier.weight": (4, 100), "classifier.bias": (4,)}


def test_crop_flip_draws_are_the_ones_the_augmentation_applies():
    images = tf.reshape(tf.range(5 * 8 * 8, dtype=tf.int32), [5, 8, 8, 1])
    seed = tf.constant([3, 9], tf.int64)
    out = random_crop_flip(images, seed, padding=2).numpy()
    offsets, flips = (t.numpy() for t in crop_flip_draws(5, seed, padding=2))
    padded = np.pad(images.numpy(), [(0, 0), (2, 2), (2, 2), (0, 0)])
    for i, ((row, col), flip) in enumerate(zip(offsets, flips)):
        expected = padded[i, row:row + 8, col:col + 8]
        np.testing.assert_array_equal(out[i], expected[:, ::-1] if flip < 0.5 else expected)
    assert (flips < 0.5).any() and (flips >= 0.5).any()


def test_relative_difference_is_per_tensor_scale():
    ref = np.array([1e-9, 2.0])
    assert lockstep_files.relative_difference(ref + [1e-6, 0.0], ref) == pytest.approx(5e-7)
    assert lockstep_files.relative_difference(np.zeros(3), np.zeros(3)) == 0.0
    with pytest.raises(ValueError, match=re.escape("shapes differ")):
        lockstep_files.relative_difference(np.zeros(2), np.zeros(3))
