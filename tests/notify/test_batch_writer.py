"""Batches of .eml files written durably and whole; a refused batch leaves no temporary."""

from __future__ import annotations

import contextlib
import email
import errno
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from types import ModuleType

import pytest

import notify.batch_writer as bw
from notify.batch_writer import BatchError, write_batch
from notify.outbox import EmlFile, build_emls, write_durably
from notify.render import NoticeRenderer
from tests.notify.test_completeness import make_ctx

SENDER = "Opérateur Exemple <securite@operateur.example>"
WHEN = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)


def _files(outbox: Path, n: int) -> list[EmlFile]:
    renderer = NoticeRenderer()
    items = []
    for i in range(n):
        ctx = replace(make_ctx("fr" if i % 2 else "en"), notice_id=f"{i:032x}")
        items.append((renderer.render(ctx), f"client{i}@example.org"))
    built = build_emls(outbox, items, sender=SENDER, date=WHEN)
    assert all(isinstance(f, EmlFile) for f in built)
    return [f for f in built if isinstance(f, EmlFile)]


def test_a_refused_batch_names_its_step_only_and_leaves_no_temporary(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    files = _files(outbox, 3)
    (outbox / files[1].path.name).mkdir(parents=True)  # a folder where a file must go
    with pytest.raises(BatchError) as caught:
        write_durably(outbox, files)
    message = str(caught.value)
    assert "naming" in message and files[1].path.stem not in message
    assert not [p for p in outbox.iterdir() if p.name.startswith(".")]
    # Nothing stops the next batch.
    (outbox / files[1].path.name).rmdir()
    write_durably(outbox, files)
    assert sorted(p.name for p in outbox.iterdir()) == sorted(f.path.name for f in files)
    for f in files:
        written = (outbox / f.path.name).read_bytes()
        assert written == f.data
        msg = email.message_from_bytes(written, policy=default)
        assert isinstance(msg, EmailMessage) and msg.get_content_type() == "multipart/alternative"


def test_write_batch_refuses_names_outside_the_folder(tmp_path: Path) -> None:
    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        for name in ("../escape.eml", ".hidden.eml", "a/b.eml", ""):
            with pytest.raises(BatchError):
                write_batch(folder, [(name, b"x")])
        write_batch(folder, [("ok.eml", b"data")])
    finally:
        os.close(folder)
    assert [p.name for p in tmp_path.iterdir()] == ["ok.eml"]
    assert (tmp_path / "ok.eml").read_bytes() == b"data"


def _hidden(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.fixture(
    params=["unnamed", "unnamed-by-proc", "unnamed-native", "unnamed-by-proc-native", "temporary"]
)
def naming(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every way a batch's files wait for their names: unnamed (O_TMPFILE), then named by their
    descriptor or through /proc/self/fd, one by one from Python or all in one native call
    (``notify/_files.c``), or under a hidden name."""
    param = str(request.param)
    if param.endswith("-native"):
        if bw._native is None:
            pytest.skip("notify._files was not built")
    else:
        monkeypatch.setattr(bw, "_native", None)
    if param == "temporary":
        monkeypatch.setattr(bw, "_unnamed_ok", False)
        return "temporary"
    if not bw._unnamed_ok:
        pytest.skip("no O_TMPFILE or /proc here")
    if param.startswith("unnamed-by-proc"):
        monkeypatch.setattr(bw, "_by_descriptor_ok", False)
    elif not bw._by_descriptor_ok:
        pytest.skip("this kernel does not link a file by its descriptor")
    return "unnamed-native" if param.endswith("-native") else "unnamed"


def test_a_batch_is_written_as_it_comes_and_named_only_when_durable(
    tmp_path: Path, naming: str
) -> None:
    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        batch = bw.BatchFiles(folder)
        batch.add("a.eml", b"first")
        batch.add("b.eml", memoryview(b"second"))
        assert len(batch) == 2
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []
        # Written, not yet under their names: unnamed files show no name at all.
        assert len(_hidden(tmp_path)) == (0 if naming.startswith("unnamed") else 2)
        batch.commit()
        assert len(batch) == 0 and _hidden(tmp_path) == []
        assert (tmp_path / "a.eml").read_bytes() == b"first"
        assert (tmp_path / "b.eml").read_bytes() == b"second"
        bw.BatchFiles(folder).commit()  # an empty batch writes nothing
        again = bw.BatchFiles(folder)  # a draft written again replaces the earlier file
        again.add("a.eml", b"rewritten")
        again.commit()
    finally:
        os.close(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.eml", "b.eml"]
    assert (tmp_path / "a.eml").read_bytes() == b"rewritten"
    assert oct((tmp_path / "a.eml").stat().st_mode & 0o777) == oct(0o600)


def _unnamed_with_room(monkeypatch: pytest.MonkeyPatch, room: int) -> None:
    """Skip where unnamed files are not made; else let batches hold ``room`` descriptors."""
    if not bw._unnamed_ok:
        pytest.skip("no O_TMPFILE or /proc here")
    monkeypatch.setattr(bw, "_fd_room", lambda: room)


def test_a_batch_beyond_its_descriptor_room_names_the_rest_by_temporaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch holds at most what the open-file limit leaves; later files take hidden names."""
    _unnamed_with_room(monkeypatch, 2)
    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        batch = bw.BatchFiles(folder)
        for n in range(5):
            batch.add(f"{n}.eml", f"notice {n}".encode())
        assert len(_hidden(tmp_path)) == 3  # two unnamed, three under hidden names
        batch.commit()
    finally:
        os.close(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{n}.eml" for n in range(5)]
    assert [(tmp_path / f"{n}.eml").read_bytes() for n in range(5)] == [
        f"notice {n}".encode() for n in range(5)
    ]


def test_a_file_system_without_unnamed_files_falls_back_to_temporaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_TMPFILE refused (EOPNOTSUPP: NFS, some FUSE): the batch and the next use hidden names."""
    if not bw._unnamed_ok:
        pytest.skip("no O_TMPFILE or /proc here")
    real_open = os.open

    def refusing(path: str, flags: int, *args: object, **kwargs: object) -> int:
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, "not supported")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(bw, "_unnamed_ok", True)
    monkeypatch.setattr(os, "open", refusing)
    folder = real_open(tmp_path, os.O_RDONLY)
    try:
        batch = bw.BatchFiles(folder)
        batch.add("a.eml", b"first")
        assert len(_hidden(tmp_path)) == 1 and not bw._unnamed_ok
        batch.commit()
    finally:
        os.close(folder)
    assert [p.name for p in tmp_path.iterdir()] == ["a.eml"]


def test_a_kernel_refusing_links_by_descriptor_names_through_proc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before Linux 6.10 an unprivileged linkat(AT_EMPTY_PATH) fails with ENOENT: the batch,
    and every later one, names its files through /proc/self/fd instead."""
    import ctypes

    if not bw._unnamed_ok:
        pytest.skip("no O_TMPFILE or /proc here")
    calls: list[str] = []

    def refusing(fd: int, path: bytes, folder: int, name: bytes, flags: int) -> int:
        calls.append(name.decode())
        ctypes.set_errno(errno.ENOENT)
        return -1

    monkeypatch.setattr(bw, "_native", None)  # the Python path's own fallback
    monkeypatch.setattr(bw, "_linkat", refusing)
    monkeypatch.setattr(bw, "_by_descriptor_ok", True)
    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        for names in (["a.eml", "b.eml"], ["c.eml"]):
            batch = bw.BatchFiles(folder)
            for name in names:
                batch.add(name, name.encode())
            batch.commit()
    finally:
        os.close(folder)
    assert calls == ["a.eml"] and not bw._by_descriptor_ok  # asked once, then never again
    assert _named(tmp_path) == ["a.eml", "b.eml", "c.eml"] and _hidden(tmp_path) == []
    assert [(tmp_path / n).read_bytes() for n in _named(tmp_path)] == [b"a.eml", b"b.eml", b"c.eml"]


def test_a_batch_refused_midway_leaves_no_temporary(tmp_path: Path, naming: str) -> None:
    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        batch = bw.BatchFiles(folder)
        batch.add("a.eml", b"first")
        with pytest.raises(BatchError) as caught:
            batch.add("../b.eml", b"second")
        assert caught.value.step == 0 and "b.eml" not in str(caught.value)
        assert list(tmp_path.iterdir()) == [] and len(batch) == 0
        batch = bw.BatchFiles(folder)
        batch.add("c.eml", b"third")
        batch.discard()
        assert list(tmp_path.iterdir()) == []
    finally:
        os.close(folder)


def _named(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-each"])
def test_a_stream_names_each_batch_once_synced_and_reports_it_once_its_names_are(
    tmp_path: Path, naming: str, syncfs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not syncfs:  # a system without syncfs: each file, then the folder, synced on its own
        monkeypatch.setattr(bw, "_syncfs", lambda fd: False)
    reported: list[str] = []
    first, second = ["1-0.eml", "1-1.eml"], ["2-0.eml"]

    def named_between(least: list[str], most: list[str]) -> bool:
        """Named: at least ``least``; at most ``most`` where the stream's thread names batches
        as soon as they are synced (native), else exactly ``least`` (named by the caller)."""
        named = set(_named(tmp_path))
        if naming == "unnamed-native":
            return set(least) <= named <= set(most)
        return named == set(least)

    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        stream: bw.BatchStream[str] = bw.BatchStream(folder, reported.append)
        for n in range(2):
            stream.add(f"1-{n}.eml", f"one {n}".encode())
        assert len(stream) == 2 and _named(tmp_path) == []
        stream.end_batch("first")
        assert len(stream) == 0 and reported == []
        assert named_between([], first)
        stream.add("2-0.eml", b"two")
        stream.end_batch("second")  # the first is synced and named, its names not yet synced
        assert named_between(first, first + second) and reported == []
        stream.end_batch("empty")  # a batch without files passes like the others
        assert _named(tmp_path) == first + second and reported == ["first"]
        stream.add("4-0.eml", b"four")
        stream.finish("last")
    finally:
        os.close(folder)
    assert reported == ["first", "second", "empty", "last"]
    assert _named(tmp_path) == ["1-0.eml", "1-1.eml", "2-0.eml", "4-0.eml"]
    assert _hidden(tmp_path) == []
    assert (tmp_path / "1-1.eml").read_bytes() == b"one 1"
    assert (tmp_path / "4-0.eml").read_bytes() == b"four"


def test_a_stream_holds_at_most_its_descriptor_room_across_the_batches_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two batches hold unnamed files at once (one written, one synced): one room for both."""
    _unnamed_with_room(monkeypatch, 3)
    reported: list[int] = []
    open_before = len(os.listdir("/proc/self/fd"))
    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        stream: bw.BatchStream[int] = bw.BatchStream(folder, reported.append)
        for batch in range(3):
            for n in range(2):
                stream.add(f"{batch}-{n}.eml", b"x" * (batch + n))
            # Held: this batch's two and the one before's (synced, not yet named) at most.
            assert len(os.listdir("/proc/self/fd")) - open_before - 1 <= 3
            stream.end_batch(batch)
        stream.finish(3)
    finally:
        os.close(folder)
    assert len(os.listdir("/proc/self/fd")) == open_before
    assert reported == [0, 1, 2, 3]
    assert _named(tmp_path) == [f"{b}-{n}.eml" for b in range(3) for n in range(2)]
    assert _hidden(tmp_path) == []


def test_a_stream_whose_sync_fails_says_so_and_leaves_only_whole_named_files(
    tmp_path: Path, naming: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def failing_for_the_third(fd: int) -> None:
        if os.fstat(fd).st_size == len(b"three"):  # the only file of five bytes
            raise OSError(errno.EIO, "I/O error")
        real_fsync(fd)

    monkeypatch.setattr(bw, "_syncfs", lambda fd: False)  # each file synced on its own
    monkeypatch.setattr(os, "fsync", failing_for_the_third)
    reported: list[str] = []
    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        stream: bw.BatchStream[str] = bw.BatchStream(folder, reported.append)
        for n, tag in enumerate(["one", "two", "three"], 1):
            stream.add(f"{n}.eml", tag.encode())
            stream.end_batch(tag)
        stream.add("4.eml", b"four")
        with pytest.raises(BatchError) as caught:
            stream.end_batch("four")  # the third's sync failed
        assert caught.value.step == 1 and "3.eml" not in str(caught.value)
        stream.discard()
    finally:
        os.close(folder)
    assert reported == ["one"]  # the second's names were never synced
    assert _named(tmp_path) == ["1.eml", "2.eml"]
    assert (tmp_path / "2.eml").read_bytes() == b"two"
    assert _hidden(tmp_path) == []  # the third's and fourth's files are gone


def test_a_stream_whose_sync_thread_fails_unexpectedly_raises_it_and_reports_nothing(
    tmp_path: Path, naming: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever stops the sync thread reaches the caller: a batch is never taken for durable
    because its thread ended without saying why."""

    def broken(fd: int) -> bool:
        raise RuntimeError("not a BatchError")

    monkeypatch.setattr(bw, "_syncfs", broken)
    reported: list[str] = []
    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        stream: bw.BatchStream[str] = bw.BatchStream(folder, reported.append)
        stream.add("a.eml", b"first")
        stream.end_batch("first")
        with pytest.raises(RuntimeError, match="not a BatchError"):
            stream.end_batch("second")
        stream.discard()
    finally:
        os.close(folder)
    assert reported == [] and _named(tmp_path) == [] and _hidden(tmp_path) == []


def test_the_open_file_limit_is_raised_as_far_as_asked_within_the_hard_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 300:
        pytest.skip("a hard limit on open files below this test's starting point")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, hard))
        bw.allow_open_files(10)  # fits already: never lowered
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (300, hard)
        bw.allow_open_files(2000)
        want = 2000 + bw._FD_MARGIN
        expected = want if hard == resource.RLIM_INFINITY else min(want, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (expected, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _native_or_skip() -> ModuleType:
    if bw._native is None or not bw._unnamed_ok:
        pytest.skip("notify._files was not built, or no O_TMPFILE here")
    return bw._native


def test_the_native_namer_refuses_any_name_but_one_path_component_and_links_nothing(
    tmp_path: Path,
) -> None:
    native = _native_or_skip()
    (tmp_path / "inside").mkdir()
    folder = os.open(tmp_path / "inside", os.O_RDONLY)
    fds = [os.open(".", bw._UNNAMED, 0o600, dir_fd=folder) for _ in range(2)]
    try:
        for bad in (b"../escape.eml", b"a/b.eml", b"", b".", b"..", b"nul\0.eml"):
            assert native.name_unnamed(folder, fds, [b"ok.eml", bad], True) == (0, errno.EINVAL, 1)
        assert list(tmp_path.rglob("*")) == [tmp_path / "inside"]  # not even the good one
        for fd in fds:
            os.fstat(fd)  # still open: the caller discards them
        with pytest.raises(ValueError, match="differ in length"):
            native.name_unnamed(folder, fds, [b"ok.eml"], True)
        with pytest.raises(TypeError):
            native.name_unnamed(folder, fds, ["a.eml", "b.eml"], True)
        assert native.name_unnamed(folder, fds, [b"a.eml", b"b.eml"], True) == (2, 0, 1)
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        os.close(folder)
    assert sorted(p.name for p in (tmp_path / "inside").iterdir()) == ["a.eml", "b.eml"]


def test_the_native_namer_stops_at_the_first_failure_leaving_the_rest_open(
    tmp_path: Path,
) -> None:
    native = _native_or_skip()
    (tmp_path / "b.eml").mkdir()  # a folder where a file must go: not replaced
    folder = os.open(tmp_path, os.O_RDONLY)
    fds = [os.open(".", bw._UNNAMED, 0o600, dir_fd=folder) for _ in range(3)]
    try:
        for fd, data in zip(fds, (b"a", b"b", b"c"), strict=True):
            os.write(fd, data)
        named, code, _ = native.name_unnamed(folder, fds, [b"a.eml", b"b.eml", b"c.eml"], True)
        assert (named, code) == (1, errno.EISDIR)
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(fds[0])  # named and closed
        os.fstat(fds[1])
        os.fstat(fds[2])  # left open for the caller
    finally:
        for fd in fds[1:]:
            os.close(fd)
        os.close(folder)
    assert (tmp_path / "a.eml").read_bytes() == b"a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.eml", "b.eml"]


def test_a_native_stream_names_a_batch_once_synced_without_waiting_for_the_next(
    tmp_path: Path,
) -> None:
    """Its thread names the batch (nothing else is called meanwhile); only the next batch's
    sync makes those names durable, so the batch is reported at the one after."""
    _native_or_skip()
    reported: list[str] = []
    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        stream: bw.BatchStream[str] = bw.BatchStream(folder, reported.append)
        stream.add("a.eml", b"first")
        stream.add("b.eml", b"second")
        stream.end_batch("first")
        deadline = time.monotonic() + 30
        while _named(tmp_path) != ["a.eml", "b.eml"] and time.monotonic() < deadline:
            time.sleep(0.005)
        assert _named(tmp_path) == ["a.eml", "b.eml"] and reported == []
        stream.end_batch("second")
        assert reported == []
        stream.finish("third")
    finally:
        os.close(folder)
    assert reported == ["first", "second", "third"]


def test_asking_for_open_files_grows_the_descriptor_table_at_once() -> None:
    """Grown before a stream's thread shares it: each later doubling would wait ~10 ms."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 3000 + bw._FD_MARGIN:
        pytest.skip("a hard limit on open files below this test's request")
    code = (
        "import re, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import notify.batch_writer as bw\n"
        "def size():\n"
        "    with open('/proc/self/status') as f:\n"
        "        return int(re.search(r'FDSize:\\s+(\\d+)', f.read()).group(1))\n"
        "before = size()\n"
        "bw.allow_open_files(3000)\n"
        "print(before, size())\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, "-c", code, root], capture_output=True, text=True, check=True
    ).stdout.split()
    before, after = int(out[0]), int(out[1])
    assert before < 3000 <= after
