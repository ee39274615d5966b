"""SQL dumps (MySQL INSERTs, PostgreSQL COPY blocks and INSERTs): one Table per table with data.

One streamed pass: a tokenizer reads the file in chunks (never whole) with linear, possessive
regular expressions; INSERT tuples and COPY lines become records of their table. Tables can
interleave, so each table keeps a small buffer and the pass spills full batches (and, when all
buffers together hold ``batch_rows`` records, the largest buffer) to Arrow files in the work
folder; the Tables read them back and delete them. A malformed statement becomes a RowReject
(the record number it would have had in its table) and parsing resumes after the next ``;``.
Every table with data is yielded, identifier-looking or not: role detection decides.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import polars as pl

from connectors.base import ROW, Artifact, RowReject, Table
from connectors.delimited import clean_names
from connectors.textwindow import TextWindow
from core.errors import InputError

__all__ = ["MAX_TOKEN_CHARS", "read_sql_dump"]

_CHUNK = 1024 * 1024
MAX_TOKEN_CHARS = 16 * 1024 * 1024  # one value (or COPY line) larger than this refuses the dump

_TAIL = r"""
 | (?P<bq>`(?:[^`]++|``)*+(?:`|\Z))
 | (?P<dq>"(?:[^"\\]++|\\.|"")*+(?:"|\\?\Z))
 | (?P<hex>0[xX][0-9A-Fa-f]++)
 | (?P<num>[-+]?(?:[0-9]++(?:\.[0-9]*+)?+|\.[0-9]++)(?:[eE][-+]?[0-9]++)?+)
 | (?P<word>[A-Za-z_][A-Za-z0-9_$]*+)
 | (?P<other>.)
"""
_HEAD = r"""
   (?P<ws>\s++)
 | (?P<comment>--[^\n]*+(?:\n|\Z)|/\*(?:[^*]++|\*(?!/))*+(?:\*/|\Z))
"""
_BACKSLASH_STR = r"(?P<str>'(?:[^'\\]++|\\.|'')*+(?:'|\\?\Z))"
_PLAIN_STR = r"(?P<str>'(?:[^']++|'')*+(?:'|\Z))"
_E_STR = r"(?P<estr>[eE]'(?:[^'\\]++|\\.|'')*+(?:'|\\?\Z))"
_FLAGS = re.VERBOSE | re.DOTALL
_TOKEN_MYSQL = re.compile(_HEAD + " | " + _BACKSLASH_STR + _TAIL, _FLAGS)
_TOKEN_PG = re.compile(_HEAD + " | " + _E_STR + " | " + _PLAIN_STR + _TAIL, _FLAGS)

_MYSQL_ESCAPES = {"0": "\x00", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}
_MYSQL_ESCAPE = re.compile(r"\\(.)|''", re.DOTALL)
_PG_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_PG_ESCAPE = re.compile(
    r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)|''", re.DOTALL
)
_NOT_COLUMNS = {
    "PRIMARY", "KEY", "UNIQUE", "CONSTRAINT", "INDEX", "FOREIGN", "CHECK", "FULLTEXT",
    "SPATIAL", "EXCLUDE", "LIKE", "PERIOD",
}  # fmt: skip

Token = tuple[str, str]


class _Malformed(Exception):
    """The current statement cannot be read; skip to the next ``;``."""


def _mysql_unescape(m: re.Match[str]) -> str:
    ch = m.group(1)
    if ch is None:
        return "'"
    if ch in "%_":
        return "\\" + ch  # MySQL keeps these escapes outside LIKE patterns
    return _MYSQL_ESCAPES.get(ch, ch)


def _pg_unescape(m: re.Match[str]) -> str:
    esc = m.group(1)
    if esc is None:
        return "'"
    try:
        if esc[0] == "x":
            return chr(int(esc[1:], 16))
        if esc[0] in "01234567":
            return chr(int(esc, 8))
        if esc[0] in "uU" and len(esc) > 1:
            return chr(int(esc[1:], 16))
    except (ValueError, OverflowError):
        return "\ufffd"
    return _PG_ESCAPES.get(esc, esc)


def _copy_unescape(m: re.Match[str]) -> str:
    esc = m.group(1)
    if esc is None:
        return "''"
    return _pg_unescape(m)


class _Lexer(TextWindow):
    """Tokens from a text stream read in chunks; a token cut by a chunk end is read again whole."""

    def __init__(self, f: TextIO, postgres: bool, backslash_strings: bool) -> None:
        super().__init__(f, _CHUNK)
        self.pattern = _TOKEN_PG if postgres else _TOKEN_MYSQL
        self.postgres = postgres
        self.backslash_strings = backslash_strings
        self.pushed: list[Token] = []

    def next(self) -> Token | None:
        if self.pushed:
            return self.pushed.pop()
        while True:
            if self.pos >= len(self.buf) and not self._more():
                return None
            m = self.pattern.match(self.buf, self.pos)
            assert m is not None  # the last alternative matches any character
            if m.end() == len(self.buf) and not self.eof:
                if m.end() - self.pos > MAX_TOKEN_CHARS:
                    raise InputError(f"SQL value larger than {MAX_TOKEN_CHARS} characters")
                self._more()
                continue
            self.pos = m.end()
            kind = m.lastgroup or "other"
            if kind in ("ws", "comment"):
                continue
            return kind, m.group()

    def push(self, token: Token) -> None:
        self.pushed.append(token)

    def line(self) -> str | None:
        """The rest of the current line (COPY data), without its line end; None at the end."""
        assert not self.pushed
        while True:
            end = self.buf.find("\n", self.pos)
            if end >= 0:
                text = self.buf[self.pos : end]
                self.pos = end + 1
                return text.removesuffix("\r")
            if len(self.buf) - self.pos > MAX_TOKEN_CHARS:
                raise InputError(f"COPY line larger than {MAX_TOKEN_CHARS} characters")
            if not self._more():
                if self.pos < len(self.buf):
                    text = self.buf[self.pos :]
                    self.pos = len(self.buf)
                    return text.removesuffix("\r")
                return None

    def string(self, kind: str, text: str) -> str:
        if kind == "estr":
            return _PG_ESCAPE.sub(_pg_unescape, text[2:-1])
        inner = text[1:-1]
        if self.backslash_strings:
            return (
                _MYSQL_ESCAPE.sub(_mysql_unescape, inner)
                if ("\\" in inner or "''" in inner)
                else inner
            )
        return inner.replace("''", "'")


def _identifier(token: Token) -> str:
    kind, text = token
    if kind == "word":
        return text
    if kind == "bq":
        return text[1:-1].replace("``", "`")
    if kind == "dq":
        return text[1:-1].replace('""', '"')
    raise _Malformed


@dataclass
class _TableState:
    name: str
    columns: list[str] | None = None
    named: bool = False
    created: list[str] | None = None
    numbers: list[int] = field(default_factory=list)
    records: list[list[str | None]] = field(default_factory=list)
    spills: list[Path] = field(default_factory=list)
    rejects: list[RowReject] = field(default_factory=list)
    next_row: int = 1
    rows: int = 0


_Handler = Callable[[list[_TableState]], None]


class _Dump:
    """One pass over a dump, filling per-table buffers and spill files."""

    def __init__(self, lexer: _Lexer, batch_rows: int, spill_dir: Path) -> None:
        self.lex = lexer
        self.batch_rows = batch_rows
        self.spill_dir = spill_dir
        self.tables: dict[str, _TableState] = {}
        self.buffered = 0
        self.last: Token | None = None

    # -- tokens ---------------------------------------------------------------------------------
    def take(self) -> Token:
        token = self.lex.next()
        if token is None:
            raise _Malformed
        self.last = token
        return token

    def word(self) -> str:
        kind, text = self.take()
        if kind != "word":
            raise _Malformed
        return text.upper()

    def expect(self, text: str) -> None:
        if self.take()[1] != text:
            raise _Malformed

    def skip(self) -> None:
        """Up to and including the next ``;`` (or the end)."""
        while (token := self.lex.next()) is not None:
            if token[1] == ";":
                return

    def table_name(self) -> str:
        name = _identifier(self.take())
        while True:
            token = self.lex.next()
            if token is None:
                return name
            if token[1] != ".":
                self.lex.push(token)
                return name
            name = _identifier(self.take())

    def name_list(self) -> list[str]:
        names = [_identifier(self.take())]
        while (token := self.take())[1] == ",":
            names.append(_identifier(self.take()))
        if token[1] != ")":
            raise _Malformed
        return names

    def state(self, name: str) -> _TableState:
        if name not in self.tables:
            self.tables[name] = _TableState(name)
        return self.tables[name]

    # -- statements -----------------------------------------------------------------------------
    def run(self) -> None:
        while (token := self.lex.next()) is not None:
            kind, text = token
            up = text.upper() if kind == "word" else ""
            if up in ("INSERT", "REPLACE"):
                self.statement(self.insert)
            elif up == "CREATE":
                self.statement(self.create)
            elif up == "COPY":
                self.statement(self.copy)
            elif text != ";":
                self.skip()

    def statement(self, handler: _Handler) -> None:
        table: list[_TableState] = []
        self.last = None
        try:
            handler(table)
        except _Malformed:
            if table:
                st = table[0]
                st.rejects.append(
                    RowReject(
                        row=st.next_row, reason="malformed SQL statement (rest of it skipped)"
                    )
                )
                st.next_row += 1
            if self.last is None or self.last[1] != ";":  # the statement's end not yet read
                self.skip()

    def create(self, _table: list[_TableState]) -> None:
        word = self.word()
        while word in ("TEMPORARY", "TEMP", "GLOBAL", "LOCAL", "UNLOGGED", "OR", "REPLACE"):
            word = self.word()
        if word != "TABLE":
            self.skip()
            return
        token = self.take()
        if token[0] == "word" and token[1].upper() == "IF":
            self.word(), self.word()  # NOT EXISTS
            token = self.take()
        self.lex.push(token)
        name = self.table_name()
        if self.take()[1] != "(":
            self.skip()
            return
        columns: list[str] = []
        depth = 1
        start = True
        while depth:
            token = self.take()
            if start:
                start = False
                if not (token[0] == "word" and token[1].upper() in _NOT_COLUMNS):
                    columns.append(_identifier(token))
                    continue
            if token[1] == "(":
                depth += 1
            elif token[1] == ")":
                depth -= 1
            elif token[1] == "," and depth == 1:
                start = True
        st = self.state(name)
        if columns and st.rows == 0 and not st.rejects:
            st.created = columns
        self.skip()

    def insert(self, table: list[_TableState]) -> None:
        token = self.take()
        while token[1].upper() in ("LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE"):
            token = self.take()
        if token[1].upper() != "INTO":
            self.lex.push(token)
        st = self.state(self.table_name())
        table.append(st)
        token = self.take()
        listed: list[str] | None = None
        if token[1] == "(":
            listed = self.name_list()
            token = self.take()
        if token[0] != "word" or token[1].upper() not in ("VALUES", "VALUE"):
            raise _Malformed
        while True:
            self.expect("(")
            self.add(st, listed, self.values())
            after = self.lex.next()
            if after is None or after[1] == ";":
                return
            if after[1] != ",":
                self.lex.push(after)
                self.skip()  # ON DUPLICATE KEY UPDATE ..., RETURNING ...
                return

    def values(self) -> list[str | None]:
        out: list[str | None] = []
        while True:
            out.append(self.value())
            token = self.take()
            while token[1] == ":":  # PostgreSQL casts: 'x'::text
                self.expect(":")
                depth = 0
                while True:
                    token = self.take()
                    if token[1] == "(":
                        depth += 1
                    elif token[1] == ")" and depth:
                        depth -= 1
                    elif token[1] in (",", ")") and not depth:
                        break
            if token[1] == ")":
                return out
            if token[1] != ",":
                raise _Malformed

    def value(self) -> str | None:
        kind, text = self.take()
        if kind in ("str", "estr"):
            return self.lex.string(kind, text)
        if kind in ("num", "hex"):
            return text
        if kind == "word":
            up = text.upper()
            if up in ("NULL", "DEFAULT"):
                return None
            if up in ("TRUE", "FALSE"):
                return up.lower()
            nxt = self.take()
            if nxt[0] in ("str", "estr") and text.startswith("_"):  # _binary '...', _utf8mb4'...'
                return self.lex.string(nxt[0], nxt[1])
            if nxt[0] == "str" and up in ("X", "B", "N"):
                return text + nxt[1] if up != "N" else self.lex.string(nxt[0], nxt[1])
            if nxt[0] == "hex" and text.startswith("_"):
                return nxt[1]
        raise _Malformed

    def copy(self, table: list[_TableState]) -> None:
        st = self.state(self.table_name())
        token = self.take()
        listed: list[str] | None = None
        if token[1] == "(":
            listed = self.name_list()
            token = self.take()
        if token[0] != "word" or token[1].upper() != "FROM":
            self.lex.push(token)
            self.skip()
            return
        if self.word() != "STDIN":
            self.skip()
            return
        self.skip()
        self.lex.line()  # the rest of the COPY line
        table.append(st)
        while (line := self.lex.line()) is not None:
            if line == "\\.":
                return
            fields: list[str | None] = [
                None if f == "\\N" else (_PG_ESCAPE.sub(_copy_unescape, f) if "\\" in f else f)
                for f in line.split("\t")
            ]
            self.add(st, listed, fields)

    # -- records --------------------------------------------------------------------------------
    def add(self, st: _TableState, listed: list[str] | None, values: list[str | None]) -> None:
        row = st.next_row
        st.next_row += 1
        if st.columns is None:
            if listed is not None:
                st.columns, st.named = clean_names(listed), True
            elif st.created is not None:
                st.columns, st.named = clean_names(st.created), True
            else:
                st.columns = [f"col{i}" for i in range(1, len(values) + 1)]
        n = len(st.columns)
        if listed is not None and clean_names(listed) != st.columns:
            placed: list[str | None] = [None] * n
            names = clean_names(listed)
            if len(names) != len(values) or not set(names) <= set(st.columns):
                st.rejects.append(
                    RowReject(row=row, reason="INSERT column list does not fit the table")
                )
                return
            for name, value in zip(names, values, strict=True):
                placed[st.columns.index(name)] = value
            values = placed
        if len(values) != n:
            st.rejects.append(
                RowReject(row=row, reason=f"expected {n} values, found {len(values)}")
            )
            return
        st.numbers.append(row)
        st.records.append([v if v != "" else None for v in values])
        st.rows += 1
        self.buffered += 1
        if len(st.records) >= self.batch_rows:
            self.spill(st)
        elif self.buffered >= self.batch_rows:
            self.spill(max(self.tables.values(), key=lambda t: len(t.records)))

    def spill(self, st: _TableState) -> None:
        if not st.records:
            return
        path = self.spill_dir / f"{len(self.tables)}-{len(st.spills)}-{id(st)}.arrow"
        _frame(st).write_ipc(path)
        st.spills.append(path)
        self.buffered -= len(st.records)
        st.numbers, st.records = [], []


def _frame(st: _TableState) -> pl.DataFrame:
    assert st.columns is not None
    data: dict[str, pl.Series] = {ROW: pl.Series(ROW, st.numbers, dtype=pl.UInt64)}
    for i, c in enumerate(st.columns):
        data[c] = pl.Series(c, [r[i] for r in st.records], dtype=pl.String)
    return pl.DataFrame(data)


def _table(st: _TableState, parser: str, batch_rows: int) -> Table:
    spills = list(st.spills)
    tail = _frame(st) if st.records else None

    def produce(table: Table) -> Iterator[pl.DataFrame]:
        for path in spills:
            try:
                frame = pl.read_ipc(path)
            finally:
                path.unlink(missing_ok=True)
            for start in range(0, frame.height, batch_rows):
                part = frame.slice(start, batch_rows)
                table.rows_read += part.height
                yield part
        if tail is not None:
            table.rows_read += tail.height
            yield tail

    return Table(
        name=st.name,
        columns=list(st.columns or []),
        has_header=st.named,
        parser=parser,
        produce=produce,
        rejects=list(st.rejects),
    )


def _dialect(sample: str) -> tuple[bool, bool]:
    """(PostgreSQL?, backslash escapes in plain strings?) from the dump's first bytes."""
    markers = ("PostgreSQL database dump", "pg_dump", "FROM stdin;", "standard_conforming_strings")
    postgres = any(m in sample for m in markers)
    backslashes = not postgres or "standard_conforming_strings = off" in sample
    return postgres, backslashes


def read_sql_dump(
    artifact: Artifact, *, encoding: str, sample: str, batch_rows: int, work_dir: Path
) -> Iterator[Table]:
    """A Table per table holding records, in order of first appearance (see module docstring)."""
    display = artifact.display
    postgres, backslashes = _dialect(sample)
    parser = "sql:postgresql" if postgres else "sql:mysql"
    work_dir.mkdir(parents=True, exist_ok=True)
    spill_dir = Path(tempfile.mkdtemp(dir=work_dir, prefix="sqldump-"))
    try:
        with artifact.path.open("r", encoding=encoding, errors="replace", newline="") as f:
            dump = _Dump(_Lexer(f, postgres, backslashes), batch_rows, spill_dir)
            try:
                dump.run()
            except InputError as exc:
                raise InputError(exc.reason, file=display) from None
        tables = [st for st in dump.tables.values() if st.rows or st.rejects]
        if not tables:
            raise InputError("SQL dump holds no table data", file=display)
        for st in tables:
            yield _table(st, parser, batch_rows)
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)
