"""The command line of the runner: one absl flag per ``RunConfig`` setting.

Only entry points (``clser_tf.main``) call :func:`define_flags`; importing a library
module defines no flag. Each flag's name, type, default and help come from the config
field (``clser_tf.config``), so a setting is spelled once.
"""

from __future__ import annotations

import sys
from typing import Any

from absl import flags

from clser_tf.config import RunConfig, choices_of, from_settings, resolve, setting_fields
from clser_tf.errors import error_line


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines one flag per setting of ``RunConfig`` on ``flag_values``."""
    for field in setting_fields():
        kind, help_text = field.metadata["kind"], field.metadata["help"]
        default = field.default
        if kind == "enum":
            flags.DEFINE_enum(field.name, default, list(choices_of(field)), help_text,
                              flag_values=flag_values)
        elif kind == "list":
            flags.DEFINE_list(field.name, list(default), help_text, flag_values=flag_values)
        else:
            define = getattr(flags, f"DEFINE_{kind}")
            define(field.name, default, help_text, flag_values=flag_values)


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS,
                      **overrides: Any) -> RunConfig:
    """The parsed flags, with ``overrides`` (setting name -> value) set as if given, as a
    resolved ``RunConfig``; ``ValueError`` (one line) if invalid."""
    names = [field.name for field in setting_fields()]
    config = from_settings({**{name: flag_values[name].value for name in names}, **overrides})
    return resolve(config, explicit={name for name in names if flag_values[name].present}
                   | set(overrides))


def given_flags(flag_values: flags.FlagValues = flags.FLAGS) -> dict[str, str]:
    """The runner flags set on the command line (or a flagfile), each as one argument."""
    return {field.name: flag_values[field.name].serialize() for field in setting_fields()
            if flag_values[field.name].present}


def parse_config(argv: list[str]) -> RunConfig:
    """``argv`` (program name first, e.g. ``["clser_tf", "--flagfile=flags/mnist.cfg"]``)
    parsed as the command line does, on flags of its own (no global state)."""
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    flag_values(argv)
    return config_from_flags(flag_values)


def parse_flags(argv: list[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """absl's flag parsing, with a bad flag reported as one line (absl adds a usage hint)."""
    try:
        return flag_values(argv)
    except flags.Error as error:
        sys.exit(error_line("; ".join(str(error).strip().splitlines())))
