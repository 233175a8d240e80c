"""Shared pytest setup: quiet TensorFlow logging, two logical CPUs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402  (after the log level is set)

# Two logical CPU devices for the MirroredStrategy tests. This must happen before any
# TensorFlow op runs; single-device tests are unaffected (they run on the first one).
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)


def pytest_configure(config):
    """Skips are listed with their reason in the summary: the opt-in lock-step check
    (tests/reference/test_lockstep.py) says there what it needs."""
    if not {"s", "a", "A"} & set(config.option.reportchars):
        config.option.reportchars += "s"
