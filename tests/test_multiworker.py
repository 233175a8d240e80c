"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 train what one device
trains, only the chief writes files, and every worker resumes from the chief's checkpoint."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from test_sources import random_dataset, write_idx_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main_command(data_dir: str, output_dir: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "clser_tf.main", "--benchmark=seq-fmnist",
            f"--data_dir={data_dir}", f"--output_dir={output_dir}", "--buffer_size=20",
            "--batch_size=8", "--replay_batch_size=8", "--lr=0.05", "--epochs=1",
            "--steps_per_execution=1", "--eval_batch_size=50", "--verbose=0", "--seed=0",
            *extra]


def shipped_command(data_dir: str, output_dir: str, *extra: str) -> list[str]:
    """The default benchmark's flagfile as shipped (--steps_per_execution=50 among the
    runner's defaults), on tiny data."""
    return [sys.executable, "-m", "clser_tf.main",
            f"--flagfile={os.path.join(ROOT, 'flags', 'fmnist.cfg')}",
            f"--data_dir={data_dir}", f"--output_dir={output_dir}", "--eval_batch_size=50",
            "--verbose=0", *extra]


def run_all(commands: list[tuple[list[str], dict]]) -> list[subprocess.CompletedProcess]:
    """Starts every command, waits for all (bounded), and always cleans them up."""
    procs = [subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for cmd, env in commands]
    try:
        outputs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    return outputs


def test_two_workers_equal_one_device_and_only_the_chief_writes(tmp_path):
    data_dir = write_idx_dir(tmp_path / "data", random_dataset((28, 28), 200, 50, 10))
    worker_dirs = [tmp_path / f"worker{i}" for i in range(2)]
    shared = tmp_path / "checkpoints"  # one checkpoint folder that every worker sees

    def worker_commands() -> list[tuple[list[str], dict]]:
        cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in worker_dirs]}
        return [(shipped_command(data_dir, str(out_dir), "--strategy=multi_worker",
                                  f"--checkpoint_dir={shared}"),
                 dict(os.environ, TF_CONFIG=json.dumps(
                     {"cluster": cluster, "task": {"type": "worker", "index": i}})))
                for i, out_dir in enumerate(worker_dirs)]

    run_all([(shipped_command(data_dir, str(tmp_path / "single")), dict(os.environ)),
             *worker_commands()])

    assert not worker_dirs[1].exists()  # the non-chief wrote nothing
    assert (shared / "checkpoint").is_file()  # the chief wrote the checkpoints
    single = json.loads((tmp_path / "single" / "results.json").read_text())
    chief = json.loads((worker_dirs[0] / "results.json").read_text())
    for name in ("working", "plastic", "stable"):
        for setting in ("class_il", "task_il"):
            np.testing.assert_allclose(chief["models"][name]["matrix"][setting][-1],
                                       single["models"][name]["matrix"][setting][-1], atol=1e-9)
    x = np.random.default_rng(1).integers(0, 256, (16, 28, 28), dtype=np.uint8)
    served = [tf.saved_model.load(str(d / "export")) for d in (tmp_path / "single", worker_dirs[0])]
    np.testing.assert_allclose(served[1].serve(x).numpy(), served[0].serve(x).numpy(), atol=1e-5)

    # The same commands again: both workers resume from the chief's newest checkpoint (every
    # task trained; their global steps agree) and write the same results.
    outputs = run_all(worker_commands())
    assert all("every task is trained" in out for out in outputs), outputs
    assert not worker_dirs[1].exists()
    again = json.loads((worker_dirs[0] / "results.json").read_text())
    assert again["models"] == chief["models"]
