"""JSON leaks: JSON lines, an array of objects, or records under a top-level key; streamed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TextIO

import polars as pl

from connectors.base import RowReject, Table, record_batches
from core.errors import InputError

__all__ = ["MAX_COLUMNS", "flatten", "read_json"]

_CHUNK = 1024 * 1024
MAX_RECORD_CHARS = 64 * 1024 * 1024  # one record larger than this stops the file (cannot resync)
MAX_COLUMNS = 10_000
_FLAT_DEPTH = 32  # deeper sub-objects are kept as JSON text rather than flattened further
_WS = " \t\r\n"

JsonShape = Literal["json", "ndjson"]


class _FloatText(str):
    """A JSON float kept as its source text ("1.50" stays "1.50")."""

    __slots__ = ()


def _parse_int(text: str) -> int | str:
    # Python ints are exact at any size; past 4 000 digits int() refuses, so keep the text.
    return int(text) if len(text) < 4000 else text


_DECODER = json.JSONDecoder(parse_float=_FloatText, parse_int=_parse_int)


def _plain(value: Any) -> Any:
    """A parsed value ready for json.dumps: float texts back to numbers."""
    if isinstance(value, _FloatText):
        try:
            return float(value)
        except ValueError:
            return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    return json.dumps(_plain(value), ensure_ascii=False)


def flatten(record: dict[str, Any], prefix: str = "", depth: int = 0) -> dict[str, str | None]:
    """Nested objects become dotted names (``address.city``); every value becomes text or None."""
    out: dict[str, str | None] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < _FLAT_DEPTH:
            out.update(flatten(value, f"{name}.", depth + 1))
        else:
            out[name] = _text(value)
    return out


class _Stream:
    """Incremental JSON reading over a text stream: values decoded one at a time."""

    def __init__(self, f: TextIO, display: str) -> None:
        self.f = f
        self.display = display
        self.buf = ""
        self.pos = 0
        self.eof = False

    def _fill(self) -> bool:
        chunk = self.f.read(_CHUNK)
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        if not chunk:
            self.eof = True
        return bool(chunk)

    def peek(self) -> str | None:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if self.eof or not self._fill():
                return None

    def take(self, expected: str, row: int | None) -> None:
        if self.peek() != expected:
            raise InputError(f"invalid JSON: expected {expected!r}", file=self.display, row=row)
        self.pos += 1

    def value(self, row: int | None) -> Any:
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:
                    self.pos = end
                    return value
            except json.JSONDecodeError:
                if self.eof:
                    raise InputError("invalid JSON", file=self.display, row=row) from None
            except RecursionError:
                raise InputError("JSON nested too deeply", file=self.display, row=row) from None
            if len(self.buf) - self.pos > MAX_RECORD_CHARS:
                raise InputError("JSON record larger than 64 MiB", file=self.display, row=row)
            self._fill()


def _array(stream: _Stream, start_row: int) -> Iterator[tuple[int, Any]]:
    """Elements of an array whose '[' has been consumed, numbered from start_row."""
    row = start_row
    if stream.peek() == "]":
        stream.pos += 1
        return
    while True:
        yield row, stream.value(row)
        row += 1
        ch = stream.peek()
        if ch == ",":
            stream.pos += 1
        elif ch == "]":
            stream.pos += 1
            return
        else:
            raise InputError("invalid JSON: expected ',' or ']'", file=stream.display, row=row)


def _document_records(stream: _Stream) -> Iterator[tuple[int, Any]]:
    first = stream.peek()
    if first == "[":
        stream.pos += 1
        yield from _array(stream, 1)
        return
    if first != "{":
        raise InputError("unsupported JSON: not an array or object", file=stream.display)
    stream.pos += 1
    found = False
    while stream.peek() not in ("}", None):
        key = stream.value(None)
        if not isinstance(key, str):
            raise InputError("invalid JSON: expected a key", file=stream.display)
        stream.take(":", None)
        if not found and stream.peek() == "[":
            stream.pos += 1
            elements = _array(stream, 1)
            head = next(elements, None)
            if head is not None and isinstance(head[1], dict):
                found = True
                yield head
                yield from elements
            else:
                for _ in elements:
                    pass  # a list of something else: not the records
        else:
            stream.value(None)
        if stream.peek() == ",":
            stream.pos += 1
    stream.take("}", None)
    if not found:
        raise InputError(
            "unsupported JSON: no array of objects at top level or under a top-level key",
            file=stream.display,
        )


def _lines_records(f: TextIO) -> Iterator[tuple[int, Any]]:
    row = 0
    for line in f:
        if not line.strip():
            continue
        row += 1
        try:
            yield row, _DECODER.decode(line)
        except json.JSONDecodeError:
            yield row, _Bad("invalid JSON")
        except RecursionError:
            yield row, _Bad("JSON nested too deeply")


class _Bad:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _records(
    path: Path, encoding: str, shape: JsonShape, display: str
) -> Iterator[tuple[int, dict[str, str | None] | None, str | None]]:
    """(row, flat record, None) or (row, None, reject reason), in file order."""
    with path.open("r", encoding=encoding, errors="replace", newline="") as f:
        source = _lines_records(f) if shape == "ndjson" else _document_records(_Stream(f, display))
        for row, value in source:
            if isinstance(value, _Bad):
                yield row, None, value.reason
            elif not isinstance(value, dict):
                yield row, None, "record is not a JSON object"
            else:
                try:
                    yield row, flatten(value), None
                except RecursionError:
                    yield row, None, "JSON nested too deeply"


def read_json(
    path: Path, *, name: str, display: str, encoding: str, shape: JsonShape, batch_rows: int
) -> Table:
    """A Table over a JSON file. Columns are the union of flattened keys in first-seen order,
    found by a first streamed pass (so the file is read twice, memory stays flat)."""
    if encoding == "utf-8":
        encoding = "utf-8-sig"  # tolerate a BOM
    seen: dict[str, None] = {}
    for _, rec, _reason in _records(path, encoding, shape, display):
        if rec:
            for key in rec:
                if key not in seen:
                    seen[key] = None
                    if len(seen) > MAX_COLUMNS:
                        raise InputError(f"more than {MAX_COLUMNS} distinct fields", file=display)
    columns = list(seen)

    def produce(table: Table) -> Iterator[pl.DataFrame]:
        def records() -> Iterator[tuple[int, list[str | None]]]:
            for row, rec, reason in _records(path, encoding, shape, display):
                if rec is None:
                    table.rejects.append(RowReject(row=row, reason=reason or "invalid record"))
                    continue
                yield row, [rec.get(c) for c in columns]

        yield from record_batches(table, records(), batch_rows)

    return Table(
        name=name,
        columns=columns,
        has_header=True,
        parser=f"json:{shape}",
        produce=produce,
        encoding=encoding,
    )
