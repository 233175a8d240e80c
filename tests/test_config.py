"""The configuration: built by a constructor call, flags only from the entry points."""

import dataclasses
import inspect
import os
import re
import subprocess
import sys

import pytest

from clser_tf import benchmarks, config
from clser_tf.config import CLSERConfig, RunConfig, resolve
from clser_tf.model import CLSER
from helpers import ROOT, TOY, make_config, register_toy_benchmark


def test_importing_the_library_defines_no_flag():
    code = ("import clser_tf, clser_tf.runner, clser_tf.benchmarks, clser_tf.config, "
            "clser_tf.cli; from absl import flags; "
            "print([f for f in flags.FLAGS if f in ('buffer_size', 'benchmark', 'lr')])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_a_constructed_config_equals_the_parsed_command_line(tmp_path):
    built = resolve(RunConfig(benchmark="seq-mnist", output_dir=str(tmp_path / "run"),
                              clser=CLSERConfig(buffer_size=500, stable_alpha=0.9)))
    parsed = make_config("--benchmark=seq-mnist", f"--output_dir={tmp_path / 'run'}",
                         "--buffer_size=500", "--stable_alpha=0.9")
    assert built == parsed
    assert built.checkpoint_dir == str(tmp_path / "run" / "checkpoints")
    assert built.checkpoint_every_steps == 20 * built.steps_per_execution


def test_the_clser_settings_are_the_models_keyword_arguments():
    names = {f.name for f in dataclasses.fields(CLSERConfig)}
    assert names <= set(inspect.signature(CLSER.__init__).parameters)


def test_a_constructed_config_is_validated_with_the_command_lines_message():
    with pytest.raises(ValueError, match=r"--stable_alpha=1.0 is invalid: it must be in \[0, 1\)"):
        resolve(RunConfig(clser=CLSERConfig(stable_alpha=1.0)))
    with pytest.raises(ValueError, match="--gcil_seed=7 is invalid: only gcil-cifar100 read it"):
        resolve(RunConfig(gcil_seed=7))


def test_every_setting_says_whether_it_decides_a_resume():
    deciding = {f.name for f in config.setting_fields() if f.metadata["deciding"]}
    assert "lr" in deciding and "buffer_size" in deciding and "seed" in deciding
    assert not deciding & {"output_dir", "steps_per_execution", "verbose", "restart"}


# A value other than the default of each benchmark-specific setting.
_SPECIFIC = {"source": "fmnist", "weight_dist": "longtail", "gcil_seed": 7,
             "eval_every_steps": 200, "curve_samples": 500, "num_tasks": 2,
             "class_order": "random", "class_order_seed": 3, "image_size": "8,8"}


@pytest.mark.parametrize("name", list(benchmarks.BENCHMARKS))
def test_a_benchmark_accepts_exactly_the_settings_it_declares(name, tmp_path):
    assert {s for d in benchmarks.BENCHMARKS.values() for s in d.settings} == set(_SPECIFIC)
    declared = benchmarks.BENCHMARKS[name]
    for setting, value in _SPECIFIC.items():
        run = RunConfig(benchmark=name, output_dir=str(tmp_path), data_dir=str(tmp_path),
                        **{setting: value})
        if setting in declared.settings:
            assert getattr(resolve(run), setting) == value
            continue
        readers = ", ".join(benchmarks.accepting(setting))
        with pytest.raises(ValueError, match=re.escape(
                f"--{setting}={value!r} is invalid: only {readers} read it, "
                f"not --benchmark={name}.")):
            resolve(run)


def test_a_registered_benchmark_is_accepted_by_config_and_loaded(monkeypatch):
    with pytest.raises(ValueError, match=f"--benchmark='{TOY}' is invalid: it must be one of "
                       "seq-fmnist, seq-mnist"):
        resolve(RunConfig(benchmark=TOY))
    declared = register_toy_benchmark(monkeypatch)
    parsed = make_config(f"--benchmark={TOY}", "--gcil_seed=7")
    assert (parsed.benchmark, parsed.gcil_seed) == (TOY, 7)
    assert parsed.output_dir == os.path.join("runs", f"{TOY}-buf200-seed0")
    with pytest.raises(ValueError, match="--weight_dist='longtail' is invalid: only "
                       f"gcil-cifar100 read it, not --benchmark={TOY}"):
        resolve(RunConfig(benchmark=TOY, weight_dist="longtail"))
    with pytest.raises(ValueError, match=f"--gcil_seed=7 is invalid: only gcil-cifar100, {TOY} "
                       "read it, not --benchmark=seq-mnist"):
        resolve(RunConfig(benchmark="seq-mnist", gcil_seed=7))
    bench = benchmarks.load_benchmark(TOY)
    assert [t.classes for t in bench.tasks] == [(0, 1), (2, 3)]
    assert (bench.input_shape, bench.num_classes, bench.class_names) == (
        (8, 8, 3), 4, declared.class_names)
