"""Writing a batch of files into one folder durably and atomically; also a child-process loop.

Standard library only, and no import from this package: ``notify.outbox`` runs this file as a
script (``python -I -S batch_writer.py FOLDER``) so a batch's system calls run in a process of
their own, on the other core, instead of queueing for the GIL behind the renderer.

Wire format on the child's stdin, per batch: a header ``<II`` (file count, payload length),
then the payload: per file a ``<HI`` (name length, data length), the name (ASCII) and the data.
The child answers ``<BBi`` per batch on stdout: status (0 written, 1 refused), the failed step
and its errno. It never echoes a name or a byte of data: names are notice ids, data notices.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import struct
import sys
from collections.abc import Sequence

__all__ = ["BATCH_HEADER", "FILE_HEADER", "REPLY", "STEPS", "serve", "write_batch"]

BATCH_HEADER = struct.Struct("<II")
FILE_HEADER = struct.Struct("<HI")
REPLY = struct.Struct("<BBi")
STEPS = ("create", "sync", "rename", "protocol")


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
        raise BatchError(3, 22)  # EINVAL: never a path outside the folder
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


def _read_exactly(fd: int, size: int) -> bytearray | None:
    """``size`` bytes from ``fd``, or None at end of input (a batch cut short is dropped)."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:
            return None
        got += n
    return buffer


def _parse(payload: bytearray, count: int) -> list[tuple[str, memoryview]]:
    view = memoryview(payload)
    files: list[tuple[str, memoryview]] = []
    pos = 0
    for _ in range(count):
        name_len, data_len = FILE_HEADER.unpack_from(view, pos)
        pos += FILE_HEADER.size
        name = bytes(view[pos : pos + name_len]).decode("ascii")
        pos += name_len
        files.append((name, view[pos : pos + data_len]))
        pos += data_len
    if pos != len(payload):
        raise ValueError("payload length")
    return files


def serve(folder_path: str, stdin: int = 0, stdout: int = 1) -> int:
    """The child's loop: one answer per batch read from ``stdin``, until end of input."""
    os.makedirs(folder_path, exist_ok=True)
    folder = os.open(folder_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        while True:
            header = _read_exactly(stdin, BATCH_HEADER.size)
            if header is None:
                return 0
            count, size = BATCH_HEADER.unpack(header)
            payload = _read_exactly(stdin, size)
            if payload is None:
                return 0
            try:
                write_batch(folder, _parse(payload, count))
                reply = REPLY.pack(0, 0, 0)
            except BatchError as exc:
                reply = REPLY.pack(1, exc.step, exc.errno or 0)
            except (ValueError, UnicodeDecodeError, struct.error):
                reply = REPLY.pack(1, 3, 0)
            os.write(stdout, reply)
    finally:
        os.close(folder)


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
