"""Every flagfile holds exactly SPEC.md's row for its benchmark and buffer, and parses."""

import os

import pytest
from absl import flags

from clser_tf import config

FLAGS = flags.FLAGS
FLAGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "flags")

# SPEC.md's table: (lr, batch, replay batch, epochs, λ, r_s, α_s, r_p, α_p) per row.
SEQ_MNIST = {200: (0.03, 10, 128, 1, 2.0, 0.9, 0.99, 1.0, 0.99),
             500: (0.1, 10, 32, 1, 2.0, 0.9, 0.99, 1.0, 0.99),
             5120: (0.1, 10, 32, 1, 2.0, 0.8, 0.99, 1.0, 0.99)}
SEQ_CIFAR10 = {200: (0.1, 32, 32, 50, 0.15, 0.1, 0.999, 0.3, 0.999),
               500: (0.1, 32, 32, 50, 0.15, 0.1, 0.999, 0.9, 0.999),
               5120: (0.1, 32, 32, 50, 0.15, 0.8, 0.999, 1.0, 0.999)}
SPEC_ROWS = {
    "seq-fmnist": SEQ_MNIST, "seq-mnist": SEQ_MNIST,
    "seq-cifar10": SEQ_CIFAR10, "seq-cifar100": SEQ_CIFAR10,
    "seq-tinyimg": {200: (0.05, 32, 32, 50, 0.1, 0.04, 0.999, 0.08, 0.999),
                    500: (0.05, 32, 32, 50, 0.1, 0.05, 0.999, 0.08, 0.999),
                    5120: (0.05, 32, 32, 50, 0.1, 0.07, 0.999, 0.08, 0.999)},
    "perm-mnist": {200: (0.2, 128, 128, 1, 1.0, 0.8, 0.99, 1.0, 0.99),
                   500: (0.2, 128, 128, 1, 1.0, 0.8, 0.99, 1.0, 0.99),
                   5120: (0.2, 128, 128, 1, 1.0, 0.9, 0.99, 1.0, 0.99)},
    "rot-mnist": dict.fromkeys((200, 500, 5120), (0.2, 128, 128, 1, 0.75, 1.0, 0.999, 1.0, 0.99)),
    # mnist-360 has no epochs in SPEC: the stream is streamed once.
    "mnist-360": {200: (0.2, 16, 16, 1, 0.75, 1.0, 0.999, 1.0, 0.99),
                  500: (0.2, 16, 32, 1, 1.25, 0.9, 0.99, 1.0, 0.99),
                  1000: (0.2, 16, 128, 1, 0.75, 0.9, 0.99, 1.0, 0.99)},
    "gcil-cifar100/uniform": {200: (0.1, 32, 32, 200, 0.15, 0.6, 0.999, 0.7, 0.999),
                              500: (0.1, 32, 32, 100, 0.15, 0.6, 0.999, 0.9, 0.999),
                              1000: (0.1, 32, 32, 100, 0.15, 0.6, 0.999, 0.8, 0.999)},
    "gcil-cifar100/longtail": {200: (0.1, 32, 32, 100, 0.1, 0.6, 0.999, 0.7, 0.999),
                               500: (0.1, 32, 32, 100, 0.1, 0.6, 0.999, 0.7, 0.999),
                               1000: (0.1, 32, 32, 100, 0.1, 0.6, 0.999, 0.8, 0.999)},
}
# Flagfile name stem -> SPEC row key; "-<buffer>" is appended for buffers other than 200.
STEMS = {"fmnist": "seq-fmnist", "mnist": "seq-mnist", "cifar": "seq-cifar10",
         "cifar100": "seq-cifar100", "tinyimg": "seq-tinyimg", "perm-mnist": "perm-mnist",
         "rot-mnist": "rot-mnist", "mnist-360": "mnist-360",
         "gcil-uniform": "gcil-cifar100/uniform", "gcil-longtail": "gcil-cifar100/longtail"}
HYPERPARAMETERS = ("lr", "batch_size", "replay_batch_size", "epochs", "reg_weight",
                   "stable_update_freq", "stable_alpha", "plastic_update_freq", "plastic_alpha")


def _expected_files():
    files = {}
    for stem, row in STEMS.items():
        for buffer, values in SPEC_ROWS[row].items():
            name = f"{stem}.cfg" if buffer == 200 else f"{stem}-{buffer}.cfg"
            benchmark, _, weight_dist = row.partition("/")
            expected = {"benchmark": benchmark, "buffer_size": buffer,
                        **dict(zip(HYPERPARAMETERS, values))}
            if weight_dist:
                expected["weight_dist"] = weight_dist
            files[name] = expected
    return files


EXPECTED = _expected_files()


def _read(name):
    settings = {}
    with open(os.path.join(FLAGS_DIR, name)) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                key, value = line.strip().removeprefix("--").split("=", 1)
                assert key not in settings, f"{name} sets --{key} twice"
                settings[key] = value
    return settings


def test_there_is_one_flagfile_per_spec_row_and_buffer():
    assert sorted(os.listdir(FLAGS_DIR)) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_flagfile_holds_the_spec_values_and_parses(name):
    settings = _read(name)
    expected = EXPECTED[name]
    assert set(settings) == set(expected)
    for key, value in expected.items():
        assert type(value)(settings[key]) == value, f"{name}: --{key}={settings[key]}"
    FLAGS.unparse_flags()
    try:
        FLAGS(["clser_tf", f"--flagfile={os.path.join(FLAGS_DIR, name)}"])
        run_config = config.config_from_flags(FLAGS)
    finally:
        FLAGS.unparse_flags()
    for key, value in expected.items():
        assert getattr(run_config, key) == value
