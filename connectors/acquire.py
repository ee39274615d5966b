"""Acquiring a source of any kind: a file, a folder, an archive, a URL or a Telegram export.

``acquire`` yields every artifact to parse, archives expanded recursively, and a ``Refusal``
for anything refused on the way (a hostile member, an unreadable archive, a failed
download) so that one bad item never stops the rest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from connectors.base import Artifact
from connectors.files import acquire_path
from core.errors import InputError, TerminalError, TransientError
from core.settings import Settings

__all__ = ["AcquireOptions", "ArchiveBudget", "Refusal", "acquire", "is_url"]


@dataclass(frozen=True)
class Refusal:
    """Something a source held that was not acquired: where, and why (never its content)."""

    source: str
    reason: str
    inner_path: str | None = None

    @property
    def display(self) -> str:
        return f"{self.source}!{self.inner_path}" if self.inner_path else self.source


@dataclass
class ArchiveBudget:
    """Running totals over every archive of one acquisition, nested ones included."""

    bytes_out: int = 0
    members: int = 0


@dataclass(frozen=True)
class AcquireOptions:
    """Everything acquisition needs from settings, plus per-run arguments."""

    work_dir: Path
    settings: Settings
    password: str | None = None
    # Shared by every archive expanded under one ``acquire`` call: the total-size and member-count
    # limits hold for a source as a whole, so nesting cannot multiply them.
    budget: ArchiveBudget = field(default_factory=ArchiveBudget)


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _is_telegram_export(path: Path) -> bool:
    return path.is_dir() and (path / "result.json").is_file()


def acquire(source: str, options: AcquireOptions) -> Iterator[Artifact | Refusal]:
    """Every artifact a source holds, archives expanded; refusals in line with them."""
    try:
        if is_url(source):
            from connectors.downloads import download

            roots: Iterator[Artifact | Refusal] = iter([download(source, options)])
        elif _is_telegram_export(Path(source)):
            from connectors.telegram import acquire_export

            roots = acquire_export(Path(source), options)
        else:
            if Path(source).is_dir():
                yield from _escaping_links(Path(source))
            roots = acquire_path(Path(source))
        for item in roots:  # a Telegram export yields its refused references in line
            if isinstance(item, Refusal):
                yield item
            else:
                yield from expand(item, options)
    except InputError as exc:
        yield Refusal(source=exc.file or source, reason=exc.reason)
    except TerminalError as exc:
        yield Refusal(source=source, reason=str(exc))
    except TransientError as exc:
        # Retries already happened inside the download; this source is refused for this run
        # and the others go on. Running the command again tries it afresh.
        yield Refusal(source=source, reason=f"{exc} (transient: try again later)")


def _escaping_links(root: Path) -> Iterator[Refusal]:
    """A refusal per symbolic link in a folder that points outside it (``acquire_path`` skips them)."""
    real_root = root.resolve()
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted([*dirs, *files]):
            entry = Path(folder) / name
            if name.startswith(".") or not entry.is_symlink():
                continue
            if not entry.resolve().is_relative_to(real_root):
                yield Refusal(
                    source=str(entry),
                    reason="symbolic link pointing outside the folder (not followed)",
                )


def expand(
    artifact: Artifact, options: AcquireOptions, depth: int = 0
) -> Iterator[Artifact | Refusal]:
    """The artifact itself, or, for an archive, every member (recursively, depth-limited)."""
    from connectors.archives import extract_members, is_archive

    if not is_archive(artifact):
        yield artifact
        return
    for member in extract_members(artifact, options, depth=depth):
        if isinstance(member, Refusal):
            yield member
        else:
            yield from expand(member, options, depth + 1)
