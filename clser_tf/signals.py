"""SIGINT/SIGTERM during a run: the first asks training to stop cleanly, a second stops it."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any


class StopRequest:
    """SIGINT/SIGTERM handlers (main thread only) asking training to stop cleanly.

    The first signal is only noted (``signum``): training stops at the end of the current
    compiled call, after writing a checkpoint. The previous handlers are then put back, so
    a second signal acts at once (SIGINT: KeyboardInterrupt; SIGTERM: exit), without one.
    """

    def __init__(self, install: bool):
        self.signum: int | None = None
        self._install = install and threading.current_thread() is threading.main_thread()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        if self._install:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        self._put_back()

    def _put_back(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    def poll(self) -> None:
        """Called by the training guard after every compiled call, before it reads
        ``signum`` (a cluster's request agrees on the step here; one machine has nothing
        to agree on)."""

    def _note(self, signum: int) -> None:
        self.signum = signum

    def _handle(self, signum: int, frame) -> None:
        self._note(signum)
        self._put_back()
        os.write(2, f"\nclser_tf: {signal.Signals(signum).name} received: stopping after the "
                    "current step to write a checkpoint (send it again to stop at once, "
                    "without one).\n".encode())
