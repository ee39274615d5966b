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

__all__ = ["STEPS", "BatchError", "BatchFiles", "write_batch"]

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


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def _write_all(fd: int, data: bytes | memoryview) -> None:
    written = os.write(fd, data)
    if written < len(data):  # a short write: the rest, as often as it takes
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


class BatchFiles:
    """A batch of files on its way into the open folder ``folder``, durable and whole at once.

    :meth:`add` writes each file to a hidden temporary name as it comes (create, one write,
    close, relative to the folder's descriptor: no path walk), so no caller holds a batch's
    data; :meth:`commit` then makes the data of all of them durable at once (one ``syncfs``,
    else one ``fsync`` per file), renames them into place and syncs the folder. A crash leaves
    under each final name either nothing or a whole earlier file, never a partial one. Raises
    :class:`BatchError` (the batch's temporaries removed). One batch per instance.
    """

    def __init__(self, folder: int) -> None:
        self._folder = folder
        self._token = secrets.token_hex(6)
        self._names: list[str] = []
        self._temporaries: list[str] = []

    def __len__(self) -> int:
        return len(self._names)

    def add(self, name: str, data: bytes | memoryview) -> None:
        """Write ``data`` to a temporary that :meth:`commit` renames to ``name``."""
        if not _safe_name(name):
            self.discard()
            raise BatchError(0, 22)  # EINVAL at create: never a path outside the folder
        tmp = f".{name}.{self._token}-{len(self._temporaries)}.tmp"
        try:
            fd = os.open(tmp, _CREATE, 0o600, dir_fd=self._folder)
            self._temporaries.append(tmp)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            self.discard()
            raise BatchError(0, exc.errno or 0) from None
        self._names.append(name)

    def commit(self) -> None:
        """Every file added durable under its name when this returns (nothing added: nothing)."""
        if not self._names:
            return
        folder = self._folder
        step = 1
        try:
            if not _syncfs(folder):
                for tmp in self._temporaries:
                    fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC, dir_fd=folder)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            step = 2
            for tmp, name in zip(self._temporaries, self._names, strict=True):
                os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
            self._temporaries.clear()
            os.fsync(folder)
        except OSError as exc:
            self.discard()
            raise BatchError(step, exc.errno or 0) from None
        self._names.clear()

    def discard(self) -> None:
        """Remove the temporaries not yet renamed; the batch is then empty."""
        for tmp in self._temporaries:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self._folder)
        self._temporaries.clear()
        self._names.clear()


def write_batch(folder: int, files: Sequence[tuple[str, bytes | memoryview]]) -> None:
    """Write ``(name, data)`` into the open folder ``folder``: all durable when this returns.

    :class:`BatchFiles` for files already in hand; a name that could leave the folder is
    refused before anything is written. Raises :class:`BatchError` (temporaries removed).
    """
    if not files:
        return
    if not all(_safe_name(name) for name, _ in files):
        raise BatchError(0, 22)  # EINVAL at create: never a path outside the folder
    batch = BatchFiles(folder)
    for name, data in files:
        batch.add(name, data)
    batch.commit()
