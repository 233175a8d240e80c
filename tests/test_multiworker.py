"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 train what one device
trains, only the chief writes files, and every worker resumes from the chief's checkpoint."""

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import helpers
from clser_tf.checkpoint import read_run_state
from clser_tf.distribution import peer_tasks
from clser_tf.errors import WorkerLost
from helpers import (ROOT, TIMEOUT_S, comparable_results, free_port, random_dataset,
                     write_cifar_dir, write_idx_dir)

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


def checkpointed_cluster(tmp_path, data_dir: str, name: str) -> list[tuple[list[str], dict]]:
    """Two workers of a new cluster, checkpointing every 20 steps into
    ``tmp_path/name/checkpoints``, each writing to ``tmp_path/name/w<i>``."""
    return [(shipped_command(data_dir, str(tmp_path / name / f"w{i}"),
                             "--strategy=multi_worker", "--steps_per_execution=1",
                             "--checkpoint_every_steps=20", "--tensorboard=false",
                             "--collective_timeout_s=20",
                             f"--checkpoint_dir={tmp_path / name / 'checkpoints'}"), env)
            for i, env in enumerate(worker_envs(2))]


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


def test_a_killed_worker_stops_the_others_with_one_line_and_both_resume(tmp_path):
    """kill -9 of one worker after the first periodic checkpoint: the other exits 1 within
    --collective_timeout_s (plus start-up slack) naming the lost worker; the same two
    commands again resume and end as an uninterrupted two-worker run."""
    data_dir = write_idx_dir(tmp_path / "data", random_dataset((28, 28), 1000, 50, 10))

    commands = functools.partial(checkpointed_cluster, tmp_path, data_dir)

    whole = commands("whole")
    run_all(whole)
    part = commands("part")
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for cmd, env in part]
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not (tmp_path / "part" / "checkpoints" / "checkpoint").exists():
            assert time.monotonic() < deadline and procs[0].poll() is None
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        _, err = procs[0].communicate(timeout=20 + 60)
        waited = time.monotonic() - killed
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    ours = [line for line in err.splitlines() if line.startswith("clser_tf")]
    assert procs[0].returncode == 1 and len(ours) == 1, err[-3000:]
    # The survivor learns of the loss from the heartbeats or, when it was in a collective
    # with the killed worker, from the collective: either way the lost worker is named.
    assert re.match(r"clser_tf: error: a worker was lost \(/job:worker/replica:0/task:1 "
                    r"stopped (sending heartbeats|answering)\); the newest checkpoint is in",
                    ours[0]), ours[0]
    assert waited < 20 + 40, waited
    state = tf.train.latest_checkpoint(str(tmp_path / "part" / "checkpoints"))
    assert state is not None and tf.train.load_checkpoint(state)  # intact
    outputs = run_all(commands("part"))  # the same commands: both resume
    assert any("resuming from" in out for out in outputs), outputs
    assert comparable_results(tmp_path / "whole" / "w0") == comparable_results(
        tmp_path / "part" / "w0")
    x = np.random.default_rng(1).integers(0, 256, (16, 28, 28), dtype=np.uint8)
    served = [tf.saved_model.load(str(tmp_path / name / "w0" / "export"))
              for name in ("whole", "part")]
    np.testing.assert_allclose(served[1].serve(x).numpy(), served[0].serve(x).numpy(),
                               atol=1e-5)


@pytest.mark.parametrize("signum,signalled", [(signal.SIGTERM, 1), (signal.SIGINT, 0)])
def test_a_signalled_worker_stops_every_worker_at_one_step_and_both_resume(
        tmp_path, signum, signalled):
    """SIGTERM (or SIGINT) to one worker after the first periodic checkpoint: every worker
    writes its checkpoint at the same global step and exits 128 + signal; the same two
    commands again resume and end as an uninterrupted two-worker run."""
    data_dir = write_idx_dir(tmp_path / "data", random_dataset((28, 28), 1000, 50, 10))

    commands = functools.partial(checkpointed_cluster, tmp_path, data_dir)

    run_all(commands("whole"))
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for cmd, env in commands("part")]
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not (tmp_path / "part" / "checkpoints" / "checkpoint").exists():
            assert time.monotonic() < deadline and procs[0].poll() is None
            time.sleep(0.05)
        procs[signalled].send_signal(signum)
        errs = [proc.communicate(timeout=60)[1] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert [proc.returncode for proc in procs] == [128 + signum] * 2, errs
    name = signal.Signals(signum).name
    steps = [re.findall(rf"^clser_tf: stopped by {name} at global step (\d+);", err, re.M)
             for err in errs]
    assert all(len(found) == 1 for found in steps), errs
    assert steps[0] == steps[1], steps  # one step for every worker
    newest = tf.train.latest_checkpoint(str(tmp_path / "part" / "checkpoints"))
    assert newest is not None
    state = read_run_state(newest)
    assert state["global_step"] == int(steps[0][0]) > 20  # past the first periodic one
    outputs = run_all(commands("part"))  # the same commands: both resume
    assert all("resuming from" in out for out in outputs), outputs
    assert comparable_results(tmp_path / "whole" / "w0") == comparable_results(
        tmp_path / "part" / "w0")


def test_three_workers_equal_one_device(tmp_path):
    """Three worker processes on 127.0.0.1 (a global batch of 12: 4 per worker) end as one
    device does, so the cluster path is exercised beyond two processes."""
    data_dir = write_idx_dir(tmp_path / "data", random_dataset((28, 28), 240, 50, 10))
    tiny = ("--batch_size=12", "--replay_batch_size=12", "--tensorboard=false")
    run_all([(shipped_command(data_dir, str(tmp_path / "single"), *tiny), dict(os.environ)),
             *[(shipped_command(data_dir, str(tmp_path / f"worker{i}"), *tiny,
                                "--strategy=multi_worker",
                                f"--checkpoint_dir={tmp_path / 'checkpoints'}"), env)
               for i, env in enumerate(worker_envs(3))]])
    assert not (tmp_path / "worker1").exists() and not (tmp_path / "worker2").exists()
    single = json.loads((tmp_path / "single" / "results.json").read_text())
    chief = json.loads((tmp_path / "worker0" / "results.json").read_text())
    for name in ("working", "plastic", "stable"):
        for setting in ("class_il", "task_il"):
            np.testing.assert_allclose(chief["models"][name]["matrix"][setting][-1],
                                       single["models"][name]["matrix"][setting][-1], atol=1e-9)


@pytest.mark.parametrize("message, peers, named", [
    ("UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):\n"
     "/job:worker/replica:0/task:1\nThe tasks have crashed.",
     ["/job:worker/replica:0/task:1"], "/job:worker/replica:0/task:1 stopped sending heartbeats"),
    ("Collective ops is aborted by: failed to connect to /job:worker/replica:0/task:2",
     ["/job:worker/replica:0/task:1", "/job:worker/replica:0/task:2"],
     "/job:worker/replica:0/task:2 stopped answering"),
    ("{{function_node __wrapped__CollectiveReduceV2}} Socket closed",
     ["/job:worker/replica:0/task:1"], "/job:worker/replica:0/task:1 stopped answering"),
    ("{{function_node __wrapped__CollectiveReduceV2}} Socket closed\nmore",
     ["/job:worker/replica:0/task:1", "/job:worker/replica:0/task:2"],
     "UnavailableError: {{function_node __wrapped__CollectiveReduceV2}} Socket closed"),
])
def test_the_lost_worker_is_named_from_heartbeats_the_error_or_the_only_peer(message, peers,
                                                                          named):
    error = tf.errors.UnavailableError(None, None, message)
    lost = str(WorkerLost(error, "/ckpt", peers))
    assert lost.startswith(f"a worker was lost ({named}); the newest checkpoint is in '/ckpt'")


def test_peer_tasks_are_every_other_task_of_the_cluster():
    spec = tf.train.ClusterSpec({"chief": ["a:1"], "worker": ["b:1", "c:1"]})
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        spec, task_type="worker", task_id=0)

    class Strategy:  # what peer_tasks reads of a MultiWorkerMirroredStrategy
        cluster_resolver = resolver

    assert peer_tasks(Strategy()) == ["/job:chief/replica:0/task:0",
                                      "/job:worker/replica:0/task:1"]
    assert peer_tasks(tf.distribute.get_strategy()) == []
