"""Command line: ``python -m clser_tf.main --flagfile=flags/fmnist.cfg [--flag=value ...]``."""

from __future__ import annotations

import sys

from absl import app, flags, logging

from clser_tf.config import config_from_flags
from clser_tf.distribution import make_strategy
from clser_tf.runner import run
from clser_tf.sources import DatasetError

FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]!r}: pass settings as --flags.")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines drown the results
    try:
        config = config_from_flags(FLAGS)
        strategy = make_strategy(config.strategy)  # before any other TensorFlow work
    except ValueError as error:
        sys.exit(f"clser_tf: error: {error}")
    try:
        run(config, strategy)
    except DatasetError as error:
        sys.exit(f"clser_tf: error: {error}")


if __name__ == "__main__":
    app.run(main)
