"""Checkpoints: exact resume after SIGKILL, clean stops on SIGTERM/SIGINT, refusal of other
settings, --restart, a diverged loss, and one clear line for every bad input."""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from clser_tf import runner
from clser_tf.checkpoint import latest_checkpoint, read_run_state
from clser_tf import checkpoint as checkpoint_module, session as session_module
from clser_tf.errors import (CheckpointError, DatasetError, FolderError, Interrupted,
                             TrainingDiverged, WriteFailed)
from helpers import write_idx_dir, random_dataset, write_cifar_dir, flagfile, make_config, ring_dataset, ROOT, TIMEOUT_S, main_command, comparable_results, checkpoint_values, assert_same_state, sigint_at_step

# The tiny seq-fmnist run: 10 classes x 40 training samples, batch 8 -> 10 steps per task
# epoch, 2 epochs, 5 tasks: 100 steps, a checkpoint every 2 steps and after every task.
RUN_FLAGS = ("--epochs=2", "--checkpoint_every_steps=2", "--tensorboard=false")


def command(data_dir, output_dir, *extra) -> list[str]:
    return main_command(str(data_dir), str(output_dir), *RUN_FLAGS, *extra)


def flags_of(data_dir, output_dir, *extra) -> list[str]:
    """The same run's flags, for an in-process ``make_config``."""
    return command(data_dir, output_dir, *extra)[3:]  # without `python -m clser_tf.main`


def start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    """Waits (bounded) for ``proc``; always leaves it dead."""
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


def newest_state(directory) -> dict | None:
    """The newest checkpoint's run state (None if none), read while a run may write."""
    for _ in range(50):
        if not os.path.exists(os.path.join(directory, "checkpoint")):
            return None
        try:
            return read_run_state(latest_checkpoint(str(directory)))
        except CheckpointError:  # a file being replaced
            pass
        time.sleep(0.002)
    return None


def position(state: dict) -> int:
    return state["global_step"] - state["task_start_step"]


def signal_when(cmd: list[str], directory, condition, signum: int) -> tuple[int, str, str]:
    """Runs ``cmd`` and sends ``signum`` once it has written a checkpoint meeting
    ``condition``; returns its exit code and output."""
    before = newest_state(directory)
    base = before["global_step"] if before else -1
    proc = start(cmd)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            state = newest_state(directory)
            if state is not None and state["global_step"] > base and condition(state):
                proc.send_signal(signum)
                break
            time.sleep(0.003)
        else:
            pytest.fail(f"the run ended before the signal point: {finish(proc)[2][-2000:]}")
    finally:
        code, out, err = finish(proc)
    return code, out, err


def resume_point(out: str) -> str:
    return re.search(r"^resuming from .*$", out, re.M).group(0)


def snapshot(*directories) -> dict[str, bytes]:
    files = {}
    for directory in directories:
        for root, _, names in os.walk(directory):
            for name in names:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    files[path] = f.read()
    return files


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_idx_dir(tmp_path_factory.mktemp("data"), random_dataset((28, 28), 400, 100, 10))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """An uninterrupted run, started in the background; call the fixture to wait for it."""
    output_dir = tmp_path_factory.mktemp("reference") / "run"
    proc = start(command(data_dir, output_dir))

    def wait():
        if proc.returncode is None:
            code, _, err = finish(proc)
            assert code == 0, err[-3000:]
        return output_dir

    yield wait
    finish(proc) if proc.poll() is None else None


# ----------------------------------------------------------------------------- resume


def test_killed_and_stopped_runs_resume_to_the_uninterrupted_result(reference, data_dir,
                                                                     tmp_path):
    output_dir = tmp_path / "run"
    cmd, checkpoints = command(data_dir, output_dir), output_dir / "checkpoints"
    points = []
    # SIGKILL in the middle of task 1 (first epoch)
    code, _, _ = signal_when(cmd, checkpoints, lambda s: s["task"] == 0 and position(s) >= 6,
                             signal.SIGKILL)
    assert code == -signal.SIGKILL
    # SIGKILL right after task 2 ended (its evaluation and checkpoint)
    code, out, _ = signal_when(cmd, checkpoints, lambda s: s["task"] >= 2, signal.SIGKILL)
    assert code == -signal.SIGKILL
    points.append(resume_point(out))
    # SIGTERM in the second epoch of task 3, then SIGINT in task 4: a checkpoint of where
    # the run stopped, the shell's exit code, and how to resume
    for signum, step in ((signal.SIGTERM, 54), (signal.SIGINT, 66)):
        code, out, err = signal_when(cmd, checkpoints, lambda s: s["global_step"] >= step,
                                     signum)
        points.append(resume_point(out))
        name = signal.Signals(signum).name
        assert code == 128 + signum, err[-3000:]
        stopped = re.search(rf"^clser_tf: stopped by {name} at global step (\d+); the "
                            rf"checkpoint is in '.*'\. Run the same command again to resume\.$",
                            err, re.M)
        assert stopped, err[-3000:]
        assert newest_state(checkpoints)["global_step"] == int(stopped.group(1))
    proc = start(cmd)
    code, out, err = finish(proc)
    assert code == 0, err[-3000:]
    points.append(resume_point(out))
    print("\n".join(points))
    assert_same_state(output_dir, reference())


def test_mnist360_stream_resumes_after_sigint_in_process(tmp_path, monkeypatch):
    data_dir = write_idx_dir(tmp_path / "data", ring_dataset(40, 10))
    argv = (flagfile("mnist-360.cfg"), f"--data_dir={data_dir}", "--verbose=0",
            "--steps_per_execution=1", "--eval_every_steps=5", "--checkpoint_every_steps=3",
            "--tensorboard=false", "--export_dir=")
    runner.run(make_config(*argv, f"--output_dir={tmp_path / 'whole'}"))

    sigint_at_step(monkeypatch, 8)
    part = make_config(*argv, f"--output_dir={tmp_path / 'part'}")
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted, match="stopped by SIGINT at global step 8") as stop:
        runner.run(part)
    assert stop.value.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is handler  # put back
    state = newest_state(tmp_path / "part" / "checkpoints")
    assert state["global_step"] == 8 and state["extra"]["curve"]["steps"] == [0, 5]
    monkeypatch.undo()
    runner.run(part)
    assert_same_state(tmp_path / "part", tmp_path / "whole")


def test_other_settings_are_refused_naming_them_and_restart_starts_over(reference, data_dir,
                                                                        tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(reference(), run_dir)
    before = snapshot(run_dir)
    with pytest.raises(CheckpointError, match=r"other settings: --lr=0\.05 \(now 0\.1\), "
                                              r"--replay_batch_size=8 \(now 4\)\. .*--restart"):
        runner.run(make_config(*flags_of(data_dir, run_dir, "--lr=0.1",
                                         "--replay_batch_size=4")))
    assert snapshot(run_dir) == before
    capsys.readouterr()
    results = runner.run(make_config(*flags_of(data_dir, run_dir, "--lr=0.1", "--restart")))
    assert "resuming" not in capsys.readouterr().out
    assert results["config"]["lr"] == 0.1
    assert newest_state(run_dir / "checkpoints")["config"]["lr"] == 0.1
    assert len(os.listdir(run_dir / "checkpoints")) == 1 + 2 * 2  # state file, 2 x 2 files


class _ExplodingRate(keras.optimizers.schedules.LearningRateSchedule):
    """0.05 for the first 5 steps, then 1e30: the loss goes non-finite a step or two later."""

    def __call__(self, step):
        return tf.where(step < 5, 0.05, 1e30)


def test_a_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
        data_dir, tmp_path, monkeypatch):
    build = runner.build_model

    def exploding(benchmark, config):
        model = build(benchmark, config)
        model.compile(optimizer=keras.optimizers.SGD(_ExplodingRate()),
                      steps_per_execution=config.steps_per_execution)
        return model

    monkeypatch.setattr(runner, "build_model", exploding)
    output_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as diverged:
        runner.run(make_config(*flags_of(data_dir, output_dir)))
    message = str(diverged.value)
    assert "\n" not in message
    step = int(re.search(r"the loss is (nan|inf) at global step (\d+) \(task 1/5, step \2 of "
                         r"it\); stopped without writing a checkpoint of it", message)[2])
    state = newest_state(output_dir / "checkpoints")
    assert 5 <= state["global_step"] < step
    assert f"the newest checkpoint, of global step {state['global_step']}, is the last" in message
    assert message.endswith(
        "A lower --lr usually avoids it (BUILD_NOTES.md: perm-mnist at lr 0.2).")
    values = checkpoint_values(output_dir / "checkpoints")
    assert all(np.isfinite(v).all() for v in values.values() if v.dtype.kind == "f")


# ----------------------------------------------------------------------------- bad input


def _idx_dir(path, data, edit=None) -> str:
    """IDX files of ``data``; ``edit(files)`` may change the bytes of each file first."""
    directory = write_idx_dir(path, data)
    if edit is not None:
        for name in os.listdir(directory):
            with open(os.path.join(directory, name), "rb") as f:
                content = edit(name, f.read())
            with open(os.path.join(directory, name), "wb") as f:
                f.write(content)
    return directory


def _bad_magic(name, content):
    return (b"\x00\x00\x09\x03" + content[4:]) if name.startswith("train-images") else content


def _truncated(name, content):
    return content[:-5] if name.startswith("t10k-images") else content


def _labels_out_of_range(tmp):
    data = random_dataset((28, 28), 400, 100, 10)
    data.y_train[7] = 12
    return _idx_dir(tmp / "labels", data)


def _missing_file(tmp):
    directory = write_idx_dir(tmp / "missing", random_dataset((28, 28), 400, 100, 10))
    os.remove(os.path.join(directory, "t10k-labels-idx1-ubyte"))
    return directory


def _bad_cifar(tmp):
    folder = write_cifar_dir(tmp / "cifar", random_dataset((32, 32, 3), 50, 10, 10), 10)
    with open(os.path.join(folder, "test_batch"), "wb") as f:
        f.write(b"not a pickle")
    return folder


def _a_file(tmp):
    path = tmp / "a_file"
    path.write_text("x")
    return path


def _checkpoint_copy(ctx, damage, every=False):
    """A copy of the previous run's checkpoints, damaged by ``damage(directory, newest)``
    (``every``: for each kept checkpoint, so that none can be resumed)."""
    directory = ctx["tmp"] / "checkpoints"
    shutil.copytree(ctx["previous"] / "checkpoints", directory)
    names = re.findall(r'^all_model_checkpoint_paths: "(.*)"',
                       (directory / "checkpoint").read_text(), re.M)
    for name in (names if every else names[-1:]):
        damage(directory, os.path.join(directory, name))
    ctx["watch"].append(directory)
    return [f"--checkpoint_dir={directory}"]


def _truncate(path, keep=0.5):
    with open(path, "r+b") as f:
        f.truncate(int(os.path.getsize(path) * keep))


def _foreign_checkpoint(directory, newest, run_state=None):
    """A checkpoint of another model in place of the run's, holding ``run_state``
    (a string; None: no run state)."""
    for path in os.listdir(directory):
        os.remove(os.path.join(directory, path))
    objects = {"v": tf.Variable(1.0)}
    if run_state is not None:
        objects["run_state"] = _Text(run_state)
    tf.train.CheckpointManager(tf.train.Checkpoint(**objects), str(directory), 1,
                               checkpoint_name="ckpt").save()


class _Text(tf.train.experimental.PythonState):
    """A string where a checkpoint keeps its run state."""

    def __init__(self, text):
        self.text = text

    def serialize(self):
        return self.text

    def deserialize(self, string_value):
        self.text = string_value


def _foreign_weights(directory, newest):
    """Our run state over a checkpoint of another model."""
    state = tf.train.load_checkpoint(newest).get_tensor("run_state/.ATTRIBUTES/py_state")
    _foreign_checkpoint(directory, newest, state.decode())


def _corrupt_run_state(directory, newest):
    """Our run state cut in half, in a checkpoint."""
    state = tf.train.load_checkpoint(newest).get_tensor("run_state/.ATTRIBUTES/py_state")
    _foreign_checkpoint(directory, newest, state.decode()[:len(state) // 2])


def _damaged(damage, every=False):
    return lambda ctx: _checkpoint_copy(ctx, damage, every)


# (id, extra flags (or a function of the context giving them), error, message). Data cases
# add --restart: the previous run's checkpoints are not read, and must survive anyway.
BAD_INPUTS = [
    ("buffer_size", ["--buffer_size=0"], ValueError, r"--buffer_size=0 is invalid: it must be >= "),
    ("batch_size", ["--batch_size=-1"], ValueError, r"--batch_size=-1 is invalid: it must be >= 1"),
    ("replay_batch_size", ["--replay_batch_size=0"], ValueError, r"--replay_batch_size=0 is inv"),
    ("epochs", ["--epochs=0"], ValueError, r"--epochs=0 is invalid: it must be >= 1"),
    ("eval_batch_size", ["--eval_batch_size=0"], ValueError, r"--eval_batch_size=0 is invalid"),
    ("steps_per_execution", ["--steps_per_execution=0"], ValueError,
     r"--steps_per_execution=0 is invalid: it must be >= 1"),
    ("resnet_base_filters", ["--resnet_base_filters=0"], ValueError, r"--resnet_base_filters=0"),
    ("keep_checkpoints", ["--keep_checkpoints=0"], ValueError, r"--keep_checkpoints=0 is invalid"),
    ("collective_timeout_s", ["--collective_timeout_s=0"], ValueError,
     r"--collective_timeout_s=0 is invalid: it must be >= 1"),
    ("checkpoint_every_negative", ["--checkpoint_every_steps=-2"], ValueError,
     r"--checkpoint_every_steps=-2 is invalid: it must be 0 .* or a multiple of"),
    ("checkpoint_every_not_multiple", ["--steps_per_execution=2", "--checkpoint_every_steps=3"],
     ValueError, r"--checkpoint_every_steps=3 is invalid: .*--steps_per_execution=2"),
    ("stable_alpha", ["--stable_alpha=1"], ValueError, r"--stable_alpha=1.0 is invalid: .*1\)"),
    ("plastic_alpha", ["--plastic_alpha=-0.1"], ValueError, r"--plastic_alpha=-0.1 is invalid"),
    ("stable_update_freq", ["--stable_update_freq=1.5"], ValueError,
     r"--stable_update_freq=1.5 is invalid: it must be in \[0, 1\]"),
    ("plastic_update_freq", ["--plastic_update_freq=-0.1"], ValueError,
     r"--plastic_update_freq=-0.1 is invalid: it must be in \[0, 1\]"),
    ("reg_weight", ["--reg_weight=-1"], ValueError, r"--reg_weight=-1.0 is invalid: .*>= 0"),
    ("lr_zero", ["--lr=0"], ValueError, r"--lr=0.0 is invalid: it must be a finite number > 0"),
    ("lr_negative", ["--lr=-0.1"], ValueError, r"--lr=-0.1 is invalid"),
    ("lr_nan", ["--lr=nan"], ValueError, r"--lr=nan is invalid"),
    ("seed", ["--seed=-1"], ValueError, r"--seed=-1 is invalid: it must be in \[0, 2\*\*31\)"),
    ("benchmark", ["--benchmark=seq-kmnist"], ValueError,
     r"--benchmark='seq-kmnist' is invalid: it must be one of seq-fmnist, .*tfds:NAME"),
    ("strategy", ["--strategy=tpu"], flags.Error, r"flag --strategy=tpu: value should be one of"),
    ("eval_models", ["--eval_models=stable,fast"], ValueError, r"--eval_models='stable,fast'"),
    ("data_dir_missing", lambda ctx: [f"--data_dir={ctx['tmp'] / 'nowhere'}"], ValueError,
     r"--data_dir='.*nowhere' is invalid: it must be an existing directory"),
    ("output_dir_file", lambda ctx: [f"--output_dir={_a_file(ctx['tmp'])}"], ValueError,
     r"--output_dir='.*a_file' is invalid: it is a file, not a directory"),
    ("output_dir_under_file", lambda ctx: [f"--output_dir={_a_file(ctx['tmp']) / 'run'}"],
     ValueError, r"--output_dir='.*a_file/run' is invalid: '.*a_file' is a file"),
    ("checkpoint_dir_file", lambda ctx: [f"--checkpoint_dir={_a_file(ctx['tmp'])}"], ValueError,
     r"--checkpoint_dir='.*a_file' is invalid: it is a file, not a directory"),
    ("idx_bad_magic", lambda ctx: ["--restart", "--data_dir=" + _idx_dir(
        ctx["tmp"] / "magic", random_dataset((28, 28), 400, 100, 10), _bad_magic)],
     DatasetError, r"IDX file '.*train-images-idx3-ubyte' has magic number 0x00000903"),
    ("idx_truncated", lambda ctx: ["--restart", "--data_dir=" + _idx_dir(
        ctx["tmp"] / "short", random_dataset((28, 28), 400, 100, 10), _truncated)],
     DatasetError, r"IDX file '.*t10k-images-idx3-ubyte' is truncated or malformed"),
    ("idx_missing_file", lambda ctx: ["--restart", f"--data_dir={_missing_file(ctx['tmp'])}"],
     DatasetError, r"IDX file not found: looked at \['.*t10k-labels-idx1-ubyte'"),
    ("labels_out_of_range",
     lambda ctx: ["--restart", f"--data_dir={_labels_out_of_range(ctx['tmp'])}"],
     DatasetError, r"seq-fmnist: train label 12 is outside \[0, 10\)"),
    ("cifar_malformed", lambda ctx: ["--restart", "--benchmark=seq-cifar10", "--backbone=mlp",
                                     f"--data_dir={_bad_cifar(ctx['tmp'])}"],
     DatasetError, r"'.*test_batch' is not a CIFAR batch"),
    ("folder_corrupt_image", lambda ctx: ["--restart", "--benchmark=folder",
                                          f"--data_dir={_corrupt_folder(ctx['tmp'])}"],
     DatasetError, r"cannot read image '.*train/b/2\.jpg'"),
    ("arrays_without_y", lambda ctx: ["--restart", "--benchmark=arrays",
                                      f"--data_dir={_npz_without_y(ctx['tmp'])}"],
     DatasetError, r"'.*train\.npz' has no array y"),
    ("backbone_unimportable", ["--restart", "--backbone=missing_module:f"], ValueError,
     r"module 'missing_module' cannot be imported"),
    ("other_settings", ["--lr=0.2"], CheckpointError,
     r"the checkpoint in '.*' is of a run with other settings: --lr=0.05 \(now 0.2\)"),
    ("checkpoint_data_truncated", _damaged(lambda d, newest: _truncate(
        newest + ".data-00000-of-00001"), every=True), CheckpointError,
     r"the checkpoint '.*ckpt-\d+' cannot be restored into this model \(IndexError"),
    ("checkpoint_index_truncated", _damaged(lambda d, newest: _truncate(newest + ".index"),
                                            every=True),
     CheckpointError, r"the checkpoint '.*ckpt-\d+' cannot be restored"),
    ("run_state_corrupt", _damaged(_corrupt_run_state),
     CheckpointError, r"the run state of '.*ckpt-\d+' is unreadable or corrupt"),
    ("run_state_foreign", _damaged(lambda d, newest: _foreign_checkpoint(d, newest, "[1, 2]")),
     CheckpointError, r"the run state of '.*ckpt-\d+' is not a clser_tf run state"),
    ("state_file_corrupt", _damaged(lambda d, newest: (d / "checkpoint").write_text("{{")),
     CheckpointError, r"the checkpoint state file '.*checkpoint' is corrupt"),
    ("state_file_names_nothing", _damaged(lambda d, newest: [
        os.remove(os.path.join(d, name)) for name in os.listdir(d) if name != "checkpoint"]),
     CheckpointError, r"the checkpoint state file '.*checkpoint' is corrupt or names no "),
    ("foreign_checkpoint", _damaged(_foreign_checkpoint), CheckpointError,
     r"'.*ckpt-1' is not a clser_tf checkpoint: it holds no run state"),
    ("foreign_weights", _damaged(_foreign_weights), CheckpointError,
     r"the checkpoint '.*ckpt-1' cannot be restored into this model \(AssertionError"),
]
if os.geteuid() != 0:  # root reads and writes anything
    BAD_INPUTS += [
        ("data_dir_unreadable", lambda ctx: [f"--data_dir={_unreadable(ctx['tmp'])}"],
         ValueError, r"--data_dir='.*' is invalid: it must be a readable directory"),
        ("output_dir_not_writable", lambda ctx: [f"--output_dir={_read_only(ctx['tmp'])}/run"],
         ValueError, r"--output_dir='.*/run' is invalid: '.*' is not writable"),
    ]


def _corrupt_folder(tmp):
    """An image folder (classes a, b) whose train/b/2.jpg is not an image."""
    for name in ("train/a/1.png", "train/b/1.png", "test/a/1.png", "test/b/1.png"):
        path = tmp / "folder" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tf.io.encode_png(np.zeros((8, 8, 1), np.uint8)).numpy())
    (tmp / "folder" / "train" / "b" / "2.jpg").write_bytes(b"not a jpeg at all")
    return tmp / "folder"


def _npz_without_y(tmp):
    directory = tmp / "arrays"
    directory.mkdir()
    for split in ("train", "test"):
        np.savez(directory / f"{split}.npz", x=np.zeros((4, 8, 8), np.uint8))
    return directory


def _unreadable(tmp):
    directory = write_idx_dir(tmp / "locked", random_dataset((28, 28), 40, 10, 10))
    os.chmod(directory, 0)
    return directory


def _read_only(tmp):
    directory = tmp / "read_only"
    directory.mkdir()
    directory.chmod(0o500)
    return directory


def _extra_flags(extra, ctx) -> list[str]:
    return extra(ctx) if callable(extra) else list(extra)


def test_every_bad_input_is_one_line_and_leaves_previous_files_alone(reference, data_dir,
                                                                      tmp_path):
    previous = reference()
    before = snapshot(previous)
    for case, extra, error, message in BAD_INPUTS:
        ctx = {"tmp": tmp_path / case, "previous": previous, "watch": []}
        ctx["tmp"].mkdir()
        argv = flags_of(data_dir, previous, *_extra_flags(extra, ctx))
        watched = snapshot(*ctx["watch"])
        with pytest.raises(error, match=message) as raised:
            runner.run(make_config(*argv))
        assert "\n" not in str(raised.value), case
        assert snapshot(previous) == before, case
        assert snapshot(*ctx["watch"]) == watched, case


def _own_output_dir(extra):
    """``extra`` with an output folder of the case's own: the cases run at once, and only
    one of them may hold the previous run's folder (a second is refused as in use)."""
    return lambda ctx: _extra_flags(extra, ctx) + [f"--output_dir={ctx['tmp'] / 'run'}"]


SUBPROCESS_CASES = [  # exit code 1 and one `clser_tf: error:` line, from the command line
    ("lr_zero", ["--lr=0"], r"--lr=0.0 is invalid"),
    ("benchmark", ["--benchmark=seq-kmnist"], r"--benchmark='seq-kmnist' is invalid: it must be"),
    ("checkpoint_data_truncated", _own_output_dir(_damaged(lambda d, newest: _truncate(
        newest + ".data-00000-of-00001"), every=True)), r"cannot be restored into this model"),
    ("labels_out_of_range",
     lambda ctx: ["--restart", f"--data_dir={_labels_out_of_range(ctx['tmp'])}"],
     r"train label 12 is outside \[0, 10\)"),
]


def test_bad_inputs_exit_1_with_one_line_from_the_command_line(reference, data_dir, tmp_path):
    previous = reference()
    before = snapshot(previous)
    procs, watched = [], {}
    try:
        for case, extra, message in SUBPROCESS_CASES:
            ctx = {"tmp": tmp_path / case, "previous": previous, "watch": []}
            ctx["tmp"].mkdir()
            cmd = command(data_dir, previous, *_extra_flags(extra, ctx))
            watched[case] = (ctx["watch"], snapshot(*ctx["watch"]))
            procs.append((case, message, start(cmd)))
        for case, message, proc in procs:
            code, out, err = finish(proc)
            ours = [line for line in err.splitlines() if line.startswith("clser_tf")]
            assert code == 1, (case, err[-3000:])
            assert len(ours) == 1 and ours[0].startswith("clser_tf: error: "), (case, err)
            assert re.search(message, ours[0]), (case, ours)
            assert "Traceback" not in err, (case, err)
            assert snapshot(*watched[case][0]) == watched[case][1], case
    finally:
        for _, _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert snapshot(previous) == before


# ----------------------------------------------------------------------------- faults


def _flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x10]))


@pytest.mark.parametrize("damage", ["data_truncated", "weights_bit_flipped",
                                    "run_state_bit_flipped"])
def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(damage, reference,
                                                                    data_dir, tmp_path):
    output_dir, checkpoints = tmp_path / "run", tmp_path / "run" / "checkpoints"
    cmd = command(data_dir, output_dir)
    code, _, _ = signal_when(cmd, checkpoints, lambda s: s["global_step"] >= 30,
                             signal.SIGKILL)
    assert code == -signal.SIGKILL
    names = re.findall(r'^all_model_checkpoint_paths: "(.*)"',
                       (checkpoints / "checkpoint").read_text(), re.M)
    assert len(names) >= 2  # 3 if the kill came between TF's two state-file writes
    newest, previous = (str(checkpoints / name) for name in (names[-1], names[-2]))
    data = newest + ".data-00000-of-00001"
    if damage == "data_truncated":
        _truncate(data)
    elif damage == "weights_bit_flipped":
        _flip_byte(data, os.path.getsize(data) // 2)
    else:  # one byte of the run state's JSON: its checksum no longer matches
        _flip_byte(data, open(data, "rb").read().index(b'"clser_tf run state"') + 3)
    code, out, err = finish(start(cmd))
    assert code == 0, err[-3000:]
    warnings = [line for line in err.splitlines() if line.startswith("clser_tf: warning:")]
    assert len(warnings) == 1 and os.path.basename(newest) in warnings[0], err[-3000:]
    assert "previous kept checkpoint" in warnings[0]
    assert f"resuming from {previous}" in out
    assert_same_state(output_dir, reference())


def test_a_folder_in_use_is_refused_naming_the_process_and_freed_by_sigkill(data_dir,
                                                                            tmp_path):
    output_dir = tmp_path / "run"
    cmd = command(data_dir, output_dir)
    first = start(cmd)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while newest_state(output_dir / "checkpoints") is None:
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.01)
        first.send_signal(signal.SIGSTOP)  # still holding its folders, as a busy run does
        before = snapshot(output_dir)  # nothing of the running run is touched below
        code, _, err = finish(start(cmd))
        ours = [line for line in err.splitlines() if line.startswith("clser_tf")]
        assert code == 1 and len(ours) == 1, err[-3000:]
        assert re.fullmatch(rf"clser_tf: error: --output_dir='{re.escape(str(output_dir))}' "
                            rf"is in use by process {first.pid} \(a run writing to it\): .*",
                            ours[0]), ours
        assert snapshot(output_dir) == before
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    code, out, err = finish(start(cmd))  # at once: the kernel freed the lock
    assert code == 0, err[-3000:]
    assert "resuming from" in out


@pytest.mark.parametrize("folder", ["output_dir", "checkpoint_dir", "export_dir"])
def test_a_folder_that_cannot_be_created_is_one_line_before_any_work(folder, data_dir,
                                                                     tmp_path):
    argv = flags_of(data_dir, tmp_path / "run", f"--{folder}=/proc/clser_tf_test/{folder}")
    with pytest.raises(FolderError, match=rf"--{folder}='/proc/clser_tf_test/{folder}' is "
                                          r"invalid: it cannot be created \("):
        runner.run(make_config(*argv))
    assert not (tmp_path / "run" / "results.json").exists()


def test_a_failing_results_write_stops_with_one_line_and_the_rerun_resumes(
        reference, data_dir, tmp_path, monkeypatch):
    output_dir = tmp_path / "run"
    replace, writes = os.replace, []

    def no_space_on_third_results(src, dst):
        if str(dst).endswith("results.json"):
            writes.append(dst)
            if len(writes) == 3:  # results.json after task 3
                raise OSError(28, "No space left on device")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", no_space_on_third_results)
    with pytest.raises(WriteFailed) as failed:
        runner.run(make_config(*flags_of(data_dir, output_dir)))
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith(f"could not write '{output_dir / 'results.json'}': No space "
                              "left on device. The previous checkpoint and results.json are "
                              "kept")
    kept = json.loads((output_dir / "results.json").read_text())
    assert len(kept["models"]["stable"]["matrix"]["class_il"]) == 2  # after task 2, valid
    monkeypatch.undo()
    runner.run(make_config(*flags_of(data_dir, output_dir)))
    assert_same_state(output_dir, reference())


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs (root only), enlarged by calling ``grow()``; skipped where it cannot
    be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
            capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a size-limited tmpfs")
    grow = lambda: subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
    yield mount, grow
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_run_with_one_line_and_the_rerun_resumes(reference, data_dir,
                                                                       small_disk):
    disk, grow = small_disk
    cmd = command(data_dir, disk / "run")
    code, _, err = finish(start(cmd))
    ours = [line for line in err.splitlines() if line.startswith("clser_tf")]
    assert code == 1 and len(ours) == 1, err[-3000:]
    assert re.search(rf"clser_tf: error: could not write '{disk / 'run' / 'checkpoints'}': No "
                     r"space left on device\. The "
                     r"previous checkpoint and results\.json are kept", ours[0]), ours
    state = newest_state(disk / "run" / "checkpoints")
    assert state is not None and state["global_step"] > 0  # the previous one is readable
    grow()
    code, out, err = finish(start(cmd))
    assert code == 0, err[-3000:]
    assert "resuming from" in out
    assert_same_state(disk / "run", reference())


def _logged_steps(log_dir) -> list[tuple[str, int]]:
    """Every (tag, step) of the scalar summaries in ``log_dir``'s event files."""
    logged = []
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            logged += [(value.tag, event.step) for value in event.summary.value]
    return logged


def test_tensorboard_holds_each_step_once_after_a_kill_and_resume(data_dir, tmp_path):
    output_dir, checkpoints = tmp_path / "run", tmp_path / "run" / "checkpoints"
    cmd = [*command(data_dir, output_dir), "--tensorboard=true", "--log_every_steps=1",
           "--checkpoint_every_steps=20"]
    train_logs = output_dir / "tensorboard" / "train"

    def past_the_checkpoint(state):  # the killed run has logged steps the resume redoes
        steps = [step for tag, step in _logged_steps(train_logs) if tag == "batch_loss"]
        return state["global_step"] >= 20 and max(steps, default=0) >= state["global_step"] + 5

    code, _, _ = signal_when(cmd, checkpoints, past_the_checkpoint, signal.SIGKILL)
    assert code == -signal.SIGKILL
    resumed_from = newest_state(checkpoints)["global_step"]
    code, out, err = finish(start(cmd))
    assert code == 0, err[-3000:]
    assert f"(global step {resumed_from})" in out
    logged = _logged_steps(train_logs)
    losses = sorted(step for tag, step in logged if tag == "batch_loss")
    assert losses == list(range(1, 101))  # every step, each once
    assert len(logged) == len(set(logged))
    evaluated = [(tag, step) for tag, step in _logged_steps(output_dir / "tensorboard" / "eval")]
    assert len(evaluated) == len(set(evaluated))
