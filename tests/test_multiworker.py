"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 train what one device
trains, only the chief writes files, and every worker resumes from the chief's checkpoint."""

import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

import helpers
from helpers import ROOT, TIMEOUT_S, free_port, random_dataset, write_cifar_dir, write_idx_dir

def shipped_command(data_dir: str, output_dir: str, *extra: str,
                    flagfile: str = "fmnist.cfg") -> list[str]:
    """A flagfile as shipped (--steps_per_execution=50 among the runner's defaults; the
    default benchmark's unless told), on tiny data."""
    return [sys.executable, "-m", "clser_tf.main",
            f"--flagfile={os.path.join(ROOT, 'flags', flagfile)}",
            f"--data_dir={data_dir}", f"--output_dir={output_dir}", "--eval_batch_size=50",
            "--verbose=0", *extra]


def run_all(commands: list[tuple[list[str], dict]]) -> list[str]:
    """Runs every command from the repository root (see helpers.run_all)."""
    return helpers.run_all(commands, cwd=ROOT, timeout_s=TIMEOUT_S)


def worker_envs(count: int) -> list[dict]:
    """Environments of ``count`` workers of one new cluster on 127.0.0.1."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(count)]}
    return [dict(os.environ, TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": i}})) for i in range(count)]


def test_two_workers_equal_one_device_and_only_the_chief_writes(tmp_path):
    data_dir = write_idx_dir(tmp_path / "data", random_dataset((28, 28), 200, 50, 10))
    worker_dirs = [tmp_path / f"worker{i}" for i in range(2)]
    shared = tmp_path / "checkpoints"  # one checkpoint folder that every worker sees

    def worker_commands() -> list[tuple[list[str], dict]]:
        return [(shipped_command(data_dir, str(out_dir), "--strategy=multi_worker",
                                 f"--checkpoint_dir={shared}"), env)
                for out_dir, env in zip(worker_dirs, worker_envs(len(worker_dirs)))]

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


def test_two_workers_run_the_shipped_cifar_flagfile(tmp_path):
    """flags/cifar.cfg (ResNet-18 with 4 base filters, one epoch) on two workers ends with
    one device's buffer and global step (its weights: see test_runner_distributed.py)."""
    data_dir = write_cifar_dir(tmp_path / "data", random_dataset((32, 32, 3), 320, 50, 10), 10)
    tiny = ("--epochs=1", "--resnet_base_filters=4")
    runs = {"single": (tmp_path / "single", dict(os.environ), ()),
            **{f"worker{i}": (tmp_path / f"worker{i}", env, ("--strategy=multi_worker",))
               for i, env in enumerate(worker_envs(2))}}
    run_all([(shipped_command(data_dir, str(out), *tiny, *extra, flagfile="cifar.cfg"), env)
             for out, env, extra in runs.values()])
    readers = [tf.train.load_checkpoint(str(runs[name][0] / "checkpoints"))
               for name in ("single", "worker0")]
    names = [n for n in readers[0].get_variable_to_shape_map()
             if n.startswith(("model/buffer/", "model/global_step/"))]
    assert len(names) == 4
    for name in names:
        np.testing.assert_array_equal(readers[1].get_tensor(name), readers[0].get_tensor(name))
    results = json.loads((runs["worker0"][0] / "results.json").read_text())
    assert len(results["models"]["stable"]["matrix"]["class_il"]) == 5
