"""Studies: the statistics against hand-computed values, seed parsing, bad input, and a tiny
study end to end (2 seeds x 2 variants, --jobs=2) stopped between runs and resumed."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from scipy import stats

from clser_tf import aggregate
from clser_tf.study import parse_seeds
from helpers import ROOT, TIMEOUT_S, random_dataset, write_idx_dir


def test_describe_matches_hand_computed_values():
    d = aggregate.describe([70.0, 72.0, 77.0])
    assert d["n"] == 3 and d["mean"] == pytest.approx(73.0)
    std = math.sqrt(((70 - 73) ** 2 + (72 - 73) ** 2 + (77 - 73) ** 2) / 2)  # 3.6056
    assert d["std"] == pytest.approx(std)
    half = 4.302652729911275 * std / math.sqrt(3)  # t(0.975, 2 df)
    assert d["ci95"] == pytest.approx([73.0 - half, 73.0 + half])
    assert (d["min"], d["max"]) == (70.0, 77.0)
    one = aggregate.describe([5.0])
    assert one["mean"] == 5.0 and one["std"] is None and one["ci95"] is None


def test_welch_matches_hand_computed_values():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0]
    va, vb = 5 / 3, 4.0  # sample variances
    se2 = va / 4 + vb / 3
    t = (2.5 - 4.0) / math.sqrt(se2)
    df = se2 ** 2 / ((va / 4) ** 2 / 3 + (vb / 3) ** 2 / 2)
    result = aggregate.welch(a, b)
    assert result["t"] == pytest.approx(t)
    assert result["df"] == pytest.approx(df)
    assert result["p"] == pytest.approx(2 * stats.t.sf(abs(t), df))
    assert aggregate.welch([1.0], b) is None


@pytest.mark.parametrize("text, seeds", [("0-3", [0, 1, 2, 3]), ("0,3,5", [0, 3, 5]),
                                         ("5,0-2,2", [0, 1, 2, 5]), ("7", [7])])
def test_seed_parsing(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "3-1", "-2", "1,,2", "0-"])
def test_malformed_seeds_are_refused(text):
    with pytest.raises(ValueError, match=r"--seeds=.* is invalid"):
        parse_seeds(text)


def study_command(data_dir, output_dir, *extra):
    return [sys.executable, "-m", "clser_tf.study", "--benchmark=seq-fmnist",
            f"--data_dir={data_dir}", f"--output_dir={output_dir}", "--buffer_size=20",
            "--batch_size=8", "--replay_batch_size=8", "--steps_per_execution=1",
            "--tensorboard=false", "--export_dir=", "--seeds=0-1", "--variants=clser,er",
            "--jobs=2", *extra]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_idx_dir(tmp_path_factory.mktemp("data"), random_dataset((28, 28), 100, 50, 10))


def finish(proc):
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            out, err = proc.communicate()
    return proc.returncode, out, err


def start(cmd):
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_a_stopped_study_resumes_to_the_uninterrupted_one(data_dir, tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    uninterrupted = start(study_command(data_dir, whole))
    proc = start(study_command(data_dir, part, "--jobs=1"))
    first = part / "clser" / "seed0" / "results.json"
    deadline = time.monotonic() + TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline:
        if first.exists() and "headline" in json.loads(first.read_text() or "{}"):
            proc.send_signal(signal.SIGTERM)  # between runs or in the second one
            break
        time.sleep(0.05)
    code, _, err = finish(proc)
    assert code == 128 + signal.SIGTERM, err[-2000:]
    assert "study stopped by SIGTERM; run the same command again to resume" in err
    assert not (part / "study.json").exists()
    code, out, err = finish(start(study_command(data_dir, part)))
    assert code == 0, err[-3000:]
    code, _, err = finish(uninterrupted)
    assert code == 0, err[-3000:]
    assert json.loads((part / "study.json").read_text()) == json.loads(
        (whole / "study.json").read_text())
    summary = json.loads((whole / "study.json").read_text())
    assert set(summary["variants"]) == {"clser", "er"}
    assert summary["variants"]["clser"]["headline"]["class_il"]["n"] == 2
    assert set(summary["welch_vs_clser"]["er"]) == {"class_il", "task_il"}
    for name in ("study.md", "study_accuracy_per_task.png", "study_final_accuracy.png",
                 "study_clser_matrix.png"):
        assert (whole / name).stat().st_size > 0, name
    assert "| clser | stable | 2 |" in (whole / "study.md").read_text()
    # Running it again trains nothing: every run is finished.
    before = {p: os.path.getmtime(p) for p in whole.rglob("results.json")}
    code, _, err = finish(start(study_command(data_dir, whole)))
    assert code == 0, err[-2000:]
    assert {p: os.path.getmtime(p) for p in whole.rglob("results.json")} == before
    # Other settings are refused, naming them, before any run starts.
    code, _, err = finish(start(study_command(data_dir, whole, "--lr=0.2")))
    assert code == 1
    assert ("clser_tf: error: the study in '" in err and "was made with other settings: "
            "--lr=0.03 (now 0.2)" in err), err[-2000:]


BAD_INPUTS = [
    (["--variants=clser,fast"], r"--variants='clser,fast' is invalid: 'fast' is not one of"),
    (["--seeds="], r"--seeds='' is invalid"),
    (["--seeds=3-1"], r"--seeds='3-1' is invalid"),
    (["--jobs=0"], r"--jobs=0 is invalid: it must be >= 1"),
    (["--lr=0"], r"--lr=0.0 is invalid"),
    (["--seed=3"], r"--seed is set per run by the study"),
]


def test_bad_input_is_one_line_before_any_run(data_dir, tmp_path):
    procs = [(extra, message, start(study_command(data_dir, tmp_path / str(k), *extra)))
             for k, (extra, message) in enumerate(BAD_INPUTS)]
    for k, (extra, message, proc) in enumerate(procs):
        code, _, err = finish(proc)
        ours = [line for line in err.splitlines() if line.startswith("clser_tf")]
        assert code == 1 and len(ours) == 1, (extra, err[-2000:])
        assert ours[0].startswith("clser_tf: error: ")
        assert re.search(message, ours[0]), (extra, ours)
        assert not any((tmp_path / str(k)).rglob("results.json")), extra


def test_a_failed_run_is_reported_the_others_go_on_and_the_study_exits_1(data_dir, tmp_path):
    study = tmp_path / "study"
    broken = study / "clser" / "seed1" / "checkpoints"
    broken.mkdir(parents=True)
    (broken / "checkpoint").write_text("{{ not a state file")
    code, _, err = finish(start(study_command(data_dir, study, "--variants=clser")))
    assert code == 1, err[-3000:]
    failed = [line for line in err.splitlines() if line.startswith("clser_tf: run ")]
    assert len(failed) == 1, err[-3000:]
    assert failed[0].startswith("clser_tf: run clser/seed1 failed (exit 1): clser_tf: error: "
                                "the checkpoint state file")
    assert f"(log: {study / 'clser' / 'seed1' / 'run.log'})" in failed[0]
    assert err.splitlines()[-1] == ("clser_tf: error: 1 run(s) failed; the others are "
                                    "aggregated.")
    summary = json.loads((study / "study.json").read_text())
    assert summary["variants"]["clser"]["seeds"] == [0]
