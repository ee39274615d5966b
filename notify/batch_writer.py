"""Writing a batch of files into one folder durably and atomically (standard library only).

Errors name the failed step and its errno, never a file name or a byte of data: names are
notice ids, data notices.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
from collections.abc import Sequence

__all__ = ["STEPS", "BatchError", "write_batch"]

STEPS = ("create", "sync", "rename")


class BatchError(OSError):
    """A batch not written; says which step failed (an index in :data:`STEPS`), no name."""

    def __init__(self, step: int, errno: int) -> None:
        self.step = step
        super().__init__(errno, f"outbox batch: {STEPS[step]} failed")


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - no C library to load
    _LIBC = None


def _syncfs(fd: int) -> bool:
    """Flush the whole file system holding ``fd`` at once (Linux); False where unavailable."""
    fn = getattr(_LIBC, "syncfs", None) if _LIBC is not None else None
    return fn is not None and fn(fd) == 0


def _safe_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and not name.startswith(".")


def write_batch(folder: int, files: Sequence[tuple[str, bytes | memoryview]]) -> None:
    """Write ``(name, data)`` into the open folder ``folder``: all durable when this returns.

    Each file goes to a hidden temporary name first (create, one write, close, relative to the
    folder's descriptor: no path walk); then the data of all of them is made durable at once
    (one ``syncfs``, else one ``fsync`` per file); only then are they renamed into place and
    the folder synced. A crash leaves under each final name either nothing or a whole earlier
    file, never a partial one. Raises :class:`BatchError` (temporaries removed).
    """
    if not files:
        return
    if not all(_safe_name(name) for name, _ in files):
        raise BatchError(0, 22)  # EINVAL at create: never a path outside the folder
    token = secrets.token_hex(6)
    temporaries: list[str] = []
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    step = 0
    try:
        for n, (name, data) in enumerate(files):
            tmp = f".{name}.{token}-{n}.tmp"
            fd = os.open(tmp, flags, 0o600, dir_fd=folder)
            temporaries.append(tmp)
            try:
                written = os.write(fd, data)
                if written < len(data):  # a short write: the rest, as often as it takes
                    view = memoryview(data)[written:]
                    while view:
                        view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        step = 1
        if not _syncfs(folder):
            for tmp in temporaries:
                fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC, dir_fd=folder)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        step = 2
        for tmp, (name, _) in zip(temporaries, files, strict=True):
            os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
        temporaries.clear()
        os.fsync(folder)
    except OSError as exc:
        for tmp in temporaries:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=folder)
        if isinstance(exc, BatchError):
            raise
        raise BatchError(step, exc.errno or 0) from None
