"""Acquiring local files and folders as evidence-ready artifacts (hash, size, time, media type)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from connectors.base import Artifact
from connectors.sniff import read_head, sniff_media_type
from core.errors import InputError

__all__ = ["acquire_file", "acquire_path"]

_CHUNK = 1024 * 1024


def acquire_file(path: Path, source: str, inner_path: str | None = None) -> Artifact:
    """One regular file -> an Artifact (streamed SHA-256, never the whole file in memory)."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        head = read_head(path)
    except OSError as exc:
        raise InputError(f"cannot read file ({type(exc).__name__})", file=source) from None
    return Artifact(
        path=path,
        source=source,
        sha256=digest.hexdigest(),
        size=size,
        acquired_at=datetime.now(UTC),
        media_type=sniff_media_type(head),
        inner_path=inner_path,
    )


def _walk(root: Path) -> Iterator[Path]:
    """Regular files below ``root``, sorted, skipping hidden entries and escaping symlinks."""
    real_root = root.resolve()
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise InputError(f"cannot list folder ({type(exc).__name__})", file=str(root)) from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            target = entry.resolve()
            if not target.is_relative_to(real_root):
                continue
            if target.is_dir():
                continue  # symlinked folders inside the tree are reached by their real path
        if entry.is_dir():
            yield from _walk(entry)
        elif entry.is_file():
            yield entry


def acquire_path(path: Path) -> Iterator[Artifact]:
    """A file -> one Artifact; a folder -> every regular file below it, recursively, sorted."""
    source = str(path)
    if not path.exists():
        raise InputError("no such file or folder", file=source)
    if path.is_dir():
        root = path.resolve()
        for file in _walk(path):
            real = file.resolve()
            if not real.is_relative_to(root):
                continue
            yield acquire_file(file, str(file))
    elif path.is_file():
        yield acquire_file(path, source)
    else:
        raise InputError("not a regular file or folder", file=source)
