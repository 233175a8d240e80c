"""The run's folders: created and proven writable before any work, and held by an
operating-system lock while the run writes to them.

The lock is ``flock`` on the folder itself (no lock file is written): the kernel releases it
when the holding process ends in any way, SIGKILL included, so a crashed run never blocks
the next one. The holder's process id is read back from ``/proc/locks`` (Linux) to name it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator

from clser_tf.errors import FolderError


def prepare(flag: str, path: str) -> None:
    """Creates ``path`` if needed and proves it writable (a temporary file, removed), or
    raises :class:`FolderError` naming ``--flag``, the path and the OS error."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise FolderError(f"--{flag}={path!r} is invalid: it cannot be created "
                          f"({_reason(error)}).") from None
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise FolderError(f"--{flag}={path!r} is invalid: it cannot be written "
                          f"({_reason(error)}).") from None


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def holder_pid(path: str) -> int | None:
    """The process holding a ``flock`` on ``path``, from ``/proc/locks`` (None if unknown)."""
    try:
        st = os.stat(path)
        with open("/proc/locks", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == device:
            return int(fields[4])
    return None


@contextlib.contextmanager
def locked(folders: dict[str, str]) -> Iterator[None]:
    """Holds an exclusive lock on each folder (``{flag: path}``, created if missing) for
    the ``with`` block; raises :class:`FolderError` at once if another process holds one."""
    descriptors, seen = [], set()
    try:
        for flag, path in folders.items():
            if os.path.realpath(path) in seen:
                continue
            seen.add(os.path.realpath(path))
            prepare(flag, path)
            fd = os.open(path, os.O_RDONLY)
            descriptors.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                pid = holder_pid(path)
                holder = f"process {pid}" if pid is not None else "another process"
                raise FolderError(
                    f"--{flag}={path!r} is in use by {holder} (a run writing to it): wait "
                    "for it to end, stop it, or use another folder.") from None
        yield
    finally:
        for fd in descriptors:
            os.close(fd)  # releases the lock
