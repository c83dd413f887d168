"""One controller per state dir: an exclusive ``flock`` on ``<state-dir>/controller.lock``.

The lock file holds the holder's pid so a refused second start can say who holds it. The
kernel drops the lock when the holder dies, even by SIGKILL, so a crash never leaves a stale
lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from controller.errors import ConfigError

LOCK_FILE = "controller.lock"


class StateLock:
    """Held for the life of `trueup run`."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``ConfigError`` naming the pid that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115  # held until release()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigError(
                f"another trueup controller (pid {holder}) is running on state dir "
                f"{self.path.parent}; stop it first or use another --state-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def holder(state_dir: Path) -> int | None:
    """The pid of the running controller on ``state_dir``, or None when nobody holds it."""
    path = state_dir / LOCK_FILE
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None
