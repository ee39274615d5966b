"""How leak files are read: the evidence digest past the page cache, the scan letting go behind.

The digest must be the file's SHA-256 whatever path it took (direct reads, the cache, or a
switch midway), and letting go of the bytes read must drop exactly those from the cache.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
from pathlib import Path

import pytest

from connectors import files
from connectors.files import let_go_before, sha256_of
from tests.page_cache import memory_backed, resident

CHUNK = files._CHUNK
SIZES = [0, 1, 4095, 4096, 4097, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17]


def _file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / f"leak-{size}.csv"
    path.write_bytes(os.urandom(size))
    return path


def _direct_reads_here(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
    except OSError:
        return False
    os.close(fd)
    return hasattr(os, "O_DIRECT")


@pytest.mark.parametrize("size", SIZES)
def test_the_digest_is_the_files_sha256_at_every_size(tmp_path: Path, size: int) -> None:
    path = _file(tmp_path, size)
    assert sha256_of(path, "leak.csv", size) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_direct_reads_are_used_where_the_file_system_has_them(tmp_path: Path) -> None:
    path = _file(tmp_path, 2 * CHUNK + 5)
    if not _direct_reads_here(path):
        pytest.skip("no direct reads on this file system")
    digest = hashlib.sha256()
    assert files._digest_direct(path, digest) == path.stat().st_size
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_system_refusing_direct_reads_is_read_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path, CHUNK + 3)
    real_open = os.open

    def refusing(file: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "direct reads refused")
        return real_open(file, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(files.os, "open", refusing)
    assert files._digest_direct(path, hashlib.sha256()) is None
    assert sha256_of(path, "x", CHUNK + 3) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_direct_read_refused_midway_goes_on_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path, 3 * CHUNK + 17)
    if not _direct_reads_here(path):
        pytest.skip("no direct reads on this file system")
    real_readv = os.readv
    calls = 0

    def refusing_later(fd: int, buffers: list[mmap.mmap]) -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError(errno.EINVAL, "refused midway")
        return real_readv(fd, buffers)

    monkeypatch.setattr(files.os, "readv", refusing_later)
    size = path.stat().st_size
    assert sha256_of(path, "x", size) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert calls == 2  # one direct read, then the refusal


def test_other_read_errors_name_the_file_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path, CHUNK)
    if not _direct_reads_here(path):
        pytest.skip("no direct reads on this file system")

    def failing(fd: int, buffers: list[mmap.mmap]) -> int:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(files.os, "readv", failing)
    with pytest.raises(files.InputError, match=r"leak\.csv.*cannot read file \(OSError\)"):
        sha256_of(path, "leak.csv", CHUNK)


def test_letting_go_drops_the_bytes_before_the_offset_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    if memory_backed(tmp_path.resolve()):
        pytest.skip("a file system held in memory keeps its pages")
    # Sizes in whole 2 MiB: the cache may hold a file in folios of up to that size, naturally
    # aligned, and drops a folio only when the whole of it lies before the offset.
    mib = 1 << 20
    path = _file(tmp_path, 16 * mib)
    with path.open("rb") as f:
        os.fsync(f.fileno())  # dirty pages are not dropped: written back first
        f.read()  # every page in the cache
        assert all(resident(path))
        let_go_before(f, 8 * mib)
    pages = resident(path)
    half = 8 * mib // mmap.PAGESIZE
    assert not any(pages[:half])
    assert all(pages[half:])


def test_letting_go_of_nothing_is_nothing(tmp_path: Path) -> None:
    path = _file(tmp_path, 4 << 20)
    with path.open("rb") as f:
        os.fsync(f.fileno())
        f.read()
        let_go_before(f, 0)
    assert all(resident(path))
