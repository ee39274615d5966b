"""Writing batches of files into one folder durably and atomically, one batch at a time or as a
stream synced and named in the background (standard library, and ``notify/_files.c`` where it
was built).

Errors name the failed step and its errno, never a file name or a byte of data: names are
notice ids, data notices.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import resource
import secrets
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import ModuleType
from typing import Generic, TypeVar

from matching.native import files_module

__all__ = ["STEPS", "BatchError", "BatchFiles", "BatchStream", "allow_open_files", "write_batch"]

Tag = TypeVar("Tag")

STEPS = ("create", "sync", "naming")


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
_UNNAMED = getattr(os, "O_TMPFILE", 0) | os.O_WRONLY | os.O_CLOEXEC
_PROC_FD = "/proc/self/fd"
# Files whose descriptor a batch may hold until it is named, at most: what the soft limit
# leaves beyond this margin (later files of the batch take a temporary name instead).
_FD_MARGIN = 256
# An unnamed file (O_TMPFILE) is the default where Linux allows it; its first refusal (a file
# system without it, no /proc) turns it off for the process, and temporary names are used.
_unnamed_ok = hasattr(os, "O_TMPFILE") and os.path.isdir(_PROC_FD)


class _Descriptors:
    """Unnamed files' descriptors held open, and how many may be: one count for every batch
    in flight together (a :class:`BatchStream` holds two, one of them named in its thread)."""

    def __init__(self) -> None:
        self.room = _fd_room() if _unnamed_ok else 0
        self.held = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Count one more descriptor held, if there is room for it."""
        with self._lock:
            if self.held >= self.room:
                return False
            self.held += 1
            return True

    def give(self, count: int = 1) -> None:
        """``count`` descriptors closed."""
        with self._lock:
            self.held -= count


def _fd_room() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 16
    return max(0, soft - _FD_MARGIN)


def allow_open_files(count: int) -> None:
    """Raise this process's soft limit on open files so that ``count`` unnamed files fit in
    the descriptor room beside the margin, as far as the hard limit allows; never lowers it.

    Many systems start processes at a soft limit of 1 024 (the hard one far above): a stream's
    two batches of 1 000 would then name most of their files by temporaries (about 42 µs of
    kernel time a file against 33). For a process of its own, such as a drafting worker:
    descriptors above 1 023 would break any ``select()`` of the process.

    Also grows the process's descriptor table to ``count`` files at once. Grown later, while
    a thread shares it (a stream's), each doubling waits for an RCU grace period: ~10 ms, two
    or three times in every drafting worker (measured here).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + _FD_MARGIN
    if soft != resource.RLIM_INFINITY and soft < want:
        raised = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if raised > soft:
            with contextlib.suppress(OSError, ValueError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    _grow_descriptor_table(count)


def _grow_descriptor_table(count: int) -> None:
    """Make the descriptor table hold ``count`` more files than are open now (best effort)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(OSError):
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            top = fd + count
            if soft != resource.RLIM_INFINITY:
                top = min(top, soft - 1)
            if top > fd:
                os.dup2(fd, top, inheritable=False)
                os.close(top)
        finally:
            os.close(fd)


# Where it was built, a batch's files are named in one native call (and a stream names each
# batch in its thread); else one by one from Python, in the caller's thread.
_native = files_module()

_AT_EMPTY_PATH = 0x1000
_linkat = getattr(_LIBC, "linkat", None) if _LIBC is not None else None
if _linkat is not None:
    _linkat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
# An unnamed file is named by its descriptor (linkat with AT_EMPTY_PATH) where the kernel lets
# its opener do so (Linux 6.10, or CAP_DAC_READ_SEARCH): that spares resolving
# /proc/self/fd/N, 12 against 15 us of kernel time for a link and its close (measured here,
# 20 000 files). Its first refusal turns it off for the process; /proc/self/fd is used then.
_by_descriptor_ok = _linkat is not None


def _link_unnamed(fd: int, name: str, folder: int) -> None:
    """Give the unnamed file open as ``fd`` the name ``name`` in the open folder ``folder``."""
    global _by_descriptor_ok
    if _by_descriptor_ok:
        assert _linkat is not None
        if _linkat(fd, b"", folder, os.fsencode(name), _AT_EMPTY_PATH) == 0:
            return
        code = ctypes.get_errno()
        # ENOENT: a kernel that lets only a privileged caller link by descriptor (before 6.10).
        if code not in (errno.ENOENT, errno.EPERM, errno.EINVAL, errno.ENOSYS):
            raise OSError(code, os.strerror(code))
        _by_descriptor_ok = False
    os.link(f"{_PROC_FD}/{fd}", name, dst_dir_fd=folder, follow_symlinks=True)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    written = os.write(fd, data)
    if written < len(data):  # a short write: the rest, as often as it takes
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


class BatchFiles:
    """A batch of files on its way into the open folder ``folder``, durable and whole at once.

    :meth:`add` writes each file as it comes, so no caller holds a batch's data: to an unnamed
    file (``O_TMPFILE``, its descriptor kept; opened in ``birthplace``, another folder of the
    same file system, where one is given, else in the folder) where Linux allows it, else to a
    hidden temporary name (create, one write, close, relative to the folder's descriptor: no
    path walk). :meth:`commit` then makes the data of all of them durable at once (one
    ``syncfs``, else one ``fsync`` per file), gives each its name (a link of the unnamed file,
    after removing an earlier file of that name; a rename of the temporary) and syncs the
    folder. A crash leaves under each final name either nothing or a whole earlier file, never
    a partial one: an unnamed file that was never linked vanishes with its last descriptor.
    Raises :class:`BatchError` (the batch's files not yet named removed). One batch per
    instance.

    Unnamed files cost less kernel time than temporary names and renames (no second directory
    entry to add and remove: about 33 against 42 µs a file on ext4, measured here).
    """

    def __init__(
        self, folder: int, descriptors: _Descriptors | None = None, birthplace: int | None = None
    ) -> None:
        self._folder = folder
        # Where its unnamed files are opened: the folder, or another folder of its file system.
        self._birthplace = folder if birthplace is None else birthplace
        self._token = secrets.token_hex(6)
        self._names: list[str] = []
        # Per file, in order: its unnamed file's descriptor, or its temporary name.
        self._pending: list[int | str] = []
        self._temporaries = 0
        self._fds = descriptors or _Descriptors()

    def __len__(self) -> int:
        return len(self._names)

    def add(self, name: str, data: bytes | memoryview) -> None:
        """Write ``data`` to a file that :meth:`commit` names ``name``."""
        if not _safe_name(name):
            self.discard()
            raise BatchError(0, 22)  # EINVAL at create: never a path outside the folder
        try:
            fd = self._unnamed() if self._fds.take() else -1
            if fd >= 0:
                self._pending.append(fd)
                _write_all(fd, data)
            else:
                tmp = f".{name}.{self._token}-{len(self._pending)}.tmp"
                fd = os.open(tmp, _CREATE, 0o600, dir_fd=self._folder)
                self._pending.append(tmp)
                self._temporaries += 1
                try:
                    _write_all(fd, data)
                finally:
                    os.close(fd)
        except OSError as exc:
            self.discard()
            raise BatchError(0, exc.errno or 0) from None
        self._names.append(name)

    def _unnamed(self) -> int:
        """An unnamed file in the folder, or -1 where the file system does not make one; its
        descriptor already counted (:meth:`_Descriptors.take`), and no longer if none is made."""
        global _unnamed_ok
        try:
            return os.open(".", _UNNAMED, 0o600, dir_fd=self._birthplace)
        except OSError as exc:
            self._fds.give()
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
            _unnamed_ok = False
            self._fds.room = 0
            return -1

    def commit(self) -> None:
        """Every file added durable under its name when this returns (nothing added: nothing)."""
        if not self._names:
            return
        step = 1
        try:
            self._sync_data()
            step = 2
            self._give_names()
            os.fsync(self._folder)
        except OSError as exc:
            self.discard()
            raise BatchError(step, exc.errno or 0) from None
        self._names.clear()

    def sync(self) -> None:
        """Make the data of every file added durable, then the folder: names given in it before
        this call are durable when it returns. The files keep no name yet (:meth:`name`).

        May run in another thread while the caller writes another batch, never this one.
        Raises :class:`BatchError` (sync step), leaving the batch for :meth:`discard`.
        """
        try:
            if not self._sync_data():
                os.fsync(self._folder)
        except OSError as exc:
            raise BatchError(1, exc.errno or 0) from None

    def name(self) -> None:
        """Give every file its name, once :meth:`sync` has returned; the names are durable at
        the folder's next sync. Raises :class:`BatchError` (naming step; files not yet named
        removed)."""
        try:
            self._give_names()
        except OSError as exc:
            self.discard()
            raise BatchError(2, exc.errno or 0) from None
        self._names.clear()

    def _sync_data(self) -> bool:
        """The files' data durable; True if by syncing the whole file system (names too)."""
        if _syncfs(self._folder):
            return True
        for file in self._pending:
            if isinstance(file, int):
                os.fsync(file)
                continue
            fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self._folder)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return False

    def _give_names(self) -> None:
        if _native is not None and not self._temporaries:
            self._give_names_natively(_native)
            return
        folder = self._folder
        for n, (file, name) in enumerate(zip(self._pending, self._names, strict=True)):
            if isinstance(file, int):
                self._link(file, name)
                os.close(file)
                self._fds.give()
            else:
                os.replace(file, name, src_dir_fd=folder, dst_dir_fd=folder)
            self._pending[n] = ""  # named: nothing left to remove
        self._pending.clear()

    def _give_names_natively(self, native: ModuleType) -> None:
        """Every file unnamed: all linked and closed in one call, without the GIL."""
        global _by_descriptor_ok
        names = [os.fsencode(name) for name in self._names]
        named, code, by_descriptor = native.name_unnamed(
            self._folder, self._pending, names, _by_descriptor_ok
        )
        if not by_descriptor:
            _by_descriptor_ok = False
        self._fds.give(named)
        self._pending[:named] = [""] * named  # named: nothing left to remove
        if code:
            raise OSError(code, os.strerror(code))
        self._pending.clear()

    def _link(self, fd: int, name: str) -> None:
        try:
            _link_unnamed(fd, name, self._folder)
        except FileExistsError:  # a draft written again: nothing under the name, then the new
            os.unlink(name, dir_fd=self._folder)
            _link_unnamed(fd, name, self._folder)

    def discard(self) -> None:
        """Drop the files not yet named; the batch is then empty."""
        for file in self._pending:
            with contextlib.suppress(OSError):
                if isinstance(file, int):
                    self._fds.give()
                    os.close(file)  # its last descriptor: the unnamed file is gone
                elif file:
                    os.unlink(file, dir_fd=self._folder)
        self._pending.clear()
        self._names.clear()
        self._temporaries = 0


class BatchStream(Generic[Tag]):
    """Batches of files into one open folder, one after another, each made durable in a thread
    while the caller writes the next: the caller never waits for the disk but at the end.

    :meth:`add` writes a file into the current batch (:class:`BatchFiles`); :meth:`end_batch`
    closes it with a tag. A thread then syncs it (its data, and the names given just before)
    while the next batch is written, and gives its files their names as soon as the sync
    returns (where ``notify/_files.c`` was built: one call without the GIL; else the caller's
    thread names them at the end of that next batch, since a thread naming file by file from
    Python would take the GIL from the caller twice a file). The next sync makes the names
    durable. ``durable(tag)`` is called, in the caller's thread and in order, once a batch's
    data and names are durable: after the two batches that follow it end, or at
    :meth:`finish`. Empty batches pass too (a tag with no file).

    ``birthplace``: an open folder of the same file system, empty and the stream's alone,
    where its unnamed files are opened (the folder itself by default). A new file's inode
    goes where its folder's do: two drafting workers writing into one folder from folders
    of their own no longer share the inode table blocks a sync is writing, nor the group's
    bitmap (measured: ``notify.drafting._births``).

    Raises :class:`BatchError` from :meth:`add`, :meth:`end_batch` or :meth:`finish`, after
    which :meth:`discard` ends the stream: batches already named stay, whole (their tags were
    not reported), the others vanish. One thread of the caller's at a time.
    """

    def __init__(
        self, folder: int, durable: Callable[[Tag], None], *, birthplace: int | None = None
    ) -> None:
        self._folder = folder
        self._durable = durable
        self._birthplace = birthplace
        self._fds = _Descriptors()  # the batch being written and the one being synced
        self._files = BatchFiles(folder, self._fds, birthplace)
        # The batch being synced, with its tag; then the tag whose names that sync makes durable.
        self._syncing: tuple[BatchFiles, Tag] | None = None
        self._naming: list[Tag] = []
        # One thread for the stream's life: starting a thread per batch made the caller wait
        # for each to be scheduled (9-25 ms a drafting worker, 10 batches).
        self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-sync")
        self._sync_done: Future[None] | None = None  # the batch being synced, until waited for
        self._names_in_thread = _native is not None

    def __len__(self) -> int:
        """Files in the current batch."""
        return len(self._files)

    def add(self, name: str, data: bytes | memoryview) -> None:
        self._files.add(name, data)

    def end_batch(self, tag: Tag) -> None:
        """Close the current batch; ``tag`` is what ``durable`` is called with for it."""
        self._wait()
        for done in self._naming:
            self._durable(done)
        self._naming = []
        if self._syncing is not None:
            synced, synced_tag = self._syncing
            self._syncing = None
            if not self._names_in_thread:
                synced.name()
            self._naming.append(synced_tag)
        batch, self._files = self._files, BatchFiles(self._folder, self._fds, self._birthplace)
        self._syncing = (batch, tag)
        self._sync_done = self._syncer.submit(self._sync, batch)

    def finish(self, tag: Tag) -> None:
        """Close the current batch with ``tag`` and wait until every batch is durable."""
        self.end_batch(tag)
        self._wait()
        assert self._syncing is not None  # end_batch leaves one
        synced, synced_tag = self._syncing
        self._syncing = None
        if not self._names_in_thread:
            synced.name()
        try:
            os.fsync(self._folder)
        except OSError as exc:
            raise BatchError(1, exc.errno or 0) from None
        for done in [*self._naming, synced_tag]:
            self._durable(done)
        self._naming = []
        self._syncer.shutdown()

    def discard(self) -> None:
        """End the stream after a failure: files not yet named are removed, once any sync under
        way has returned (it cannot be stopped)."""
        if self._sync_done is not None:
            self._sync_done.exception()  # waits; the failure was, or will not be, reported
            self._sync_done = None
        self._syncer.shutdown()
        if self._syncing is not None:
            self._syncing[0].discard()
            self._syncing = None
        self._files.discard()
        self._naming = []

    def _sync(self, batch: BatchFiles) -> None:
        """In the stream's thread: the batch durable, then named where that is done here.
        Raises :class:`BatchError`, which :meth:`_wait` raises again in the caller's thread."""
        batch.sync()
        if self._names_in_thread:
            batch.name()

    def _wait(self) -> None:
        if self._sync_done is not None:
            done, self._sync_done = self._sync_done, None
            done.result()


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
