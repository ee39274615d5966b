"""What the kernel's page cache holds of a file, for tests of code that lets cached pages go."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

__all__ = ["memory_backed", "resident"]


def resident(path: Path) -> list[bool]:
    """Per page of the file, whether the kernel holds it in its cache (mmap, then mincore)."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    if size == 0:
        return []
    vec = (ctypes.c_ubyte * ((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE))()
    # A private mapping, never written: each page is the cache's own until copied.
    with path.open("rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as m:
        start = ctypes.c_char.from_buffer(m)
        try:
            rc = libc.mincore(ctypes.c_void_p(ctypes.addressof(start)), ctypes.c_size_t(size), vec)
        finally:
            del start
    assert rc == 0, os.strerror(ctypes.get_errno())
    return [bool(v & 1) for v in vec]


def memory_backed(path: Path) -> bool:
    """Whether ``path`` lies on a file system held in memory (its pages cannot be let go)."""
    best, kind = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        mount = fields[1].replace("\\040", " ")
        if str(path).startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
            best, kind = mount, fields[2]
    return kind in ("tmpfs", "ramfs")
