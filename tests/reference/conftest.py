"""The lock-step check is opt-in: when it is skipped, pytest's summary says why."""


def pytest_configure(config):
    if "s" not in config.option.reportchars and "a" not in config.option.reportchars:
        config.option.reportchars += "s"
