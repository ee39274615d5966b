"""Native fast path for delimited leak files: records straight to normalised batches.

``matching._scan`` (C, GIL released) splits the lines of a block, computes each record's
category mask and decides the key values it is sure of, exactly as ``read_delimited`` followed by
``normalise_leak_batch`` would. What it is not sure of comes back: a *pending* value is decided by
``matching.identity.normalise`` (on just those values), a *leftover* line is split by the Python
parser (``_Parser.split_numbered``) and normalised by ``normalise_leak_batch``, and from a line
with an odd number of quotes on, the csv-module path takes the rest of the file, as it does today.
tests/matching/test_fastscan.py compares both paths on many inputs, down to the join keys.
"""

from __future__ import annotations

import codecs
import io
import queue
import re
import threading
from array import array
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl
import pyarrow as pa
from schwifty.checksum import algorithms

from connectors.base import ROW, Table
from connectors.delimited import FIELD_CAP, Dialect, _Parser, scan_physical_lines
from connectors.files import let_go_before, read_ahead
from matching import emails, ibans, phones
from matching.identity import normalise
from matching.keyed_hash import KIND_DTYPE, Pepper, hash_words
from matching.leaks import (
    _KEY_CATEGORIES,
    CANONICAL_SCHEMA,
    KEY_FRAME_SCHEMA,
    REJECT_SCHEMA,
    NormalisedBatch,
    normalise_leak_batch,
)
from matching.native import scan_module
from schemas.vocab import CATEGORY_BITS, Category, KeyKind

__all__ = ["BLOCK_BYTES", "available", "can_scan", "scan_normalised", "warm_up"]

BLOCK_BYTES = 4 * 1024 * 1024
"""Bytes read per block; a block is cut at its last newline and the rest carried over."""

# Encodings the scanner reads: UTF-8 as polars reads it (the old path's native set), and
# single-byte ASCII supersets whose bytes decode one by one (the old path transcodes them).
_UTF8_FAMILY = frozenset({"utf-8", "utf-8-sig", "ascii"})
_SINGLE_BYTE = frozenset({"cp1252", "iso8859-1", "iso8859-15"})

_KIND_CODES = {KeyKind.EMAIL: 1, KeyKind.IBAN: 2, KeyKind.PHONE: 3}
_REASONS = {
    1: emails.REASON_EMAIL_INVALID,
    2: ibans.REASON_IBAN_MALFORMED,
    3: ibans.REASON_IBAN_COUNTRY_OR_LENGTH,
    4: ibans.REASON_IBAN_MOD97,
    5: ibans.REASON_IBAN_NATIONAL,
    6: phones.REASON_PHONE_INVALID,
}
# IBAN national checks as _scan.c numbers them.
_ALGO_NONE, _ALGO_RIB, _ALGO_REFERENCE, _ALGO_DE = 0, 1, 5, 6
_ALGO_NATIONAL = {"ES": 2, "IT": 3, "BE": 4}
_IBAN_PARTS = 16
_CLASS_BITS = {"0-9": 1, "A-Z": 2, "a-z": 4}
_BBAN_PART = re.compile(r"(\\d|\[((?:0-9|A-Z|a-z)+)\])\{(\d+)\}")


def available() -> bool:
    """True when the C extension is built."""
    return scan_module() is not None


def _mode(encoding: str) -> str | None:
    """ "utf-8" or "single-byte" for an encoding the scanner reads, else None."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return None
    if name in _UTF8_FAMILY:
        return "utf-8"
    if name in _SINGLE_BYTE:
        return "single-byte"
    return None


def can_scan(encoding: str, dialect: Dialect) -> bool:
    """True when ``scan_normalised`` can read a file of this encoding and dialect."""
    d = dialect.delimiter
    return (
        available()
        and _mode(encoding) is not None
        and len(d) == 1
        and d.isascii()
        and d not in '"\r\n\x00'
        and bool(dialect.columns)
    )


# -- tables handed to the C scanner ----------------------------------------------------------------


# Unicode's White_Space code points above ASCII: what polars' ``\\s`` matches there.
# tests/matching/test_fastscan.py checks the list against polars over every code point.
UTF8_WHITE_SPACE: tuple[int, ...] = (
    0x85,
    0xA0,
    0x1680,
    *range(0x2000, 0x200B),
    0x2028,
    0x2029,
    0x202F,
    0x205F,
    0x3000,
)


def _utf8_white_space() -> bytes:
    return array("I", UTF8_WHITE_SPACE).tobytes()


@cache
def _single_byte_tables(encoding: str) -> tuple[bytes, bytes]:
    """Per byte: is its decoded character White_Space (as polars sees it); its UTF-8 bytes."""
    decoded = [bytes([b]).decode(encoding, errors="replace") for b in range(256)]
    if decoded[:128] != [chr(b) for b in range(128)]:
        raise ValueError("not an ASCII superset")
    blank = pl.Series(decoded).str.contains(r"\S").not_().to_list()
    utf8 = bytearray()
    for ch in decoded:
        raw = ch.encode("utf-8")
        utf8 += bytes([len(raw)]) + raw.ljust(3, b"\x00")
    return bytes(blank), bytes(utf8)


def _bban_parts(body: str) -> list[tuple[int, int]] | None:
    """schwifty's BBAN regex body as (count, class bits) runs, or None if it has other syntax."""
    parts: list[tuple[int, int]] = []
    at = 0
    while at < len(body):
        m = _BBAN_PART.match(body, at)
        if m is None:
            return None
        if m.group(1) == r"\d":
            bits = _CLASS_BITS["0-9"]
        else:
            ranges = re.findall("0-9|A-Z|a-z", m.group(2))
            bits = 0
            for r in ranges:
                bits |= _CLASS_BITS[r]
        count = int(m.group(3))
        if count > 255:
            return None
        parts.append((count, bits))
        at = m.end()
    return parts if len(parts) <= _IBAN_PARTS else None


@cache
def _iban_table() -> bytes:
    """Per country (26 x 26): length, national algorithm, parts, usable, counts, classes."""
    with_algorithm = {key.split(":", 1)[0] for key in algorithms}
    vectorised = ibans._vectorised_national()
    table = bytearray(26 * 26 * (4 + 2 * _IBAN_PARTS))
    for country, (length, body) in ibans._specs().items():
        if country in ibans.RIB_COUNTRIES:
            algo = _ALGO_RIB
        elif country in vectorised and country in _ALGO_NATIONAL:
            algo = _ALGO_NATIONAL[country]
        elif country == "DE" and ibans._german_tables() is not None:
            algo = _ALGO_DE  # the methods _german.h does not reproduce stay pending
        elif country in with_algorithm or country in ibans._reference_only_countries():
            algo = _ALGO_REFERENCE  # a national check schwifty runs: matching.ibans decides
        else:
            algo = _ALGO_NONE
        parts = _bban_parts(body)
        if not (country.isascii() and country.isupper() and len(country) == 2) or length > 34:
            continue
        at = ((ord(country[0]) - 65) * 26 + ord(country[1]) - 65) * (4 + 2 * _IBAN_PARTS)
        table[at : at + 4] = bytes([length, algo, len(parts or ()), parts is not None])
        for i, (count, bits) in enumerate(parts or ()):
            table[at + 4 + i] = count
            table[at + 4 + _IBAN_PARTS + i] = bits
    return bytes(table)


@cache
def _german_args() -> tuple[bytes, bytes, bytes, int]:
    """The German tables as make_config takes them (all empty: German values stay pending)."""
    tables = ibans._german_tables()
    return tables.args() if tables is not None else (b"", b"", b"", 0)


@cache
def _phone_prefixes() -> bytes:
    table = bytearray(1000)
    for prefix in phones.FAST_PREFIXES:
        table[int(prefix)] = 1
    return bytes(table)


@cache
def _phone_automaton() -> tuple[bytes, bytes, bytes]:
    """``phones.phone_automaton`` as the scanner reads it: successors, accepting bits, codes.

    Empty tables (no national stage, phones past the fast path stay pending) when the metadata
    did not compile, or when its codes are not +33 then three-digit overseas codes.
    """
    automaton = phones.phone_automaton()
    if (
        automaton is None
        or automaton.codes != (33, *phones.OVERSEAS_CALLING_CODES)
        or len(automaton.codes) > 8  # the scanner keeps a state's accepting bits in a byte
    ):
        return b"", b"", b""
    overseas = "".join(str(code) for code in automaton.codes[1:])
    if len(overseas) != 3 * len(automaton.codes[1:]):
        return b"", b"", b""
    return (
        array("H", automaton.transitions).tobytes(),
        bytes(automaton.accepting),
        overseas.encode("ascii"),
    )


def warm_up() -> threading.Thread | None:
    """Build the scanner's tables (the phone automaton takes ~0.1 s) in a daemon thread.

    For callers that have other work first: acquiring a file is mostly SHA-256 in C with the
    GIL released, so the tables are ready by the time the first scan needs them. None when
    the extension is not built.
    """
    if not available():
        return None

    def build() -> None:
        _phone_automaton()
        _iban_table()
        _german_args()
        _phone_prefixes()

    global _warming
    thread = threading.Thread(target=build, name="leakwatch-scan-tables", daemon=True)
    thread.start()
    _warming = thread
    return thread


_warming: threading.Thread | None = None


@dataclass(frozen=True)
class _Plan:
    """What one table's scan needs: the C config and how to name its outputs."""

    config: Any
    keys: list[tuple[str, KeyKind]]  # per key slot: column, kind
    single_byte: bool
    encoding: str


def _plan(
    columns: list[str],
    encoding: str,
    delimiter: str,
    roles: Mapping[str, Category | None],
    default_region: str,
) -> _Plan:
    if _warming is not None:
        _warming.join()  # it builds the tables needed here: never twice at once
    scan = scan_module()
    mode = _mode(encoding)
    if scan is None or mode is None:
        raise ValueError("the native scanner cannot read this file")
    kinds = bytearray(len(columns))
    slots = array("H", [0] * len(columns))
    bits = array("H", [0] * len(columns))
    keys: list[tuple[str, KeyKind]] = []
    for i, column in enumerate(columns):
        category = roles.get(column)
        if category is None:
            continue
        bits[i] = CATEGORY_BITS[category]
        kind = _KEY_CATEGORIES.get(category)
        if kind is not None:
            kinds[i] = _KIND_CODES[kind]
            slots[i] = len(keys)
            keys.append((column, kind))
    single = mode == "single-byte"
    if single:
        byte_ws, byte_utf8 = _single_byte_tables(codecs.lookup(encoding).name)
        line_cap = FIELD_CAP // 3  # a byte becomes at most 3 UTF-8 bytes
    else:
        byte_ws, byte_utf8 = bytes(256), bytes(1024)
        line_cap = FIELD_CAP
    config = scan.make_config(
        ord(delimiter),
        bytes(kinds),
        slots.tobytes(),
        bits.tobytes(),
        single,
        byte_ws,
        byte_utf8,
        _utf8_white_space(),
        _phone_prefixes() if default_region == "FR" else b"",
        *(_phone_automaton() if default_region == "FR" else (b"", b"", b"")),
        _iban_table(),
        bytes(ibans._IT_ODD),
        bytes(ibans._ES_WEIGHTS),
        *_german_args(),
        line_cap,
    )
    return _Plan(config, keys, single, encoding)


# -- reading and scanning (the worker's side) -------------------------------------------------------


class _Decided(NamedTuple):
    """The values of one kind the scanner decided in one call (native-endian arrays as bytes)."""

    idx: bytes  # uint32: index of the value's record among the call's kept records
    offsets: bytes  # int64, n + 1 (Arrow layout): the canonical values in ``data``
    data: bytes
    words: bytes | None  # when hashed: n k1 words, then n k2 words (uint64)


class _ScanOut(NamedTuple):
    """What one ``_scan.scan`` call returns, by name (see its docstring)."""

    pos: int
    next_row: int
    lines: int
    stop: bool
    rows: bytes
    cats: bytes
    decided: dict[KeyKind, _Decided]
    rej_idx: bytes
    rej_slot: bytes
    rej_reason: bytes
    pend_idx: bytes
    pend_slot: bytes
    pend_off: bytes
    pend_data: bytes
    left_row: bytes
    left_start: bytes
    left_end: bytes
    bad_row: bytes
    bad_found: bytes

    @classmethod
    def of(cls, raw: tuple[Any, ...]) -> _ScanOut:
        """Name the scanner's tuple."""
        decided = {
            kind: _Decided._make((*raw[3 + 3 * code : 6 + 3 * code], None))
            for kind, code in _KIND_CODES.items()
        }
        return cls._make((*raw[:6], decided, *raw[15:]))

    def hashed(self, pepper: Pepper) -> _ScanOut:
        """The same output with each kind's decided values hashed (and their text dropped)."""
        decided = {
            kind: _Decided(d.idx, d.offsets, b"", hash_words(pepper, kind, d.data, d.offsets))
            if d.idx
            else d
            for kind, d in self.decided.items()
        }
        return self._replace(decided=decided)


class _Part(NamedTuple):
    """One scan call's result with the block it read (leftover spans point into it)."""

    block: bytes | memoryview
    block_offset: int  # file offset of block[0]
    out: _ScanOut
    batch_end: bool  # the current batch is full (or the file is done) after this part
    data_start: int  # file offset of the first line after the header


@dataclass(frozen=True)
class _Stop:
    """A line with an odd number of quotes: the csv-module path reads on from here."""

    offset: int  # file offset of the line
    lines_before: int  # physical lines before it (header included)
    next_row: int


_END = object()


def _parts(
    path: Path,
    plan: _Plan,
    header_lines: int,
    batch_rows: int,
    block_bytes: int,
) -> Iterator[_Part | _Stop]:
    scan = scan_module()
    assert scan is not None
    with path.open("rb") as f:
        read_ahead(f)
        if not plan.single_byte and f.read(3) != codecs.BOM_UTF8:
            f.seek(0)  # polars strips a BOM only at the very start of the file
        for _ in range(header_lines):
            f.readline()
        lines = header_lines
        offset = data_start = f.tell()
        next_row = 1
        in_batch = kept = 0  # records in the batch so far, and those the scanner kept
        carry = b""
        eof = False
        while not eof:
            let_go_before(f, offset)
            chunk = f.read(block_bytes)
            eof = not chunk
            whole = carry + chunk if carry else chunk
            block: bytes | memoryview = whole
            carry = b""
            if not eof:
                cut = whole.rfind(b"\n") + 1
                if cut == 0:
                    carry = whole  # one line longer than a block: read on
                    continue
                if cut < len(whole):
                    # The unfinished line is read again with the next block: seeking back
                    # costs a short read, where keeping it would copy every block twice.
                    f.seek(cut - len(whole), io.SEEK_CUR)
                    block = memoryview(whole)[:cut]
            pos = 0
            while pos < len(block):
                out = _ScanOut.of(
                    scan.scan(plan.config, block, pos, eof, next_row, batch_rows - in_batch, kept)
                )
                if out.pos == pos and not out.stop:
                    raise RuntimeError("the native scanner made no progress")
                pos, new_next, new_lines, stop = out.pos, out.next_row, out.lines, out.stop
                in_batch += new_next - next_row
                next_row, lines = new_next, lines + new_lines
                kept += len(out.rows) // 8
                full = in_batch >= batch_rows
                end = full or stop or (eof and pos >= len(block))
                if end:
                    in_batch = kept = 0
                yield _Part(block, offset, out, end, data_start)
                if stop:
                    yield _Stop(offset + pos, lines, next_row)
                    return
            offset += len(block)


def _prefetched(parts: Iterator[_Part | _Stop]) -> Iterator[_Part | _Stop]:
    """Run ``parts`` in a worker thread one step ahead: the scan releases the GIL."""
    q: queue.Queue[object] = queue.Queue(maxsize=2)
    done = threading.Event()

    def work() -> None:
        try:
            for item in parts:
                while not done.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if done.is_set():
                    return
            q.put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)

    worker = threading.Thread(target=work, name="leakwatch-fastscan", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, _Part | _Stop)
            yield item
    finally:
        done.set()
        while worker.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.05)


# -- frames from the scanner's buffers (the consumer's side) ----------------------------------------


def _numbers(raw: bytes, arrow_type: pa.DataType, width: int) -> pl.Series:
    array_ = pa.Array.from_buffers(arrow_type, len(raw) // width, [None, pa.py_buffer(raw)])
    series = pl.from_arrow(array_)
    assert isinstance(series, pl.Series)
    return series


def _joined(parts: Iterable[bytes | memoryview]) -> bytes:
    return b"".join(parts)


def _words(words: list[bytes]) -> tuple[pl.Series, pl.Series]:
    """k1 and k2 of several ``hash_words`` outputs (each: n k1 words, then n k2 words)."""
    views = [memoryview(w) for w in words]
    k1 = _joined(v[: len(v) // 2] for v in views)
    k2 = _joined(v[len(v) // 2 :] for v in views)
    return _numbers(k1, pa.uint64(), 8), _numbers(k2, pa.uint64(), 8)


def _strings(parts: list[tuple[bytes, bytes]]) -> pl.Series:
    """One string series of several (offsets, data) pairs in Arrow's large_string layout."""
    arrays = [
        pa.Array.from_buffers(
            pa.large_string(),
            len(offsets) // 8 - 1,
            [None, pa.py_buffer(offsets), pa.py_buffer(data)],
        )
        for offsets, data in parts
    ]
    series = pl.from_arrow(pa.chunked_array(arrays, type=pa.large_string()))
    assert isinstance(series, pl.Series)
    return series


class _Converter:
    """Turns scanner parts into normalised pieces; leftovers and pending values via Python."""

    def __init__(
        self,
        plan: _Plan,
        parser: _Parser,
        roles: Mapping[str, Category | None],
        default_region: str,
        pepper: Pepper | None,
    ) -> None:
        self.plan = plan
        self.parser = parser
        self.roles = roles
        self.default_region = default_region
        self.pepper = pepper  # the pepper decided values were hashed under as they were read
        self.slot_columns = [column for column, _ in plan.keys]

    def _by_slot(self, slots: pl.Series, names: list[str]) -> pl.Series:
        return slots.replace_strict(list(range(len(names))), names, return_dtype=pl.String())

    def records(self, part: _Part) -> list[NormalisedBatch]:
        """The part's malformed records (to ``table.rejects``) and its leftover lines, split
        and normalised by the Python path; what the scanner decided is left to ``batch``."""
        out = part.out
        if out.bad_row:
            found = array("Q", out.bad_found)
            for row, count in zip(array("Q", out.bad_row), found, strict=True):
                self.parser.reject(row, f"expected {self.parser.n} fields, found {count}")
        if not out.left_row:
            return []
        return list(self._leftovers(part, out.left_row, out.left_start, out.left_end))

    def batch(self, outs: list[_ScanOut]) -> tuple[NormalisedBatch, pl.DataFrame | None]:
        """One batch's natively decided records from its scan calls, and its pending values
        (row, categories, slot, value). The calls' arrays concatenate: their record indexes
        count from the batch's first record (``kept_base``)."""
        rows = pl.DataFrame(
            {
                "row": _numbers(_joined(o.rows for o in outs), pa.uint64(), 8),
                "categories": _numbers(_joined(o.cats for o in outs), pa.uint16(), 2),
            }
        )
        canonical: list[pl.DataFrame] = [pl.DataFrame(schema=CANONICAL_SCHEMA)]
        keys: list[pl.DataFrame] = [pl.DataFrame(schema=KEY_FRAME_SCHEMA)]
        for kind in _KIND_CODES:
            decided = [o.decided[kind] for o in outs if o.decided[kind].idx]
            if not decided:
                continue
            of_kind = rows[_numbers(_joined(d.idx for d in decided), pa.uint32(), 4)]
            kind_column = pl.lit(kind.value, dtype=KIND_DTYPE)
            if self.pepper is None:
                values = _strings([(d.offsets, d.data) for d in decided])
                canonical.append(
                    of_kind.select(
                        "row", kind=kind_column, canonical=values, categories="categories"
                    )
                )
            else:
                k1, k2 = _words([d.words for d in decided if d.words is not None])
                keys.append(
                    of_kind.select("row", kind=kind_column, k1=k1, k2=k2, categories="categories")
                )
        rejects = pl.DataFrame(schema=REJECT_SCHEMA)
        if any(o.rej_idx for o in outs):
            slots = _numbers(_joined(o.rej_slot for o in outs), pa.uint16(), 2)
            reasons = _numbers(_joined(o.rej_reason for o in outs), pa.uint8(), 1)
            rejects = rows[_numbers(_joined(o.rej_idx for o in outs), pa.uint32(), 4)].select(
                "row",
                column=self._by_slot(slots, self.slot_columns),
                reason=reasons.replace_strict(
                    list(_REASONS), list(_REASONS.values()), return_dtype=pl.String
                ),
            )
        pending = None
        if any(o.pend_idx for o in outs):
            at = _numbers(_joined(o.pend_idx for o in outs), pa.uint32(), 4)
            pending = rows[at].with_columns(
                slot=_numbers(_joined(o.pend_slot for o in outs), pa.uint16(), 2),
                value=_strings([(o.pend_off, o.pend_data) for o in outs if o.pend_idx]),
            )
        batch = NormalisedBatch(
            rows,
            pl.concat(canonical),
            rejects,
            pl.concat(keys),
            None if self.pepper is None else self.pepper.key_id,
        )
        return batch, pending

    def pending(self, pending: pl.DataFrame) -> NormalisedBatch:
        """Decide pending values with the exact normalisers, once per key column."""
        canonical: list[pl.DataFrame] = [pl.DataFrame(schema=CANONICAL_SCHEMA)]
        rejects: list[pl.DataFrame] = [pl.DataFrame(schema=REJECT_SCHEMA)]
        for slot, (column, kind) in enumerate(self.plan.keys):
            these = pending.filter(pl.col("slot") == slot)
            if these.height == 0:
                continue
            result = normalise(kind, these.get_column("value"), self.default_region)
            decided = these.with_columns(
                canonical=result.get_column("canonical"), reason=result.get_column("reason")
            )
            canonical.append(
                decided.filter(pl.col("canonical").is_not_null()).select(
                    "row",
                    kind=pl.lit(kind.value, dtype=KIND_DTYPE),
                    canonical="canonical",
                    categories="categories",
                )
            )
            rejects.append(
                decided.filter(pl.col("reason").is_not_null()).select(
                    "row", column=pl.lit(column), reason="reason"
                )
            )
        return NormalisedBatch(
            pl.DataFrame(schema={"row": pl.UInt64, "categories": pl.UInt16}),
            pl.concat(canonical),
            pl.concat(rejects),
        )

    def _leftovers(
        self, part: _Part, left_row: bytes, left_start: bytes, left_end: bytes
    ) -> Iterator[NormalisedBatch]:
        block = part.block
        spans = zip(array("q", left_start), array("q", left_end), strict=True)
        lines = [bytes(block[start:end]) for start, end in spans]
        if self.plan.single_byte:
            lines = [line.decode(self.plan.encoding, "replace").encode("utf-8") for line in lines]
        if part.block_offset + int(array("q", left_start)[0]) == part.data_start:
            # The first data line of the file, read as the old path reads it: at the start of
            # its input, where polars strips a BOM.
            data = b"\n".join(lines) + b"\n"
            frame = scan_physical_lines(io.BytesIO(data), 0).collect()
        else:
            # A first line that is not ours: polars strips a BOM at the start of its input,
            # which the old path did only at the start of the file.
            data = b"x\n" + b"\n".join(lines) + b"\n"
            frame = scan_physical_lines(io.BytesIO(data), 0).collect().slice(1)
        frame = frame.with_columns(
            pl.col("line").fill_null(""),
            pl.col("nul").fill_null(""),
            _numbers(left_row, pa.uint64(), 8).alias(ROW),
        )
        for fields in self.parser.split_numbered(frame.select(ROW, "line", "nul")):
            yield normalise_leak_batch(fields, self.roles, default_region=self.default_region)


def _merge(pieces: list[NormalisedBatch]) -> NormalisedBatch:
    if len(pieces) == 1:
        return pieces[0]
    key_ids = {p.keys_key_id for p in pieces if p.keys.height}
    assert len(key_ids) <= 1, "one scan hashes under one pepper"
    return NormalisedBatch(
        pl.concat([p.rows for p in pieces]),
        pl.concat([p.canonical for p in pieces]),
        pl.concat([p.rejects for p in pieces]),
        pl.concat([p.keys for p in pieces]),
        next(iter(key_ids), None),
    )


def scan_normalised(
    path: Path,
    *,
    encoding: str,
    dialect: Dialect,
    roles: Mapping[str, Category | None],
    default_region: str,
    batch_rows: int,
    table: Table,
    pepper: Pepper | None = None,
    overlap: bool = True,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[NormalisedBatch]:
    """Normalised batches of about ``batch_rows`` records of a delimited file, natively.

    Same rows, masks, canonical values and value rejects as ``table.batches()`` of
    ``read_delimited`` followed by ``normalise_leak_batch``; record rejects go to
    ``table.rejects`` and kept records are counted in ``table.rows_read`` as that path does.
    With a ``pepper``, the values the scanner decides are hashed as each scanned part arrives
    and come as ``keys`` instead of ``canonical`` (``hash_batch`` gives the same keys either way).
    ``overlap`` reads and scans the next block in a worker thread while this one is consumed.
    Check ``can_scan`` first.
    """
    if not can_scan(encoding, dialect):
        raise ValueError("the native scanner cannot read this file")
    table.parser = "delimited:native"
    plan = _plan(table.columns, encoding, dialect.delimiter, roles, default_region)
    parser = _Parser(table, path, dialect, batch_rows)
    convert = _Converter(plan, parser, roles, default_region, pepper)
    parts = _parts(path, plan, dialect.header_lines, batch_rows, block_bytes)
    outs: list[_ScanOut] = []
    pieces: list[NormalisedBatch] = []
    # A batch is built from its scan calls' arrays, and its pending values decided (exact
    # normalisers, partly pure Python), in a worker while this thread takes the next batch's
    # parts: one batch in flight.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="leakwatch-pending") as decide:
        in_flight: Future[NormalisedBatch] | None = None

        def hand_over() -> Iterator[NormalisedBatch]:
            nonlocal in_flight, outs, pieces
            submitted = decide.submit(_emit, table, convert, outs, pieces)
            outs, pieces = [], []
            if in_flight is not None:
                yield in_flight.result()
            in_flight = submitted

        for item in _prefetched(parts) if overlap else parts:
            if isinstance(item, _Stop):
                if outs or pieces:
                    yield from hand_over()
                if in_flight is not None:
                    yield in_flight.result()
                    in_flight = None
                yield from _slow_rest(path, plan, parser, item, roles, default_region, table)
                return
            pieces.extend(convert.records(item))
            # hashed here, not in the scanning worker: this thread is otherwise mostly waiting
            outs.append(item.out.hashed(pepper) if pepper is not None else item.out)
            if item.batch_end:
                yield from hand_over()
        if outs or pieces:
            yield from hand_over()
        if in_flight is not None:
            yield in_flight.result()


def _emit(
    table: Table,
    convert: _Converter,
    outs: list[_ScanOut],
    pieces: list[NormalisedBatch],
) -> NormalisedBatch:
    """A batch: what the scanner decided, its pending values decided, and its leftover lines."""
    native, pending = convert.batch(outs)
    pieces = [native, *pieces]
    if pending is not None:
        pieces.append(convert.pending(pending))
    batch = _merge(pieces)
    table.rows_read += batch.rows.height
    return batch


def _slow_rest(
    path: Path,
    plan: _Plan,
    parser: _Parser,
    stop: _Stop,
    roles: Mapping[str, Category | None],
    default_region: str,
    table: Table,
) -> Iterator[NormalisedBatch]:
    """From the first line with an odd number of quotes: the csv module, as the old path does."""
    parser.next_row = stop.next_row
    skip = stop.lines_before
    with path.open("rb") as raw:
        if plan.single_byte:
            # the old path decoded its UTF-8 transcript; decoding the bytes directly is the same
            raw.seek(0 if skip == 0 else stop.offset)
            encoding = plan.encoding
        elif skip == 0:
            encoding = "utf-8-sig"  # from the first byte, BOM included, as the old path reads
        else:
            raw.seek(stop.offset)
            encoding = "utf-8"
        for frame in parser.csv_stream(raw, skip, encoding):
            batch = normalise_leak_batch(frame, roles, default_region=default_region)
            table.rows_read += batch.rows.height
            yield batch
