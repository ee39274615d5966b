"""Writers putting a leaked frame on disk in the shapes leakwatch ingests (CSV, JSONL, JSON)."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl

__all__ = ["ENCODINGS", "write_delimited", "write_json_array", "write_jsonl"]

ENCODINGS = ("utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16")
# Rows per chunk when a writer has to transcode or frame the output itself.
_CHUNK_ROWS = 100_000


def _chunks(frame: pl.DataFrame) -> Iterator[pl.DataFrame]:
    for start in range(0, frame.height, _CHUNK_ROWS):
        yield frame.slice(start, _CHUNK_ROWS)


def write_delimited(
    frame: pl.DataFrame,
    path: Path,
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    header: bool = True,
) -> Path:
    """Write ``frame`` as delimited text; values with the delimiter, quotes or newlines are quoted.

    Nulls are written as empty fields and empty strings as ``""``. ``utf-16`` has one BOM (little
    endian). For cp1252 and latin-1 a character the encoding cannot hold raises
    ``UnicodeEncodeError``: never a silent replacement (``make_leak`` only uses characters both
    can hold).
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r}; expected one of {ENCODINGS}")
    path = Path(path)
    if encoding in ("utf-8", "utf-8-sig"):
        frame.write_csv(
            path,
            separator=delimiter,
            include_header=header,
            include_bom=encoding == "utf-8-sig",
        )
        return path
    encoder = codecs.getincrementalencoder(encoding)(errors="strict")
    with path.open("wb") as out:
        if frame.height == 0 and header:
            out.write(encoder.encode(frame.write_csv(separator=delimiter, include_header=True)))
        for i, chunk in enumerate(_chunks(frame)):
            text = chunk.write_csv(separator=delimiter, include_header=header and i == 0)
            out.write(encoder.encode(text))
        out.write(encoder.encode("", final=True))
    return path


def write_jsonl(frame: pl.DataFrame, path: Path) -> Path:
    """Write one JSON object per line (UTF-8); nulls are JSON ``null``."""
    path = Path(path)
    frame.write_ndjson(path)
    return path


def write_json_array(frame: pl.DataFrame, path: Path, *, under_key: str | None = None) -> Path:
    """Write a JSON array of row objects, or ``{under_key: [...]}``, streaming in chunks (UTF-8)."""
    path = Path(path)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write("[" if under_key is None else "{" + json.dumps(under_key) + ": [")
        first = True
        for chunk in _chunks(frame):
            for line in chunk.write_ndjson().splitlines():
                out.write(("\n" if first else ",\n") + line)
                first = False
        out.write("\n]" if under_key is None else "\n]}")
        out.write("\n")
    return path
