"""Writing 7z members to disk through py7zr's writer interface, under the extractor's limits."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import py7zr.io

if TYPE_CHECKING:
    from connectors.archives import _Extractor as Extractor

__all__ = ["SevenFactory", "SevenWriter"]


class SevenWriter(py7zr.io.Py7zIO):
    """One 7z member streamed to disk under the extractor's limits."""

    def __init__(self, ex: Extractor, name: str) -> None:
        self.ex = ex
        self.name = name
        ex.admit()
        self.path = ex.target(name)
        self._out = self.path.open("xb")
        self.digest = hashlib.sha256()
        self.written = 0
        self.finished = False

    def write(self, s: bytes | bytearray) -> int:
        self.written += len(s)
        # 7z blocks are solid: the ratio is judged against the whole archive's size.
        self.ex.account(len(s), self.written, self.ex.artifact.size)
        self.digest.update(s)
        self._out.write(s)
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.written

    def flush(self) -> None:
        self._out.flush()

    def size(self) -> int:
        return self.written

    def close(self) -> None:
        if not self._out.closed:
            self._out.close()
            self.finished = True

    def discard(self) -> None:
        self._out.close()
        self.path.unlink(missing_ok=True)


class SevenFactory(py7zr.io.WriterFactory):
    def __init__(self, ex: Extractor) -> None:
        self.ex = ex
        self.writers: list[SevenWriter] = []
        self.current: SevenWriter | None = None

    def create(self, filename: str) -> py7zr.io.Py7zIO:
        base = self.ex.dir / "7z"
        name = (
            Path(filename).relative_to(base).as_posix()
            if Path(filename).is_absolute()
            else filename
        )
        writer = SevenWriter(self.ex, name)
        self.writers.append(writer)
        self.current = writer
        return writer
