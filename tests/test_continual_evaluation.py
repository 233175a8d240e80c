"""clser_tf.ContinualEvaluation: the runner's evaluation protocol as a Keras callback."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import clser_tf
from clser_tf import backbones, benchmarks, runner, streams
from clser_tf.benchmarks import Benchmark, Setting, Task
from clser_tf.callbacks import ContinualEvaluation
from clser_tf.evaluation import summarize
from helpers import TOY, make_config, random_dataset, register_toy_benchmark

SUMMARY_KEYS = {"final_mean", "forgetting", "backward_transfer", "forward_transfer"}


def toy_sequence(setting=Setting.CLASS_IL, task_il=True, num_tasks=2) -> Benchmark:
    """8x8 RGB images of 4 classes: class-IL tasks of 4 / num_tasks classes each, or
    (domain-IL) num_tasks tasks of every class, each with its own samples."""
    data = random_dataset((8, 8, 3), 48, 24, 4, seed=1)
    tasks = []
    for k in range(num_tasks):
        if setting == Setting.DOMAIN_IL:
            classes = (0, 1, 2, 3)
            train = np.arange(len(data.y_train)) % num_tasks == k
            test = np.arange(len(data.y_test)) % num_tasks == k
        else:
            per_task = 4 // num_tasks
            classes = tuple(range(k * per_task, (k + 1) * per_task))
            train, test = np.isin(data.y_train, classes), np.isin(data.y_test, classes)
        tasks.append(Task(classes, data.x_train[train], data.y_train[train],
                          data.x_test[test], data.y_test[test]))
    return Benchmark(f"toy-{setting.value}", (8, 8, 3), 4, tuple(tasks), "mlp", False, None,
                     None, setting=setting, task_il=task_il)


def toy_clser(semantic_memories=("plastic", "stable")) -> clser_tf.CLSER:
    keras.utils.set_random_seed(0)
    model = clser_tf.CLSER(backbones.mlp((8, 8, 3), 4, hidden_units=16), buffer_size=16,
                           replay_batch_size=8, semantic_memories=semantic_memories)
    model.compile(optimizer=keras.optimizers.SGD(0.1), steps_per_execution=1)
    return model


def user_loop(bench, evaluation, model):
    """The documented user code: one plain fit per task, carrying the callback."""
    for task in bench.tasks:
        model.fit(task.x_train, task.y_train, batch_size=8, epochs=1, verbose=0,
                  callbacks=[evaluation])


def test_the_callback_in_user_code_gives_the_runners_numbers(tmp_path, monkeypatch):
    declared = register_toy_benchmark(monkeypatch)
    # More test samples than the toy's 8 per task: accuracies in steps of 1 %, not 12.5 %.
    data = random_dataset((8, 8, 3), 160, 200, 4, seed=5)
    monkeypatch.setitem(benchmarks.BENCHMARKS, TOY,
                        dataclasses.replace(declared, read=lambda data_dir: data))
    config = make_config(
        f"--benchmark={TOY}", f"--output_dir={tmp_path / 'run'}", "--seed=2", "--batch_size=8",
        "--buffer_size=16", "--replay_batch_size=8", "--eval_batch_size=64", "--verbose=0",
        "--tensorboard=false", "--steps_per_execution=1", "--export_dir=")
    runner.run(config)
    with open(tmp_path / "run" / "results.json") as f:
        expected = json.load(f)["models"]

    # As the runner builds and trains the model: its op determinism, seeds and streams.
    with runner._op_determinism(config.deterministic):
        keras.utils.set_random_seed(config.seed)
        bench = benchmarks.load_benchmark(config.benchmark, config.data_dir,
                                          source=config.source, seed=config.seed,
                                          weight_dist=config.weight_dist,
                                          gcil_seed=config.gcil_seed)
        with tf.distribute.get_strategy().scope():
            model = runner.build_model(bench, config)
        evaluation = clser_tf.ContinualEvaluation(bench, batch_size=config.eval_batch_size,
                                                  verbose=0)
        for t, task in enumerate(bench.tasks):
            stream = streams.train_stream(task, config.batch_size, seed=config.seed * 1000 + t,
                                          epoch=0)
            model.fit(stream, callbacks=[evaluation], verbose=0, shuffle=False)

    got = evaluation.results
    assert list(got) == ["models"]
    assert list(got["models"]) == ["working", "plastic", "stable"] == list(expected)
    assert set(expected["stable"]) == {"random_init", "before_task", "matrix", "summary"}
    assert got["models"] == expected  # exact: the same floats, bit for bit
    # The numbers moved with training (else equality would hold for an untrained model too).
    matrix = expected["working"]["matrix"]["class_il"]
    assert matrix[0][0] != expected["working"]["random_init"]["class_il"][0]


@pytest.mark.parametrize("setting, task_il, num_tasks, memories, models, settings", [
    (Setting.CLASS_IL, True, 2, ("plastic", "stable"), ["working", "plastic", "stable"],
     ["class_il", "task_il"]),
    (Setting.DOMAIN_IL, False, 3, ("plastic", "stable"), ["working", "plastic", "stable"],
     ["domain_il"]),
    (Setting.CLASS_IL, False, 2, ("stable",), ["working", "stable"], ["class_il"]),  # GCIL
    (Setting.CLASS_IL, True, 4, (), ["working"], ["class_il", "task_il"]),  # ER: no EMA models
])
def test_the_plain_user_loop_fills_every_matrix_and_summary(setting, task_il, num_tasks,
                                                            memories, models, settings,
                                                            capsys):
    bench = toy_sequence(setting, task_il, num_tasks)
    evaluation = ContinualEvaluation(bench)
    assert isinstance(evaluation, keras.callbacks.Callback)
    user_loop(bench, evaluation, toy_clser(memories))
    got = evaluation.results["models"]
    assert list(got) == models
    for name in models:
        result = got[name]
        assert list(result["matrix"]) == settings
        for s in settings:
            matrix = result["matrix"][s]
            assert [len(row) for row in matrix] == list(range(1, num_tasks + 1))
            assert all(0.0 <= acc <= 100.0 for row in matrix for acc in row)
            assert len(result["random_init"][s]) == num_tasks
            before = result["before_task"][s]
            assert before[0] is None and len(before) == num_tasks
            assert all(isinstance(acc, float) for acc in before[1:])
            assert set(result["summary"][s]) == SUMMARY_KEYS
            assert result["summary"][s] == summarize(matrix, result["random_init"][s], before)
            assert result["summary"][s]["forward_transfer"] is not None
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines if line.startswith("task ")] == [
        f"task {t + 1}/{num_tasks}" for t in range(num_tasks)]
    assert any(line.startswith("model") and "forget" in line for line in lines)  # the table


def test_results_are_filled_in_fit_by_fit():
    bench = toy_sequence()
    evaluation = ContinualEvaluation(bench, models="stable", verbose=0)
    assert evaluation.results == {"models": {}}
    model = toy_clser()
    model.fit(bench.tasks[0].x_train, bench.tasks[0].y_train, batch_size=8, verbose=0,
              callbacks=[evaluation])
    after_one = evaluation.results["models"]
    assert list(after_one) == ["stable"]
    assert [len(row) for row in after_one["stable"]["matrix"]["class_il"]] == [1]
    assert "summary" not in after_one["stable"]  # only once every task is trained
    assert after_one["stable"]["before_task"]["class_il"] == [None]


def test_plot_writes_the_accuracy_matrix_png(tmp_path):
    bench = toy_sequence()
    evaluation = ContinualEvaluation(bench, verbose=0)
    with pytest.raises(ValueError, match="no task is trained yet"):
        evaluation.plot(str(tmp_path / "early.png"))
    user_loop(bench, evaluation, toy_clser())
    path = tmp_path / "new" / "folder" / "accuracy_matrix.png"
    assert evaluation.plot(str(path)) == str(path)
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = tf.io.decode_png(png).shape
    assert width > height > 100  # three model columns, two setting rows


def test_a_fit_after_the_last_task_raises():
    bench = toy_sequence()
    evaluation = ContinualEvaluation(bench, verbose=0)
    model = toy_clser()
    user_loop(bench, evaluation, model)
    before = evaluation.results
    step = int(model.global_step.numpy())
    with pytest.raises(RuntimeError, match="all 2 tasks of toy-class-il are done"):
        model.fit(bench.tasks[0].x_train, bench.tasks[0].y_train, batch_size=8, verbose=0,
                  callbacks=[evaluation])
    assert int(model.global_step.numpy()) == step  # refused before any training step
    assert evaluation.results == before


def test_naming_a_model_the_clser_does_not_have_raises():
    bench = toy_sequence()
    evaluation = ContinualEvaluation(bench, models=("working", "plastic"), verbose=0)
    model = toy_clser(("stable",))
    with pytest.raises(ValueError, match="has no plastic model, only working, stable"):
        model.fit(bench.tasks[0].x_train, bench.tasks[0].y_train, batch_size=8, verbose=0,
                  callbacks=[evaluation])
    assert int(model.global_step.numpy()) == 0
    with pytest.raises(ValueError, match=r"models=\['teacher'\] is invalid"):
        ContinualEvaluation(bench, models=["teacher"])


def test_the_model_must_be_a_clser():
    bench = toy_sequence()
    plain = backbones.mlp((8, 8, 3), 4, hidden_units=16)
    plain.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="evaluates a clser_tf.CLSER; this fit trains a"):
        plain.fit(bench.tasks[0].x_train, bench.tasks[0].y_train, verbose=0,
                  callbacks=[ContinualEvaluation(bench)])


def test_a_general_continual_benchmark_is_refused():
    stream = toy_sequence(Setting.DOMAIN_IL, False, 2)
    general = Benchmark("toy-360", stream.input_shape, 4, stream.tasks, "mlp", False, None,
                        None, setting=Setting.GENERAL_CONTINUAL, task_il=False)
    with pytest.raises(ValueError, match="toy-360 is general-continual"):
        ContinualEvaluation(general)
    with pytest.raises(TypeError, match="must be a clser_tf.benchmarks.Benchmark"):
        ContinualEvaluation(stream.tasks)


def test_log_dir_gets_the_accuracies_as_tensorboard_scalars(tmp_path):
    bench = toy_sequence()
    log_dir = tmp_path / "tb"
    evaluation = ContinualEvaluation(bench, models=("working", "stable"), log_dir=str(log_dir),
                                     verbose=0)
    user_loop(bench, evaluation, toy_clser())
    files = [f for f in os.listdir(log_dir) if f.startswith("events.out.tfevents.")]
    assert len(files) == 1
    scalars = {}
    for event in tf.compat.v1.train.summary_iterator(str(log_dir / files[0])):
        for value in event.summary.value:
            scalars[event.step, value.tag] = float(tf.make_ndarray(value.tensor))
    models = evaluation.results["models"]
    expected = {}
    for name in ("working", "stable"):
        for s in ("class_il", "task_il"):
            for t, row in enumerate(models[name]["matrix"][s]):
                for j, acc in enumerate(row):
                    expected[t + 1, f"{name}/{s}/task_{j + 1}"] = acc
                expected[t + 1, f"{name}/{s}/mean"] = sum(row) / len(row)
    assert scalars.keys() == expected.keys()
    for key, value in expected.items():
        assert scalars[key] == pytest.approx(value, rel=1e-6)
