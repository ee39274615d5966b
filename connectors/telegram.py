"""Acquiring the files attached to a Telegram Desktop chat or channel export, with who posted them.

A Telegram Desktop "Export chat history" folder (JSON format) holds ``result.json`` (``name``,
``type``, ``id``, ``messages``) and the files messages reference (``"file": "files/leak.csv"``).
Every attached file becomes an Artifact whose ``telegram`` record keeps the channel's name and
id, the message id, its date (UTC, from ``date_unixtime``) and the poster's display name and
``from_id``: what a court order against the platform needs.

``result.json`` is read as a stream: only messages with a file are kept in memory. A reference
that resolves outside the export folder (``../``, absolute, a symlink escaping) is refused;
files the export left out ("File not included…") are counted and reported as one refusal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from connectors.acquire import AcquireOptions, Refusal
from connectors.base import Artifact
from connectors.files import acquire_file
from connectors.textwindow import TextWindow
from core.errors import InputError

__all__ = ["SKIPPED_MEDIA", "acquire_export", "read_export"]

# Attachments that are never leaked tables: kept out of ingestion (they would only be refused).
SKIPPED_MEDIA = frozenset(
    {"sticker", "animation", "voice_message", "video_message", "video_file", "audio_file"}
)
_READ_CHUNK = 1024 * 1024
_MAX_VALUE_CHARS = 16 * 1024 * 1024  # one message, or one top-level value, at most
_WS = " \t\r\n"


@dataclass(frozen=True)
class _Attachment:
    message_id: int | str | None
    file: str
    date_unixtime: str | None
    date: str | None
    poster: str | None
    poster_id: str | None
    media_type: str | None


@dataclass
class _Export:
    header: dict[str, Any]
    attachments: list[_Attachment]
    messages: int = 0


class _Stream(TextWindow):
    """A text buffer over a file that decodes one JSON value at a time."""

    def __init__(self, path: Path) -> None:
        super().__init__(path.open("r", encoding="utf-8-sig"), _READ_CHUNK)
        self.decoder = json.JSONDecoder()
        self.where = str(path)

    def close(self) -> None:
        self.stream.close()

    def peek(self) -> str:
        """The next non-blank character (consumed blanks), or '' at the end of the file."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise InputError(f"malformed result.json (expected {char!r})", file=self.where)
        self.pos += 1

    def value(self) -> Any:
        """Decode the next value; a value touching the buffer's end is re-read with more text."""
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                value, end = None, -1
            except RecursionError:
                raise InputError("result.json nested too deep", file=self.where) from None
            # A number or a truncated value may end exactly where the buffer does: read on.
            if end != -1 and (end < len(self.buf) or self.eof):
                self.pos = end
                return value
            if len(self.buf) - self.pos > _MAX_VALUE_CHARS:
                raise InputError(
                    f"a value of result.json is larger than {_MAX_VALUE_CHARS} characters",
                    file=self.where,
                )
            if not self._more():
                if end != -1:
                    self.pos = end
                    return value
                raise InputError("malformed result.json", file=self.where)


def _attachment(message: Any) -> _Attachment | None:
    if not isinstance(message, dict) or message.get("type") != "message":
        return None
    file = message.get("file")
    if not isinstance(file, str) or not file:
        return None
    date_unix = message.get("date_unixtime")
    poster_id = message.get("from_id")
    poster = message.get("from")
    return _Attachment(
        message_id=message.get("id"),
        file=file,
        date_unixtime=str(date_unix) if date_unix is not None else None,
        date=message.get("date") if isinstance(message.get("date"), str) else None,
        poster=poster if isinstance(poster, str) else None,
        poster_id=str(poster_id) if poster_id is not None else None,
        media_type=message.get("media_type")
        if isinstance(message.get("media_type"), str)
        else None,
    )


def read_export(result_json: Path) -> _Export:
    """The export's top-level fields and its messages that carry a file, read as a stream."""
    try:
        stream = _Stream(result_json)
    except OSError as exc:
        raise InputError(f"cannot read ({type(exc).__name__})", file=str(result_json)) from None
    export = _Export(header={}, attachments=[])
    try:
        stream.expect("{")
        while stream.peek() != "}":
            key = stream.value()
            if not isinstance(key, str):
                raise InputError("malformed result.json (key)", file=str(result_json))
            stream.expect(":")
            if key == "messages":
                stream.expect("[")
                while stream.peek() != "]":
                    found = _attachment(stream.value())
                    export.messages += 1
                    if found is not None:
                        export.attachments.append(found)
                    if stream.peek() == ",":
                        stream.pos += 1
                stream.expect("]")
            else:
                value = stream.value()
                if not isinstance(value, dict | list):  # keep scalars only (name, type, id)
                    export.header[key] = value
            if stream.peek() == ",":
                stream.pos += 1
        stream.expect("}")
    except UnicodeDecodeError:
        raise InputError("result.json is not UTF-8", file=str(result_json)) from None
    finally:
        stream.close()
    return export


def _utc(date_unixtime: str | None, date: str | None) -> str | None:
    # A hostile export can hold a timestamp no calendar holds (found by fuzzing): then the
    # written date is kept, as for old exports without date_unixtime.
    if (
        date_unixtime is not None
        and date_unixtime.lstrip("-").isdigit()
        and len(date_unixtime) < 20
    ):
        try:
            return datetime.fromtimestamp(int(date_unixtime), UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            pass
    return date  # old exports: local time without an offset, kept as written


def _not_included(file: str) -> bool:
    # Telegram writes e.g. "(File not included. Change data exporting settings to download.)"
    # or "(File exceeds maximum size. …)" in place of the path.
    return file.startswith("(") and file.endswith(")")


def _resolve(folder: Path, real_folder: Path, reference: str) -> Path | str:
    """The referenced file inside the export folder, or the reason it is refused."""
    pure = PurePosixPath(reference.replace("\\", "/"))
    if pure.is_absolute() or (pure.parts and pure.parts[0].endswith(":")):
        return "file reference is an absolute path"
    if ".." in pure.parts:
        return "file reference escapes the export folder"
    candidate = folder.joinpath(*pure.parts)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return "referenced file is missing"
    if not real.is_relative_to(real_folder):
        return "file reference escapes the export folder (symlink)"
    if not real.is_file():
        return "file reference is not a regular file"
    return real


def acquire_export(folder: Path, options: AcquireOptions) -> Iterator[Artifact | Refusal]:
    """Every file attached to the export's messages, with its Telegram record; refusals in line."""
    del options  # nothing to configure yet; the signature matches the other acquirers
    source = str(folder)
    export = read_export(folder / "result.json")
    real_folder = folder.resolve()
    channel = export.header.get("name")
    channel_id = export.header.get("id")
    not_included = 0
    for item in export.attachments:
        if item.media_type in SKIPPED_MEDIA:
            continue
        if _not_included(item.file):
            not_included += 1
            continue
        resolved = _resolve(folder, real_folder, item.file)
        if isinstance(resolved, str):
            yield Refusal(
                source=source, inner_path=item.file, reason=f"message {item.message_id}: {resolved}"
            )
            continue
        inner = resolved.relative_to(real_folder).as_posix()
        artifact = acquire_file(resolved, source, inner_path=inner)
        yield replace(
            artifact,
            telegram={
                "channel": channel,
                "channel_id": channel_id,
                "channel_type": export.header.get("type"),
                "message_id": item.message_id,
                "date": _utc(item.date_unixtime, item.date),
                "poster": item.poster,
                "poster_id": item.poster_id,
            },
        )
    if not_included:
        yield Refusal(
            source=source,
            reason=(
                f"{not_included} attached file(s) not included in the export; export again "
                "with files included to ingest them"
            ),
        )
