"""Studies: seeds × variants of one benchmark in one command, aggregated over seeds.

``python -m clser_tf.study --flagfile=flags/fmnist.cfg --seeds=0-9
--variants=clser,er,stable-only,plastic-only,sgd,joint --jobs=2 --output_dir=studies/fmnist``

Every (variant, seed) is an ordinary run of ``clser_tf.main`` in ``<output_dir>/<variant>/
seed<k>/`` (its own results.json, figures, TensorBoard logs, checkpoints, and ``run.log``
with its output); any runner flag given here applies to every run. Running the same
command again skips finished runs and resumes an interrupted one from its checkpoint; a
study folder of other settings is refused. ``--jobs=N`` runs N at once, each with
1/N of the machine's cores. Then ``study.json``, ``study.md`` (the paper's "mean ± std"
table) and the figures are written (:mod:`clser_tf.aggregate`, :mod:`clser_tf.study_figures`);
``--aggregate_only`` only does that. A failed run is reported with its folder and last
error line, the others go on, and the study exits 1.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from absl import app, flags, logging

from clser_tf import aggregate, cli
from clser_tf.config import RunConfig, changed_settings, deciding_settings
from clser_tf.errors import error_line
from clser_tf.variants import VARIANTS

FLAGS = flags.FLAGS
cli.define_flags(FLAGS)
flags.DEFINE_string("seeds", "0", "Seeds of the runs: 0-9, 0,3,5 or a mix (0-3,7).")
flags.DEFINE_list("variants", ["clser"], f"Variants to run: {', '.join(VARIANTS)}.")
flags.DEFINE_integer("jobs", 1, "Runs at once, in separate processes sharing the cores.")
flags.DEFINE_boolean("aggregate_only", False, "Aggregate the finished runs; train nothing.")

SETTINGS_FILE = "study_settings.json"
# Runner flags the study sets per run (an empty --export_dir, no export, is for all runs).
_PER_RUN = ("seed", "variant", "output_dir", "checkpoint_dir", "export_dir")


def parse_seeds(text: str) -> list[int]:
    """``0-9``, ``0,3,5`` or a mix as a sorted list of distinct seeds; ValueError if not."""
    seeds: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match or (match[2] is not None and int(match[2]) < int(match[1])):
            raise ValueError(f"--seeds={text!r} is invalid: use seeds >= 0 and ranges like "
                             "0-9, 0,3,5 or a mix (0-3,7).")
        seeds.update(range(int(match[1]), int(match[2] or match[1]) + 1))
    return sorted(seeds)


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of the study: its variant, seed, folder and resolved config."""

    variant: str
    seed: int
    directory: str
    config: RunConfig

    @property
    def name(self) -> str:
        return f"{self.variant}/seed{self.seed}"

    def finished(self) -> bool:
        return "headline" in _read_json(os.path.join(self.directory, "results.json"))


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def plan(study_dir: str, variants: list[str], seeds: list[int]) -> list[Run]:
    """Every run's resolved config (ValueError, one line, for a bad runner flag)."""
    for name in variants:
        if name not in VARIANTS:
            raise ValueError(f"--variants={','.join(variants)!r} is invalid: {name!r} is not "
                             f"one of {', '.join(VARIANTS)}.")
    for name in _PER_RUN:
        if name != "output_dir" and FLAGS[name].present and FLAGS[name].value != "":
            raise ValueError(f"--{name} is set per run by the study (--seeds, --variants, "
                             "<output_dir>/<variant>/seed<k>); leave it out.")
    runs = []
    for variant in variants:
        for seed in seeds:
            directory = os.path.join(study_dir, variant, f"seed{seed}")
            runs.append(Run(variant, seed, directory, cli.config_from_flags(
                FLAGS, seed=seed, variant=variant, output_dir=directory)))
    return runs


def check_settings(study_dir: str, runs: list[Run]) -> None:
    """Refuses a study folder made with other settings; records them in a new one."""
    current = {k: v for k, v in deciding_settings(runs[0].config).items()
               if k not in _PER_RUN}
    path = os.path.join(study_dir, SETTINGS_FILE)
    saved = _read_json(path)
    if saved:
        changes = changed_settings(saved.get("settings", {}), current)
        if changes:
            raise ValueError(f"the study in {study_dir!r} was made with other settings: "
                             f"{changes}. Use another --output_dir, or the same settings to "
                             "go on with it.")
        return
    os.makedirs(study_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"format": "clser_tf study", "settings": current}, f, indent=1)


class _Launcher:
    """Starts runs as processes (``jobs`` at once) and stops them on SIGINT/SIGTERM."""

    def __init__(self, jobs: int, run_flags: list[str]):
        self._threads = max(1, (os.cpu_count() or 1) // jobs)
        self._flags = run_flags
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.stopped: int | None = None

    def run(self, run: Run) -> tuple[int, str]:
        """Runs ``run`` to its end; returns its exit code and last error line."""
        os.makedirs(run.directory, exist_ok=True)
        log = os.path.join(run.directory, "run.log")
        env = {**os.environ, "TF_NUM_INTRAOP_THREADS": str(self._threads),
               "TF_NUM_INTEROP_THREADS": str(self._threads),
               "OMP_NUM_THREADS": str(self._threads)}
        command = [sys.executable, "-m", "clser_tf.main", "--verbose=0", *self._flags,
                   f"--seed={run.seed}", f"--variant={run.variant}",
                   f"--output_dir={run.directory}"]
        with open(log, "a", encoding="utf-8") as out:
            with self._lock:
                if self.stopped is not None:
                    return -self.stopped, "not started: the study was stopped"
                proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                        env=env, preexec_fn=_die_with_parent)
                self._procs.add(proc)
            code = proc.wait()
            with self._lock:
                self._procs.discard(proc)
        return code, _last_error(log)

    def stop(self, signum: int, frame=None) -> None:
        """Passes SIGINT/SIGTERM on to the running runs (each writes a checkpoint)."""
        with self._lock:
            self.stopped = signum
            for proc in self._procs:
                proc.send_signal(signum)


def _die_with_parent() -> None:
    """In a run's process: SIGTERM it (a checkpoint, then exit) if the study dies."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _last_error(log: str) -> str:
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    ours = [line for line in lines if line.startswith("clser_tf")]
    return (ours or lines or [""])[-1]


def run_all(runs: list[Run], jobs: int) -> list[tuple[Run, int, str]]:
    """Runs every unfinished run, ``jobs`` at once, with a progress bar; returns the
    failed ones (run, exit code, last error line)."""
    import keras  # the progress bar; TensorFlow is imported by the runs themselves

    todo = [run for run in runs if not run.finished()]
    bar = keras.utils.Progbar(len(runs), unit_name="run")
    bar.update(len(runs) - len(todo))
    launcher = _Launcher(jobs, [a for name, a in cli.given_flags(FLAGS).items()
                                if name not in _PER_RUN or FLAGS[name].value == ""])
    previous = {s: signal.signal(s, launcher.stop) for s in (signal.SIGINT, signal.SIGTERM)}
    failed = []
    try:
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            futures = {pool.submit(launcher.run, run): run for run in todo}
            done = len(runs) - len(todo)
            for future in concurrent.futures.as_completed(futures):
                code, line = future.result()
                done += 1
                bar.update(done)
                if code != 0 and launcher.stopped is None:
                    failed.append((futures[future], code, line))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if launcher.stopped is not None:
        name = signal.Signals(launcher.stopped).name
        print(f"clser_tf: study stopped by {name}; run the same command again to resume.",
              file=sys.stderr, flush=True)
        sys.exit(128 + launcher.stopped)
    return failed


def finished_runs(study_dir: str) -> dict[str, dict[int, dict]]:
    """``runs[variant][seed]``: the results.json of every finished run in the study."""
    runs: dict[str, dict[int, dict]] = {}
    for variant in VARIANTS:
        folder = os.path.join(study_dir, variant)
        for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
            match = re.fullmatch(r"seed(\d+)", entry)
            results = _read_json(os.path.join(folder, entry, "results.json"))
            if match and "headline" in results:
                runs.setdefault(variant, {})[int(match[1])] = results
    return runs


def write_outputs(study_dir: str) -> None:
    """study.json, study.md and the figures (files and TensorBoard images)."""
    from clser_tf import study_figures
    from clser_tf.figures import save_figures
    import tensorflow as tf

    runs = finished_runs(study_dir)
    if not runs:
        raise ValueError(f"--output_dir={study_dir!r} holds no finished run to aggregate.")
    summary = aggregate.aggregate(runs)
    first = next(iter(next(iter(runs.values())).values()))
    count = max(len(by_seed) for by_seed in runs.values())
    title = f"{first['benchmark']['name']}: {count} seeds"
    aggregate.write(summary, study_dir, title)
    settings = list(next(iter(summary["variants"].values()))["headline"])
    figures = {"study_accuracy_per_task": study_figures.per_task_figure(runs, settings, title),
               "study_final_accuracy": study_figures.final_bars_figure(summary, title)}
    if "clser" in runs and "matrix" in first["models"].get("stable", {}):
        figures["study_clser_matrix"] = study_figures.mean_matrix_figure(
            runs["clser"], "stable", f"{title}: clser stable model, mean accuracy (%)")
    writer = tf.summary.create_file_writer(os.path.join(study_dir, "tensorboard"))
    save_figures(figures, study_dir, writer, count)
    writer.flush()
    print(f"study: {os.path.join(study_dir, 'study.md')}", flush=True)
    print(aggregate.markdown(summary, title), flush=True)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]!r}: pass settings as --flags.")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    study_dir = FLAGS.output_dir
    try:
        if not study_dir:
            raise ValueError("--output_dir is required: the study's folder.")
        if not FLAGS.aggregate_only:
            if FLAGS.jobs < 1:
                raise ValueError(f"--jobs={FLAGS.jobs} is invalid: it must be >= 1.")
            runs = plan(study_dir, FLAGS.variants, parse_seeds(FLAGS.seeds))
            check_settings(study_dir, runs)
            failed = run_all(runs, FLAGS.jobs)
            for run, code, line in failed:
                print(f"clser_tf: run {run.name} failed (exit {code}): {line} "
                      f"(log: {os.path.join(run.directory, 'run.log')})", file=sys.stderr)
        else:
            failed = []
        write_outputs(study_dir)
    except ValueError as error:
        sys.exit(error_line(error))
    if failed:
        sys.exit(error_line(f"{len(failed)} run(s) failed; the others are aggregated."))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
