"""The native scanner and the Python parser leave the very same store behind for one leak."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest

from core.settings import Settings
from flows import steps
from flows.context import Runtime, load_pepper
from synthetic import make_customers, make_leak, write_delimited

Writer = Callable[[pl.DataFrame, Path], None]

SHAPES: dict[str, Writer] = {
    "comma-utf8": lambda f, p: write_delimited(f, p),
    "semicolon-cp1252": lambda f, p: write_delimited(f, p, delimiter=";", encoding="cp1252"),
    "pipe-latin1-no-header": lambda f, p: write_delimited(
        f, p, delimiter="|", encoding="latin-1", header=False
    ),
    "tab-utf8-bom": lambda f, p: write_delimited(f, p, delimiter="\t", encoding="utf-8-sig"),
}
# Every table ingestion writes, with what must be equal; the parser's name differs on purpose.
TABLES = {
    "leak_keys": "SELECT * FROM leak_keys ORDER BY ALL",
    "leak_row_counts": "SELECT * FROM leak_row_counts ORDER BY ALL",
    "rejects": "SELECT * FROM rejects ORDER BY ALL",
    "leak_tables": "SELECT * EXCLUDE (parser) FROM leak_tables ORDER BY ALL",
    "artifacts": "SELECT rows_read, rows_rejected, state FROM artifacts ORDER BY ALL",
    "exposures": "SELECT * EXCLUDE (computed_at) FROM exposures ORDER BY ALL",
}


@pytest.fixture(scope="module")
def operator() -> tuple[pl.DataFrame, pl.DataFrame]:
    customers = make_customers(2_000, seed=21)
    return customers, make_leak(customers, 3_000, overlap=0.4, seed=22).frame


def _messy(leak: pl.DataFrame, path: Path, writer: Writer) -> None:
    """The leak, then lines the native path hands back: ragged, NUL, broken quoting."""
    writer(leak, path)
    with path.open("ab") as f:
        f.write(b"only;two\n")
        f.write(b"C1,x\x00y,z\n")
        f.write(b'"unterminated,0612345678\n')


def _ingest(tmp_path: Path, leak_file: Path, customers: Path, *, native: bool) -> Path:
    store = tmp_path / f"store-{native}" / "leakwatch.duckdb"
    settings = Settings(store=store, native_scan=native, batch_rows=1_000)
    rt = Runtime(settings=settings, pepper=load_pepper(settings))
    steps.load_customer_file(rt, customers)
    report = steps.ingest_source(rt, str(leak_file), "b1")
    assert report.errors == []
    steps.match_breach(rt, "b1")
    return store


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_native_and_python_paths_store_the_same(
    shape: str,
    operator: tuple[pl.DataFrame, pl.DataFrame],
    tmp_path: Path,
    leakwatch_env: Path,
) -> None:
    customers, leak = operator
    customers.write_csv(tmp_path / "customers.csv")
    leak_file = tmp_path / "leak.csv"
    _messy(leak, leak_file, SHAPES[shape])
    stores = {
        native: _ingest(tmp_path, leak_file, tmp_path / "customers.csv", native=native)
        for native in (True, False)
    }
    got: dict[bool, dict[str, list[tuple[object, ...]]]] = {}
    parsers: dict[bool, list[tuple[object, ...]]] = {}
    for native, store in stores.items():
        with duckdb.connect(str(store), read_only=True) as con:
            got[native] = {name: con.execute(sql).fetchall() for name, sql in TABLES.items()}
            parsers[native] = con.execute("SELECT DISTINCT parser FROM leak_tables").fetchall()
    assert parsers[True] == [("delimited:native",)]
    assert parsers[False] in ([("delimited:fast",)], [("delimited:transcoded",)])
    assert got[True]["exposures"], "the leak must expose someone"
    assert got[True]["rejects"], "the messy lines must be refused"
    for name in TABLES:
        assert got[True][name] == got[False][name], name
