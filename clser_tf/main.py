"""Command line: ``python -m clser_tf.main --flagfile=flags/fmnist.cfg [--flag=value ...]``.

Every error the user can fix (a bad flag value, missing or malformed data, a checkpoint
that cannot be resumed, a diverged loss) ends the process with one line on stderr,
``clser_tf: error: ...``, and exit code 1. SIGINT/SIGTERM end it after a checkpoint with
exit code 130/143 and a line saying how to resume (run the same command again).
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from clser_tf import cli
from clser_tf.distribution import make_strategy
from clser_tf.errors import USER_ERRORS, Interrupted, error_line
from clser_tf.runner import run

FLAGS = flags.FLAGS
cli.define_flags(FLAGS)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]!r}: pass settings as --flags.")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines drown the results
    try:
        config = cli.config_from_flags(FLAGS)
        # Before any other TensorFlow work.
        strategy = make_strategy(config.strategy, config.collective_timeout_s)
    except ValueError as error:
        sys.exit(error_line(error))
    try:
        run(config, strategy)
    except USER_ERRORS as error:
        sys.exit(error_line(error))
    except Interrupted as interrupted:
        print(f"clser_tf: {interrupted}", file=sys.stderr, flush=True)
        sys.exit(interrupted.exit_code)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
