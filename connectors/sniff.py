"""Sniffing raw bytes: binary or text, which encoding, and which shape of data they hold."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Literal

from charset_normalizer import from_bytes

__all__ = [
    "SAMPLE_BYTES",
    "Shape",
    "decode_sample",
    "detect_encoding",
    "looks_binary",
    "read_head",
    "sniff_media_type",
    "sniff_shape",
]

SAMPLE_BYTES = 256 * 1024

Shape = Literal[
    "delimited", "json", "ndjson", "parquet", "zip", "gzip", "7z", "sqlite", "sql", "text", "binary"
]

# Single-byte Western encodings charset-normalizer may pick among; cp1252 decodes all of their
# letters used in French the same way and is what French office software writes, so when it
# decodes the sample cleanly we prefer it (latin-1 files then read identically).
_WESTERN = ("cp125", "latin", "iso8859", "mac_", "cp850", "cp437", "iso-8859")

_MAGIC: tuple[tuple[bytes, Shape], ...] = (
    (b"PAR1", "parquet"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"\x1f\x8b", "gzip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"SQLite format 3\x00", "sqlite"),
)

_MEDIA: dict[Shape, str] = {
    "delimited": "text/csv",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "zip": "application/zip",
    "gzip": "application/gzip",
    "7z": "application/x-7z-compressed",
    "sqlite": "application/vnd.sqlite3",
    "sql": "application/sql",
    "text": "text/plain",
    "binary": "application/octet-stream",
}


def read_head(path: Path, size: int = SAMPLE_BYTES) -> bytes:
    with path.open("rb") as f:
        return f.read(size)


def magic_shape(head: bytes) -> Shape | None:
    for magic, shape in _MAGIC:
        if head.startswith(magic):
            return shape
    return None


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 text without BOM shows NULs in every other byte (for Latin text)."""
    if len(head) < 16:
        return None
    even, odd = head[0::2], head[1::2]
    even_nul = even.count(0) / len(even)
    odd_nul = odd.count(0) / len(odd)
    if odd_nul > 0.3 and even_nul < 0.05:
        return "utf-16-le"
    if even_nul > 0.3 and odd_nul < 0.05:
        return "utf-16-be"
    return None


_CONTROLS = bytes(b for b in range(0x100) if (b < 0x20 and b not in (9, 10, 12, 13)) or b == 0x7F)
_HIGH = bytes(range(0x80, 0x100))


def _count_bytes(head: bytes, of: bytes) -> int:
    """How many bytes of ``head`` are among ``of``.

    ``translate`` deletes them in C: a Python loop over a 256 KiB sample took ~10 ms per
    count, and every acquired file is sniffed twice (evidence, then parsing).
    """
    return len(head) - len(head.translate(None, of))


def looks_binary(head: bytes) -> bool:
    """NUL bytes or many control characters: not text in any single-byte or UTF-8 encoding."""
    if not head:
        return False
    if b"\x00" in head:
        return True
    controls = _count_bytes(head, _CONTROLS)
    return controls / len(head) > 0.05


def _mostly_utf8(head: bytes) -> bool:
    """Valid UTF-8, or UTF-8 with a few invalid bytes (decoded lossily, never dropped)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        decoder.decode(head, final=False)
        return True
    except UnicodeDecodeError:
        pass
    text = head.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    multibyte = len(text) - len(text.encode("ascii", "ignore")) - bad  # non-ASCII, U+FFFD aside
    return multibyte > 0 and bad <= max(2, multibyte // 20)


def detect_encoding(head: bytes) -> str | None:
    """The text encoding of a sample, ``None`` when it is binary or cannot be told."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith(b"\xff\xfe\x00\x00") or head.startswith(b"\x00\x00\xfe\xff"):
        return None  # UTF-32: not seen in leaks, refused rather than guessed
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16"
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    utf16 = _utf16_without_bom(head)
    if utf16 is not None:
        return utf16
    if looks_binary(head):
        return None
    if _mostly_utf8(head):
        return "utf-8"
    # Mostly-ASCII text with a few high bytes is Western European in our leaks; charset-normalizer
    # guesses CJK or Cyrillic code pages on short French samples, so cp1252 (then latin-1) first.
    high = _count_bytes(head, _HIGH)
    if high / len(head) < 0.3:
        for western in ("cp1252", "latin-1"):
            try:
                head.decode(western)
            except UnicodeDecodeError:
                continue
            return western
    best = from_bytes(head).best()
    if best is None:
        return None
    guess = best.encoding.lower()
    if guess.startswith(_WESTERN):
        try:
            head.decode("cp1252")
        except UnicodeDecodeError:
            return guess
        return "cp1252"
    return guess


def decode_sample(head: bytes, encoding: str) -> str:
    """Decode a sample that may end in the middle of a character."""
    decoder = codecs.getincrementaldecoder(encoding)("replace")
    return decoder.decode(head, final=False)


def sniff_shape(text: str) -> Shape:
    """The shape of decoded text: JSON, JSON lines, an SQL dump, delimited or plain text."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        first, _, rest = stripped.partition("\n")
        if rest.lstrip().startswith("{") and first.rstrip().endswith("}"):
            return "ndjson"
        return "json"
    upper = stripped[:4096].upper()
    if any(k in upper for k in ("CREATE TABLE", "INSERT INTO", "-- MYSQL DUMP", "PG_DUMP")):
        return "sql"
    lines = [ln for ln in stripped.splitlines()[:50] if ln.strip()]
    if lines and any(any(d in ln for d in ",;\t|") for ln in lines):
        return "delimited"
    return "text"


def sniff_media_type(head: bytes) -> str:
    """A media type from content alone (the evidence manifest's ``media_type``)."""
    if not head:
        return "application/octet-stream"
    shape = magic_shape(head)
    if shape is None:
        encoding = detect_encoding(head)
        shape = "binary" if encoding is None else sniff_shape(decode_sample(head, encoding))
    return _MEDIA[shape]
