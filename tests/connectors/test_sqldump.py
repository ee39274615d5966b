"""SQL dumps: MySQL INSERTs with escapes, PostgreSQL COPY and INSERTs, interleaved tables, rejects."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from connectors.base import ROW, Table
from connectors.files import acquire_path
from connectors.parse import parse_artifact
from core.errors import InputError

__all__ = ["mysql_literal", "write_mysql_dump", "write_pg_dump"]


def mysql_literal(value: str | None) -> str:
    if value is None:
        return "NULL"
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\x00", "\\0")
    )
    return f"'{escaped}'"


def _copy_field(value: str | None) -> str:
    if value is None:
        return "\\N"
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def write_mysql_dump(
    frame: pl.DataFrame, path: Path, table: str = "users", per_insert: int = 7
) -> Path:
    """A mysqldump-like file: CREATE TABLE, then multi-row INSERTs without a column list."""
    cols = ",\n".join(f"  `{c}` varchar(255) DEFAULT NULL" for c in frame.columns)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write("-- MySQL dump 10.13\n/*!40101 SET NAMES utf8mb4 */;\n")
        f.write(f"DROP TABLE IF EXISTS `{table}`;\n")
        f.write(f"CREATE TABLE `{table}` (\n{cols},\n  PRIMARY KEY (`x`)\n) ENGINE=InnoDB;\n")
        rows = frame.rows()
        for start in range(0, len(rows), per_insert):
            tuples = ",".join(
                "(" + ",".join(mysql_literal(v) for v in row) + ")"
                for row in rows[start : start + per_insert]
            )
            f.write(f"INSERT INTO `{table}` VALUES {tuples};\n")
    return path


def write_pg_dump(frame: pl.DataFrame, path: Path, table: str = "users") -> Path:
    """A pg_dump-like file: CREATE TABLE, then a COPY ... FROM stdin block."""
    cols = ",\n".join(f"    {c} text" for c in frame.columns)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write("--\n-- PostgreSQL database dump\n--\n\nSET standard_conforming_strings = on;\n")
        f.write(f"CREATE TABLE public.{table} (\n{cols}\n);\n\n")
        f.write(f"COPY public.{table} ({', '.join(frame.columns)}) FROM stdin;\n")
        for row in frame.rows():
            f.write("\t".join(_copy_field(v) for v in row) + "\n")
        f.write("\\.\n\n-- PostgreSQL database dump complete\n")
    return path


def _parse(path: Path, work: Path, batch_rows: int = 1000) -> list[tuple[Table, pl.DataFrame]]:
    (artifact,) = acquire_path(path)
    out = []
    for table in parse_artifact(artifact, batch_rows=batch_rows, work_dir=work):
        batches = list(table.batches())
        for b in batches:
            assert b.height <= batch_rows
            assert b.columns == [ROW, *table.columns]
        out.append((table, pl.concat(batches) if batches else pl.DataFrame()))
    return out


TRICKY = [
    "O'Brien",
    "back\\slash",
    "new\nline",
    "tab\there",
    'quote " double',
    "semi;colon",
    "paren (x), y",
    "--not a comment",
    "é ü ß",
]


def test_mysql_escapes_and_multirow(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"email": [f"u{i}@ex.fr" for i in range(len(TRICKY))], "note": TRICKY}
    ).with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise("email").alias("email")
    )
    path = write_mysql_dump(frame, tmp_path / "dump.sql", per_insert=4)
    ((table, got),) = _parse(path, tmp_path / "work")
    assert table.name == "users" and table.parser == "sql:mysql" and table.has_header
    assert table.columns == ["email", "note"]
    assert got.drop(ROW).equals(frame)
    assert got[ROW].to_list() == list(range(1, len(TRICKY) + 1))
    assert table.rejects == []


def test_mysql_doubled_quotes_numbers_and_column_list(tmp_path: Path) -> None:
    text = (
        "INSERT INTO t (`id`, name, phone, `score`) VALUES "
        "(1,'it''s',612345678,-1.5e3),(2,_binary 'bin',NULL,0x1F),(3,'a\\0b\\Zc',DEFAULT,TRUE);\n"
    )
    path = tmp_path / "d.sql"
    path.write_text(text, encoding="utf-8")
    ((table, got),) = _parse(path, tmp_path / "work")
    assert table.columns == ["id", "name", "phone", "score"]
    assert got.drop(ROW).rows() == [
        ("1", "it's", "612345678", "-1.5e3"),
        ("2", "bin", None, "0x1F"),
        ("3", "a\x00b\x1ac", None, "true"),
    ]


def test_interleaved_tables_without_names_spill_and_reject(tmp_path: Path) -> None:
    lines = []
    for i in range(1, 51):
        lines.append(f"INSERT INTO a VALUES ('a{i}@x.fr','{i}');")
        lines.append(f"INSERT INTO b VALUES ({i});")
        if i == 20:
            lines.append("INSERT INTO a VALUES ('broken',;")  # malformed: record 21 of a
            lines.append("INSERT INTO b VALUES (1, 2);")  # wrong width: record 21 of b
    path = tmp_path / "mixed.sql"
    path.write_text("-- MySQL dump\n" + "\n".join(lines) + "\n", encoding="utf-8")
    tables = _parse(path, tmp_path / "work", batch_rows=8)
    assert [t.name for t, _ in tables] == ["a", "b"]
    (ta, a), (tb, b) = tables
    assert ta.columns == ["col1", "col2"] and not ta.has_header
    assert a.height == 50 and ta.rows_read == 50
    assert a["col1"].to_list() == [f"a{i}@x.fr" for i in range(1, 51)]
    assert 21 not in a[ROW].to_list() and a[ROW].max() == 51
    assert [(r.row, r.reason) for r in ta.rejects] == [
        (21, "malformed SQL statement (rest of it skipped)")
    ]
    assert b.height == 50 and [(r.row, r.reason) for r in tb.rejects] == [
        (21, "expected 1 values, found 2")
    ]
    assert not list((tmp_path / "work").glob("sqldump-*")), "spill files are removed"


def test_postgres_copy_and_inserts(tmp_path: Path) -> None:
    frame = pl.DataFrame({"email": ["a@x.fr", None, "c@x.fr"], "note": TRICKY[:3]})
    path = write_pg_dump(frame, tmp_path / "pg.sql")
    with path.open("a", encoding="utf-8") as f:
        f.write(
            "INSERT INTO public.other (id, label) VALUES (1, 'l''x\\y'::text), (2, E'a\\tb');\n"
        )
    (t1, got1), (t2, got2) = _parse(path, tmp_path / "work")
    assert t1.parser == "sql:postgresql" and t1.name == "users"
    assert got1.drop(ROW).equals(frame)
    assert t2.name == "other"
    assert got2.drop(ROW).rows() == [("1", "l'x\\y"), ("2", "a\tb")]


def test_schema_only_dump_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "schema.sql"
    path.write_text("CREATE TABLE t (a int, b text);\n", encoding="utf-8")
    with pytest.raises(InputError, match="no table data"):
        _parse(path, tmp_path / "work")


def test_unterminated_string_is_linear_and_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.sql"
    body = "INSERT INTO t VALUES ('x'),('" + "a'' " * 50_000
    path.write_text(body, encoding="utf-8")
    ((table, got),) = _parse(path, tmp_path / "work")
    assert got.height == 1
    assert [r.row for r in table.rejects] == [2]
