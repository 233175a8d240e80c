"""Every flagfile holds exactly SPEC.md's row (clser_tf.spec_table) for its benchmark and
buffer, and parses."""

import os

import pytest

from clser_tf import cli
from clser_tf.spec_table import SPEC_TABLE, spec_settings

FLAGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "flags")

# Flagfile name stem -> SPEC row key; "-<buffer>" is appended for buffers other than 200.
STEMS = {"fmnist": "seq-fmnist", "mnist": "seq-mnist", "cifar": "seq-cifar10",
         "cifar100": "seq-cifar100", "tinyimg": "seq-tinyimg", "perm-mnist": "perm-mnist",
         "rot-mnist": "rot-mnist", "mnist-360": "mnist-360",
         "gcil-uniform": "gcil-cifar100/uniform", "gcil-longtail": "gcil-cifar100/longtail"}


def _expected_files():
    files = {}
    for stem, row in STEMS.items():
        for buffer in SPEC_TABLE[row]:
            name = f"{stem}.cfg" if buffer == 200 else f"{stem}-{buffer}.cfg"
            files[name] = spec_settings(row, buffer)
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
    run_config = cli.parse_config(["clser_tf", f"--flagfile={os.path.join(FLAGS_DIR, name)}"])
    for key, value in expected.items():
        assert run_config.flat()[key] == value
