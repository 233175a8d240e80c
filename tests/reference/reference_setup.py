"""The set-up every torch-side script shares: the official checkout named by
``CLSER_REFERENCE_DIR`` (made absolute) first on ``sys.path`` and as the working folder (the
official code lists its own folders from there), and torch's thread count
(``CLSER_REFERENCE_THREADS``, 2 by default). Import it before any official module."""

from __future__ import annotations

import os
import sys

import torch

START_DIR = os.getcwd()  # where the process started: resolve its path arguments from here
REFERENCE_DIR = os.path.abspath(os.environ["CLSER_REFERENCE_DIR"])
sys.path.insert(0, REFERENCE_DIR)
os.chdir(REFERENCE_DIR)
torch.set_num_threads(int(os.environ.get("CLSER_REFERENCE_THREADS", "2")))


def from_start(path: str) -> str:
    """``path`` as given on the command line, absolute."""
    return os.path.join(START_DIR, path)
