"""Command line: ``python -m clser_tf.main --flagfile=flags/fmnist.cfg [--flag=value ...]``.

Every error the user can fix (a bad flag value, missing or malformed data, a checkpoint
that cannot be resumed, a diverged loss) ends the process with one line on stderr,
``clser_tf: error: ...``, and exit code 1. SIGINT/SIGTERM end it after a checkpoint with
exit code 130/143 and a line saying how to resume (run the same command again).
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from clser_tf.checkpoint import CheckpointError, TrainingDiverged
from clser_tf.config import config_from_flags
from clser_tf.distribution import make_strategy
from clser_tf.runner import Interrupted, run
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
    except (DatasetError, CheckpointError, TrainingDiverged) as error:
        sys.exit(f"clser_tf: error: {error}")
    except Interrupted as interrupted:
        print(f"clser_tf: {interrupted}", file=sys.stderr, flush=True)
        sys.exit(interrupted.exit_code)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a bad flag reported as one line (absl adds a usage hint)."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        sys.exit("clser_tf: error: " + "; ".join(str(error).strip().splitlines()))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
