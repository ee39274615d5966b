"""Delimited text (CSV, semicolon, tab, pipe): dialect and header sniffing, streamed parsing."""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

import polars as pl

from connectors.base import ROW, DelimitedLayout, RowReject, Table

__all__ = [
    "DELIMITERS",
    "FIELD_CAP",
    "Dialect",
    "Rebatcher",
    "clean_names",
    "detect_dialect",
    "read_delimited",
]

DELIMITERS = (",", ";", "\t", "|")
FIELD_CAP = 1024 * 1024  # a field longer than this (bytes) rejects its record, not the file
_QUOTE = '"'
_CHUNK = 1024 * 1024
# What ``Table.head`` parses: a first prefix holds a role sample's 2,000 records of up to about
# 128 bytes; wider ones take the longer prefix, thousands of records usually.
_HEAD_PREFIXES = (256 * 1024, 4 * 1024 * 1024)
_SAMPLE_RECORDS = 500
# Encodings polars reads natively (the fast path); others are transcoded to a UTF-8 temp file.
_NATIVE = {"utf-8", "utf_8", "utf8", "utf-8-sig", "utf_8_sig", "ascii"}

_DIGITS = re.compile(r"\d")
_NAME_CHARS = re.compile(r"^[\w .#()/'’:\-]+$")
_IBANISH = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9 ]{10,}$", re.IGNORECASE)
_DATEISH = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")


@dataclass(frozen=True)
class Dialect:
    """What the sample told us: the delimiter, whether line 1 is a header, the column names."""

    delimiter: str
    has_header: bool
    columns: list[str]
    header_lines: int  # physical lines taken by the header (0 without one)


def _records(text: str, delimiter: str, limit: int = _SAMPLE_RECORDS) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline="\n"), delimiter=delimiter, quotechar=_QUOTE)
    out: list[list[str]] = []
    try:
        for rec in reader:
            if rec:
                out.append(rec)
            if len(out) >= limit:
                break
    except csv.Error:
        pass  # a sample can end inside a quoted field or hold broken quoting: judge what we have
    return out


def _name_like(field: str) -> bool:
    f = field.strip().lstrip("\ufeff")
    if not f or len(f) > 64 or "@" in f:
        return False
    if len(_DIGITS.findall(f)) * 2 >= len(f):
        return False
    if _IBANISH.match(f.replace(" ", "")) or _DATEISH.match(f):
        return False
    return bool(_NAME_CHARS.match(f))


def _looks_like_header(records: list[list[str]]) -> bool:
    from connectors.roles import header_category  # roles imports nothing from here

    first = records[0]
    if not all(_name_like(f) for f in first):
        return False
    if sum(header_category(f) is not None for f in first) * 2 >= len(first):
        return True
    rest = records[1:]
    if not rest:
        return True
    if len({f.strip().lower() for f in first}) < len(first):
        return False  # repeated names: more likely a data row of repeated values
    # a header differs from the data under it: some column whose values are not name-like
    for i in range(len(first)):
        values = [r[i] for r in rest if i < len(r) and r[i].strip()]
        if values and sum(not _name_like(v) for v in values) * 2 > len(values):
            return True
    return False


def clean_names(fields: Sequence[str]) -> list[str]:
    """Header names stripped, BOM removed, empty ones named colN, duplicates suffixed _2, _3."""
    names: list[str] = []
    seen: Counter[str] = Counter()
    for i, raw in enumerate(fields, start=1):
        name = raw.replace("\ufeff", "").strip() or f"col{i}"
        seen[name] += 1
        if seen[name] > 1:
            candidate = f"{name}_{seen[name]}"
            while candidate in seen:
                seen[name] += 1
                candidate = f"{name}_{seen[name]}"
            seen[candidate] += 1
            name = candidate
        names.append(name)
    return names


def detect_dialect(text: str, *, has_header: bool | None = None) -> Dialect:
    """Pick the delimiter with the most consistent field count; decide if line 1 is a header."""
    text = text.lstrip("\ufeff")
    best: tuple[float, int, int] = (-1.0, 0, 0)
    best_delim = ","
    best_records: list[list[str]] = []
    for priority, delim in enumerate(DELIMITERS):
        records = _records(text, delim)
        if not records:
            continue
        counts = Counter(len(r) for r in records)
        width, freq = counts.most_common(1)[0]
        score = (freq / len(records) if width > 1 else 0.0, width, -priority)
        if score > best:
            best, best_delim, best_records = score, delim, records
    if not best_records:
        best_records = [[""]]
    header = _looks_like_header(best_records) if has_header is None else has_header
    width = Counter(len(r) for r in best_records).most_common(1)[0][0]
    if header:
        columns = clean_names(best_records[0])
        reader = csv.reader(io.StringIO(text, newline="\n"), delimiter=best_delim)
        try:
            next(reader)
            header_lines = reader.line_num
        except (csv.Error, StopIteration):
            header_lines = 1
    else:
        columns = [f"col{i}" for i in range(1, width + 1)]
        header_lines = 0
    return Dialect(best_delim, header, columns, header_lines)


class Rebatcher:
    """Re-cut a stream of frames into frames of exactly ``size`` rows (the last may be shorter)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._parts: list[pl.DataFrame] = []
        self._rows = 0

    def push(self, frame: pl.DataFrame) -> Iterator[pl.DataFrame]:
        if frame.height == 0:
            return
        self._parts.append(frame)
        self._rows += frame.height
        while self._rows >= self.size:
            whole = pl.concat(self._parts, rechunk=False)
            yield whole.slice(0, self.size).rechunk()
            rest = whole.slice(self.size)
            self._parts = [rest] if rest.height else []
            self._rows = rest.height

    def flush(self) -> Iterator[pl.DataFrame]:
        if self._rows:
            yield pl.concat(self._parts).rechunk()
        self._parts, self._rows = [], 0


def scan_physical_lines(source: Path | IO[bytes], skip_lines: int) -> pl.LazyFrame:
    """Physical lines of UTF-8 text (lossy) as "line" and, after a first NUL byte, "nul".

    "nul" holds what follows the first NUL up to the next one (or the line end); "" when the
    line has no NUL. polars strips a BOM at the start of ``source`` and one ``\\r`` before
    each line end.
    """
    return pl.scan_csv(
        source,
        has_header=False,
        separator="\x00",
        quote_char=None,
        schema={"line": pl.String, "nul": pl.String},
        encoding="utf8-lossy",
        truncate_ragged_lines=True,
        missing_columns="insert",
        extra_columns="ignore",  # a second NUL: else polars refuses the file on a first line
        empty_string_is_null=False,
        skip_lines=skip_lines,
    )


def transcode_to_utf8(path: Path, encoding: str, work_dir: Path) -> Path:
    """Stream ``path`` from ``encoding`` into a UTF-8 temp file under ``work_dir``."""
    work_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=work_dir, prefix="leakwatch-", suffix=".utf8")
    decoder = codecs.getincrementaldecoder(encoding)("replace")
    try:
        with path.open("rb") as src, os.fdopen(fd, "wb") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(decoder.decode(chunk).encode("utf-8"))
            dst.write(decoder.decode(b"", final=True).encode("utf-8"))
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


class _Parser:
    """Parses one delimited UTF-8 file into ROW-numbered all-string frames, recording rejects."""

    def __init__(self, table: Table, src: Path, dialect: Dialect, batch_rows: int) -> None:
        self.table = table
        self.src = src
        self.delim = dialect.delimiter
        self.columns = table.columns
        self.n = len(table.columns)
        self.skip = dialect.header_lines
        self.batch_rows = batch_rows
        self.next_row = 1

    def reject(self, row: int, reason: str, column: str | None = None) -> None:
        self.table.rejects.append(RowReject(row=row, reason=reason, column=column))

    def _finish(self, frame: pl.DataFrame, *, check_cap: bool = True) -> pl.DataFrame:
        """Empty fields become null, over-long fields reject their record, ROW goes first."""
        frame = frame.select(
            pl.col(ROW).cast(pl.UInt64),
            *[pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in self.columns],
        )
        if not check_cap:
            return frame
        long_by_col = [pl.col(c).str.len_bytes() > FIELD_CAP for c in self.columns]
        too_long = frame.select(pl.any_horizontal(long_by_col).fill_null(False)).to_series()
        if too_long.any():
            bad = frame.filter(too_long)
            for rec in bad.iter_rows(named=True):
                col = next(
                    c
                    for c in self.columns
                    if rec[c] is not None and len(rec[c].encode("utf-8")) > FIELD_CAP
                )
                self.reject(rec[ROW], "field larger than 1 MiB", col)
            frame = frame.filter(~too_long)
        return frame

    # -- fast path: physical lines read natively, split in polars -------------------------------
    def _line_frames(self) -> Iterator[pl.DataFrame]:
        lf = scan_physical_lines(self.src, self.skip)
        lines_done = self.skip
        for chunk in lf.collect_batches(chunk_size=self.batch_rows):
            lines = chunk.get_column("line").fill_null("")
            nul = chunk.get_column("nul").fill_null("")
            stop_at: int | None = None
            if lines.str.contains(_QUOTE, literal=True).any():
                odd = lines.str.count_matches(_QUOTE, literal=True) % 2 == 1
                if odd.any():
                    # a quoted field spans lines (or quoting is broken): from here the slow path
                    stop_at = int(odd.arg_true()[0])
                    lines, nul = lines.head(stop_at), nul.head(stop_at)
            yield from self._split_lines(lines, nul)
            if stop_at is not None:
                yield from self._csv_frames(lines_done + stop_at)
                return
            lines_done += chunk.height

    def _split_lines(self, lines: pl.Series, nul: pl.Series) -> Iterator[pl.DataFrame]:
        # A blank line is no record; one that starts with a NUL byte and more is (refused below).
        frame = pl.DataFrame({"line": lines, "nul": nul}).filter(
            (pl.col("line") != "") | (pl.col("nul") != "")
        )
        if frame.height == 0:
            return
        start = self.next_row
        self.next_row += frame.height
        frame = frame.with_columns(
            pl.int_range(start, start + frame.height, dtype=pl.UInt64).alias(ROW)
        )
        yield from self.split_numbered(frame)

    def split_numbered(self, frame: pl.DataFrame) -> Iterator[pl.DataFrame]:
        """Split non-empty lines already numbered (columns "line", "nul", ROW) into fields."""
        if frame.height == 0:
            return
        d = self.delim
        frame = frame.with_columns(
            pl.col("line").str.contains(_QUOTE, literal=True).alias("quoted"),
            (pl.col("line").str.count_matches(d, literal=True) + 1).alias("found"),
        )
        quoted_rows = frame.get_column("quoted").arg_true()
        if quoted_rows.len():
            # delimiters inside quotes do not separate fields; the regex only where quotes are
            inside = frame.select(
                pl.col("line")
                .gather(quoted_rows)
                .str.replace_all(r'"[^"]*"', "")
                .str.count_matches(d, literal=True)
                + 1
            ).to_series()
            frame = frame.with_columns(frame.get_column("found").scatter(quoted_rows, inside))
        bad = (pl.col("nul") != "") | (pl.col("found") != self.n)
        if frame.select(bad.any()).item():
            for row, nul_part, found in frame.filter(bad).select(ROW, "nul", "found").iter_rows():
                if nul_part:
                    self.reject(row, "NUL byte in record")
                else:
                    self.reject(row, f"expected {self.n} fields, found {found}")
            frame = frame.filter(~bad)
        plain = frame.filter(~pl.col("quoted"))
        parts: list[pl.DataFrame] = []
        if plain.height:
            if self.n == 1:
                fields = plain.select(pl.col("line").alias(self.columns[0]))
            else:
                fields = (
                    plain.get_column("line")
                    .str.split_exact(d, self.n - 1)
                    .struct.rename_fields(self.columns)
                    .struct.unnest()
                )
            parts.append(pl.concat([plain.select(ROW), fields], how="horizontal"))
        quoted = frame.filter(pl.col("quoted"))
        if quoted.height:
            parts.append(self._parse_quoted(quoted))
        if parts:
            out = pl.concat(parts) if len(parts) > 1 else parts[0]
            if len(parts) > 1:
                out = out.sort(ROW)
            # no field can exceed the cap when no line does
            long_line = frame.select(pl.col("line").str.len_bytes().max()).item() or 0
            yield self._finish(out, check_cap=long_line > FIELD_CAP)

    def _parse_quoted(self, quoted: pl.DataFrame) -> pl.DataFrame:
        """Single-line quoted records: polars' CSV reader, or the csv module line by line."""
        lines = quoted.get_column("line")
        schema = {c: pl.String for c in self.columns}
        try:
            # one string built by polars: a Python list of the lines cost more than the parse
            text = pl.select(pl.lit(lines).str.join("\n")).item()
            parsed = pl.read_csv(
                io.BytesIO(text.encode("utf-8")),
                has_header=False,
                separator=self.delim,
                quote_char=_QUOTE,
                schema=schema,
                empty_string_is_null=False,
            )
            if parsed.height == quoted.height:
                return pl.concat([quoted.select(ROW), parsed], how="horizontal")
        except pl.exceptions.PolarsError:
            pass  # never surface polars' message: it quotes cell values
        rows: list[int] = []
        values: list[list[str]] = []
        for row, line in quoted.select(ROW, "line").iter_rows():
            try:
                rec = next(csv.reader([line], delimiter=self.delim, strict=True))
            except csv.Error:
                self.reject(row, "broken quoting")
                continue
            if len(rec) != self.n:
                self.reject(row, f"expected {self.n} fields, found {len(rec)}")
                continue
            rows.append(row)
            values.append(rec)
        return self._frame(rows, values)

    def _frame(self, rows: list[int], values: list[list[str]]) -> pl.DataFrame:
        data: dict[str, pl.Series] = {ROW: pl.Series(ROW, rows, dtype=pl.UInt64)}
        for i, c in enumerate(self.columns):
            data[c] = pl.Series(c, [v[i] for v in values], dtype=pl.String)
        return pl.DataFrame(data)

    # -- slow path: the csv module, strict, record by record -------------------------------------
    def _csv_frames(self, skip_lines: int) -> Iterator[pl.DataFrame]:
        with self.src.open("rb") as raw:
            for _ in range(skip_lines):
                raw.readline()
            yield from self.csv_stream(raw, skip_lines, "utf-8-sig" if skip_lines == 0 else "utf-8")

    def csv_stream(self, raw: BinaryIO, skip_lines: int, encoding: str) -> Iterator[pl.DataFrame]:
        """Records of ``raw`` (positioned after ``skip_lines`` physical lines) by the csv module."""
        if csv.field_size_limit() < FIELD_CAP:
            csv.field_size_limit(FIELD_CAP)
        text = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
        reader = csv.reader(text, delimiter=self.delim, quotechar=_QUOTE, strict=True)
        rows: list[int] = []
        values: list[list[str]] = []
        while True:
            first_line = reader.line_num + 1 + skip_lines
            try:
                rec = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                row = self.next_row
                self.next_row += 1
                last_line = reader.line_num + skip_lines
                what = (
                    "field larger than 1 MiB" if "field limit" in str(exc) else ("broken quoting")
                )
                self.reject(row, f"{what} (physical lines {first_line}-{last_line})")
                continue
            if not rec:
                continue
            row = self.next_row
            self.next_row += 1
            if len(rec) != self.n:
                self.reject(row, f"expected {self.n} fields, found {len(rec)}")
                continue
            rows.append(row)
            values.append(rec)
            if len(rows) >= self.batch_rows:
                yield self._finish(self._frame(rows, values))
                rows, values = [], []
        if rows:
            yield self._finish(self._frame(rows, values))


def read_delimited(
    path: Path,
    *,
    name: str,
    encoding: str,
    sample: str,
    batch_rows: int,
    work_dir: Path,
    has_header: bool | None = None,
) -> Table:
    """A Table over a delimited text file; non-UTF-8 files are transcoded when batches are read."""
    dialect = detect_dialect(sample, has_header=has_header)
    native = codecs.lookup(encoding).name in {codecs.lookup(e).name for e in _NATIVE}

    def produce(table: Table) -> Iterator[pl.DataFrame]:
        tmp: Path | None = None
        try:
            src = path if native else (tmp := transcode_to_utf8(path, encoding, work_dir))
            parser = _Parser(table, src, dialect, batch_rows)
            rebatch = Rebatcher(batch_rows)
            for frame in parser._line_frames():
                for out in rebatch.push(frame):
                    table.rows_read += out.height
                    yield out
            for out in rebatch.flush():
                table.rows_read += out.height
                yield out
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def head(rows: int) -> pl.DataFrame:
        return _head(path, encoding, dialect, rows, work_dir)

    return Table(
        name=name,
        columns=dialect.columns,
        has_header=dialect.has_header,
        parser=f"delimited:{'fast' if native else 'transcoded'}",
        produce=produce,
        encoding=encoding,
        layout=DelimitedLayout(path, encoding, dialect),
        head=head,
    )


def _head(path: Path, encoding: str, dialect: Dialect, rows: int, work_dir: Path) -> pl.DataFrame:
    """The first ``rows`` records as ``batches()`` would give them, from the file's first bytes.

    The head is cut at its last line end, transcoded to UTF-8 into a temp file and parsed by
    the same parser; records and rejects of this parse are thrown away. A short prefix is
    enough when it holds more than ``rows`` records: only its last one can be cut short.
    """
    for size in _HEAD_PREFIXES:
        with path.open("rb") as f:
            raw = f.read(size)
        whole = len(raw) < size
        if not whole and b"\n" in raw:
            raw = raw[: raw.rindex(b"\n") + 1]
        frame = _parse_head(raw, encoding, dialect, rows + 1, work_dir)
        if whole or frame.height > rows:
            break
    return frame.head(rows)


def _parse_head(
    raw: bytes, encoding: str, dialect: Dialect, rows: int, work_dir: Path
) -> pl.DataFrame:
    """Up to ``rows`` records of a file's first bytes (cut at a line end)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=work_dir, prefix="leakwatch-", suffix=".head")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as dst:
            dst.write(raw.decode(encoding, errors="replace").encode("utf-8"))
        scratch = Table(
            name="head",
            columns=dialect.columns,
            has_header=dialect.has_header,
            parser="head",
            produce=lambda _: iter(()),
        )
        parser = _Parser(scratch, tmp, dialect, rows)
        parts: list[pl.DataFrame] = []
        taken = 0
        for frame in parser._line_frames():
            parts.append(frame)
            taken += frame.height
            if taken >= rows:
                break
    finally:
        tmp.unlink(missing_ok=True)
    schema = {ROW: pl.UInt64, **{c: pl.String for c in dialect.columns}}
    return pl.concat(parts).head(rows) if parts else pl.DataFrame(schema=schema)
