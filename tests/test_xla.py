"""The XLA step (``jit_compile``): equal to the step without XLA, switched on at the first
step whose buffer holds a full replay batch, and again after a restore or a resumed run."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from clser_tf import runner
from clser_tf.augment import RandomCropFlip
from clser_tf.draws import uniform
from clser_tf.errors import Interrupted
from clser_tf.model import CLSER
from clser_tf.xla import resolve_jit_compile
from helpers import (NUM_CLASSES, assert_same_state, flagfile, make_config, mirrored,
                     random_dataset, sigint_at_step, tiny_bn_cnn, tiny_mlp, write_idx_dir)

BATCH, REPLAY = 4, 6  # the replay batch is full from the third step (8 samples seen)


def _model(kind: str, jit_compile, steps_per_execution: int = 1) -> CLSER:
    augment = {} if kind == "mlp" else dict(replay_augment=RandomCropFlip(padding=2),
                                           augment_current_batch=True)
    model = CLSER(tiny_mlp() if kind == "mlp" else tiny_bn_cnn(synchronized=False),
                  buffer_size=12, replay_batch_size=REPLAY, reg_weight=0.5, stable_alpha=0.9,
                  stable_update_freq=0.6, plastic_alpha=0.8, plastic_update_freq=0.9, seed=7,
                  **augment)
    model.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=jit_compile,
                  steps_per_execution=steps_per_execution)
    model.optimizer.build(model.trainable_variables)
    return model


def _task(kind: str, task: int, steps: int = 6, extra: int = 0
          ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(task)
    n = BATCH * steps + extra
    x = (rng.normal(size=(n, 6)).astype(np.float32) if kind == "mlp"
         else rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8))
    return x, rng.choice([2 * task, 2 * task + 1], n) % NUM_CLASSES


class _StepLog(keras.callbacks.Callback):
    """Per call: the global step after it, whether it ran the static (XLA) function, and
    the running stable-teacher fraction (its sequence fixes every step's teacher count)."""

    def __init__(self):
        super().__init__()
        self.rows = []

    def on_train_batch_end(self, batch, logs=None):
        self.rows.append((int(self.model.global_step.numpy()),
                          getattr(self.model.train_function, "static_now", bool)(),
                          float(logs["stable_teacher_fraction"])))


def _train(model: CLSER, kind: str, tasks=(0, 1), extra: int = 0) -> _StepLog:
    log = _StepLog()
    for t in tasks:
        model.fit(*_task(kind, t, extra=extra), batch_size=BATCH, shuffle=False, verbose=0,
                  callbacks=[log])
    return log


def _max_difference(a: CLSER, b: CLSER) -> float:
    return max(float(np.max(np.abs(u - v))) for name in ("working", "plastic", "stable")
               for u, v in zip(getattr(a, f"{name}_model").get_weights(),
                               getattr(b, f"{name}_model").get_weights()))


@pytest.mark.parametrize("kind", ["mlp", "bn_cnn"])
@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_xla_on_equals_off_across_a_task_switch(kind, steps_per_execution):
    # 7 batches a task, the last one of 2 samples: with 3 steps a call, calls of 3 stacked
    # batches, and a last call of one smaller batch.
    on = _model(kind, True, steps_per_execution)
    off = _model(kind, False, steps_per_execution)
    log_on, log_off = _train(on, kind, extra=2), _train(off, kind, extra=2)
    assert on.xla and not off.xla
    assert any(static for _, static, _ in log_on.rows)  # XLA did run
    assert _max_difference(on, off) < 1e-5
    # Teachers: every step's running fraction identical, so every step's count of stable
    # choices; the buffer identical.
    assert [r[2] for r in log_on.rows] == [r[2] for r in log_off.rows]
    for name in ("inputs", "labels", "num_seen"):
        np.testing.assert_array_equal(getattr(on.buffer, name).numpy(),
                                      getattr(off.buffer, name).numpy())


@pytest.mark.parametrize("steps_per_execution, expected", [
    (1, [False, False, True, True, True, True]),  # calls at global steps 0, 1, 2, ...
    (3, [False, True])])  # calls at global steps 0 and 3
def test_the_static_step_starts_with_the_first_call_whose_replay_batch_is_full(
        steps_per_execution, expected):
    # The buffer holds REPLAY=6 samples from global step 2 on (8 seen).
    model = _model("mlp", True, steps_per_execution)
    log = _StepLog()
    model.fit(*_task("mlp", 0), batch_size=BATCH, shuffle=False, verbose=0, callbacks=[log])
    assert [static for _, static, _ in log.rows] == expected


@pytest.mark.parametrize("resume_at", [1, 4])  # mid-warm-up, and after the switch
def test_a_restored_model_switches_at_the_same_step_and_ends_identical(tmp_path, resume_at):
    x, y = _task("mlp", 0)
    whole = _model("mlp", True)
    whole_log = _train(whole, "mlp", tasks=(0,))

    first = _model("mlp", True)
    first.fit(x[:resume_at * BATCH], y[:resume_at * BATCH], batch_size=BATCH, shuffle=False,
              verbose=0)
    path = tf.train.Checkpoint(model=first, optimizer=first.optimizer).write(
        str(tmp_path / "ckpt"))
    resumed = _model("mlp", True)
    tf.train.Checkpoint(model=resumed, optimizer=resumed.optimizer).read(path).assert_consumed()
    log = _StepLog()
    resumed.fit(x[resume_at * BATCH:], y[resume_at * BATCH:], batch_size=BATCH, shuffle=False,
                verbose=0, callbacks=[log])
    assert [r[:2] for r in log.rows] == [r[:2] for r in whole_log.rows[resume_at:]]
    for a, b in zip(whole.weights, resumed.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_model_without_replay_is_static_from_the_first_step():
    model = CLSER(tiny_mlp(), replay=False, seed=7)
    model.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=True)
    log = _train(model, "mlp", tasks=(0,))
    assert all(static for _, static, _ in log.rows)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("shape", [[], [7], [3, 5]])
def test_uniform_draws_tensorflows_numbers_with_and_without_xla(dtype, shape):
    seed = tf.constant([7, 123], tf.int64)
    expected = tf.random.stateless_uniform(shape, seed, dtype=dtype).numpy()
    for jit_compile in (False, True):
        drawn = tf.function(lambda: uniform(shape, seed, dtype), jit_compile=jit_compile)()
        np.testing.assert_array_equal(drawn.numpy(), expected)
    # (XLA's own stateless_uniform draws other numbers: the reason for ``uniform``.)
    xla = tf.function(lambda: tf.random.stateless_uniform(shape, seed, dtype=dtype),
                      jit_compile=True)().numpy()
    assert not np.array_equal(xla, expected)


def test_auto_is_off_on_a_cpu_and_under_several_replicas_where_true_is_refused():
    assert not tf.config.list_logical_devices("GPU")  # this test's premise
    assert not _model("mlp", "auto").xla
    assert not _model("mlp", "false").xla and _model("bn_cnn", "true").xla
    with mirrored().scope():
        assert not resolve_jit_compile("auto", tf.distribute.get_strategy())
        with pytest.raises(ValueError, match=r"^jit_compile=True is invalid under 2 replicas: "
                                             r".*use auto or false\.$"):
            resolve_jit_compile(True, tf.distribute.get_strategy())


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_an_invalid_jit_compile_is_one_line_naming_the_choices(value):
    with pytest.raises(ValueError, match=r"jit_compile=.* is invalid: it must be one of "
                                         r"auto, true, false"):
        _model("mlp", value)


@pytest.mark.parametrize("stop_at", [5, 20])  # mid-warm-up (13 steps), and after the switch
def test_the_runner_with_xla_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch,
                                                                 stop_at):
    # fmnist.cfg: batch 10, replay 128: the static step starts at global step 13 (task 2).
    data_dir = write_idx_dir(tmp_path / "data", random_dataset((28, 28), 400, 100, 10))
    argv = (flagfile("fmnist.cfg"), f"--data_dir={data_dir}", "--verbose=0",
            "--jit_compile=true", "--steps_per_execution=1", "--checkpoint_every_steps=1",
            "--tensorboard=false", "--export_dir=")
    runner.run(make_config(*argv, f"--output_dir={tmp_path / 'whole'}"))

    sigint_at_step(monkeypatch, stop_at)
    part = make_config(*argv, f"--output_dir={tmp_path / 'part'}")
    with pytest.raises(Interrupted, match=f"stopped by SIGINT at global step {stop_at}"):
        runner.run(part)
    monkeypatch.undo()
    runner.run(part)
    assert_same_state(tmp_path / "part", tmp_path / "whole")
