"""The store's hand-over: a process waiting for the store says so (``<store>.wanted``); a holder sees it.

A process that keeps the store open while idle (``events serve``) gives it back as soon as
another leakwatch process waits for it. The waiter says so through a file next to the store,
``<store>.wanted`` (empty, mode 0600, nothing personal in it or in its name), on which it holds
a *shared* ``flock`` for as long as it waits; the holder asks, a few times a second, for an
*exclusive* ``flock`` without blocking: refused, someone waits.

Why a lock on a file rather than the file's presence or its age:

- the kernel drops a process's locks when it dies, however it dies: a waiter killed while
  waiting leaves the file behind but no lock, and nothing reads as wanted. The file itself
  is never removed (as ``<store>.lock`` is never removed): removing it while a waiter holds
  its lock would leave that waiter announcing on a file no holder opens any more;
- any number of waiters share the lock; the store stays wanted until the last has opened
  the store or given up;
- no clock is read, so no threshold of staleness to choose and no clock step to survive.

The holder's probe holds the exclusive lock for the time of two system calls. A waiter that
meets it takes its shared lock at its next try (it tries again each time it finds the store
busy); announcing is best-effort either way: a waiter that cannot create or open the file (a
read-only folder, another user's file) waits as before, unannounced. The same assumption as
``<store>.lock``: the store is on a local file system where ``flock`` works between processes.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["Waiting", "WantedProbe", "wanted_path"]

_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


def wanted_path(store: Path) -> Path:
    return store.with_name(store.name + ".wanted")


def _open(store: Path) -> int | None:
    try:
        return os.open(wanted_path(store), _FLAGS, 0o600)
    except OSError:
        return None


class Waiting:
    """A waiter's announcement: :meth:`renew` at each busy try, :meth:`withdraw` once done."""

    def __init__(self, store: Path) -> None:
        self._store = store
        self._fd: int | None = None
        self._held = False

    def renew(self) -> None:
        """Hold the shared lock if not yet held (the holder's probe may have been in the way)."""
        if self._held:
            return
        if self._fd is None:
            self._fd = _open(self._store)
            if self._fd is None:
                return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return
        self._held = True

    def withdraw(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
        self._held = False

    def __enter__(self) -> Waiting:
        return self

    def __exit__(self, *exc: object) -> None:
        self.withdraw()


class WantedProbe:
    """The holder's question, "does another process wait for the store?", cheap enough to ask
    several times a second. Keeps the file open between questions (no lock held)."""

    def __init__(self, store: Path) -> None:
        self._store = store
        self._fd: int | None = None

    def __call__(self) -> bool:
        if self._fd is None:
            self._fd = _open(self._store)
            if self._fd is None:
                return False  # no waiter can have announced on a file that cannot be opened
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        return False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
