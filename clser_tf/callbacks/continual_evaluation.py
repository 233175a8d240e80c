"""The runner's evaluation protocol of a task sequence, as a Keras callback for user code."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from clser_tf.benchmarks import Benchmark, Setting
from clser_tf.config import MODEL_NAMES
from clser_tf.evaluation import task_evaluator
from clser_tf.figures import accuracy_matrix_figure, save_figure
from clser_tf.model import CLSER
from clser_tf.reporting import final_table, summary_line
from clser_tf.results import TaskSequenceResults, benchmark_record
from clser_tf.streams import test_stream
from clser_tf.tensorboard_logs import write_task_summaries


class ContinualEvaluation(keras.callbacks.Callback):
    """Evaluates a :class:`~clser_tf.CLSER` over a task sequence as the runner does.

    Each ``fit`` that carries the callback trains the next task of ``benchmark`` (class-IL,
    domain-IL or GCIL; not a general-continual stream), in order, and the callback takes
    the runner's measurements around it:

    * at the start of the first ``fit``, every model untrained on every task (the
      random-init accuracies of forward transfer);
    * at the start of the ``fit`` of task t, task t just before training it;
    * at the end of the ``fit`` of task t, every model on every task seen so far: one row
      of each accuracy matrix (class-IL, and task-IL where the benchmark defines it;
      domain-IL as ``domain_il``), printed as one line with ``verbose`` and written to
      TensorBoard under ``log_dir`` if given;
    * after the last task, the summaries: final mean accuracy, forgetting, backward and
      forward transfer.

    :attr:`results` is ``{"models": ...}`` in the schema of results.json's ``"models"``;
    :meth:`plot` draws the accuracy matrices. A ``fit`` after the last task raises
    RuntimeError. Example::

        import keras
        import clser_tf
        from clser_tf import backbones, benchmarks

        bench = benchmarks.load_benchmark("seq-mnist")
        model = clser_tf.CLSER(backbones.mlp(bench.input_shape, bench.num_classes))
        model.compile(optimizer=keras.optimizers.SGD(0.03))
        evaluation = clser_tf.ContinualEvaluation(bench)
        for task in bench.tasks:  # one fit per task, in order
            model.fit(task.x_train, task.y_train, batch_size=32, epochs=1,
                      callbacks=[evaluation])
        evaluation.results["models"]["stable"]["summary"]["class_il"]["forgetting"]
        evaluation.plot("accuracy_matrix.png")

    Args:
        benchmark: the task sequence, a :class:`~clser_tf.benchmarks.Benchmark`.
        models: the names of the CLSER's models to evaluate, among ``"working"``,
            ``"plastic"`` and ``"stable"``; default every one the model has.
        batch_size: the batch size of evaluation.
        log_dir: a folder for TensorBoard event files (accuracies at step t + 1 after
            task t); None writes none.
        verbose: 1 prints one line per task and the summary table; 0 prints nothing.
    """

    def __init__(self, benchmark: Benchmark, models: Sequence[str] | str | None = None,
                 batch_size: int = 1000, log_dir: str | None = None, verbose: int = 1):
        super().__init__()
        if not isinstance(benchmark, Benchmark):
            raise TypeError(f"benchmark={benchmark!r} is invalid: it must be a "
                            "clser_tf.benchmarks.Benchmark (see load_benchmark).")
        if benchmark.setting == Setting.GENERAL_CONTINUAL:
            raise ValueError(
                f"benchmark {benchmark.name} is general-continual: one stream without task "
                "boundaries, so there is no task to evaluate after each fit; "
                "ContinualEvaluation needs a task sequence (class-IL, domain-IL or GCIL).")
        if isinstance(models, str):
            models = (models,)
        if models is not None:
            models = tuple(dict.fromkeys(models))
            unknown = [name for name in models if name not in MODEL_NAMES]
            if not models or unknown:
                raise ValueError(f"models={list(models)!r} is invalid: name at least one of "
                                 f"{', '.join(MODEL_NAMES)}.")
        self.benchmark = benchmark
        self.log_dir = log_dir
        self.verbose = verbose
        self._names = models
        self._tasks = benchmark.tasks
        self._task_classes = [list(task.classes) for task in self._tasks]
        self._test_sets = [test_stream(task, batch_size) for task in self._tasks]
        self._clser: CLSER | None = None
        self._evaluate = None
        self._results: TaskSequenceResults | None = None
        self._writer: tf.summary.SummaryWriter | None = None
        self._trained = 0  # tasks trained and evaluated so far
        self._tick = 0.0  # perf_counter() at the current task's training start

    @property
    def num_tasks(self) -> int:
        return len(self._tasks)

    @property
    def results(self) -> dict[str, Any]:
        """``{"models": {name: {"random_init", "before_task", "matrix"[, "summary"]}}}``, as
        results.json's ``"models"`` (the summaries once every task is trained)."""
        if self._results is None:
            return {"models": {}}
        return {"models": self._results.to_json()["models"]}

    def plot(self, path: str) -> str:
        """Writes the accuracy-matrix figure of the tasks trained so far (one panel per
        model and setting) as a PNG at ``path``, creating its folder; returns ``path``."""
        if not self._trained:
            raise ValueError("no task is trained yet: there is no accuracy matrix to plot.")
        save_figure(accuracy_matrix_figure(self._results.matrices(),
                                           f"{self.benchmark.name}: accuracy (%)"), path)
        return path

    def _classes(self, first: int, last: int) -> list[list[int]] | None:
        """The task classes of test sets first..last-1, for task-IL (None without it)."""
        return self._task_classes[first:last] if self.benchmark.task_il else None

    def _start(self) -> None:
        """At the first fit: the model's evaluated models, the evaluator, the random-init
        accuracies and the TensorBoard writer."""
        model = self.model
        if not isinstance(model, CLSER):
            raise TypeError(f"ContinualEvaluation evaluates a clser_tf.CLSER; this fit trains "
                            f"a {type(model).__name__}.")
        has = [name for name in MODEL_NAMES if getattr(model, f"{name}_model") is not None]
        names = self._names if self._names is not None else tuple(has)
        missing = [name for name in names if name not in has]
        if missing:
            raise ValueError(f"models={list(names)!r} is invalid: this CLSER has no "
                             f"{', '.join(missing)} model, only {', '.join(has)}.")
        self._evaluate = task_evaluator({name: getattr(model, f"{name}_model")
                                         for name in names}, self.benchmark)
        self._results = TaskSequenceResults.start(
            {}, benchmark_record(self.benchmark), self._task_classes,
            self._evaluate(self._test_sets, self._classes(0, self.num_tasks)))
        if self.log_dir is not None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        self._clser = model

    def on_train_begin(self, logs=None):
        t = self._trained
        if t >= self.num_tasks:
            raise RuntimeError(
                f"all {self.num_tasks} tasks of {self.benchmark.name} are done: this "
                "ContinualEvaluation has no task left for another fit (one fit per task).")
        if self._clser is None:
            self._start()
        elif self.model is not self._clser:
            raise ValueError("this fit trains another model than the one ContinualEvaluation "
                             "evaluated so far: use one ContinualEvaluation per model.")
        results = self._results
        if results.owes_before_task(t):  # accuracy on task t just before training it
            results.add_before_task(self._evaluate(self._test_sets[t:t + 1],
                                                   self._classes(t, t + 1)))
        self._tick = time.perf_counter()

    def on_train_end(self, logs=None):
        t = self._trained
        trained = time.perf_counter()
        accs = self._evaluate(self._test_sets[:t + 1], self._classes(0, t + 1))
        self._results.add_task(accs, trained - self._tick, time.perf_counter() - trained)
        self._trained = t + 1
        if self._writer is not None:
            write_task_summaries(self._writer, t, accs)
            self._writer.flush()
        if self.verbose:
            print(summary_line(t, self.num_tasks, accs, time.perf_counter() - self._tick),
                  flush=True)
        if self._trained == self.num_tasks:
            self._results.finish("stable")
            if self.verbose:
                print(final_table(self.results["models"]), flush=True)
