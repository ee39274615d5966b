"""Stores of an earlier schema made from today's, for the migration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from matching.link import link
from matching.sql import MIGRATIONS
from matching.store import Store

EXPOSURES = """
    SELECT customer_id, matched_on, categories, category_mask, risk, reasons, matched_rows
    FROM exposures WHERE breach_id = 'b' ORDER BY customer_id
"""


def schema_at(path: Path, version: int) -> duckdb.DuckDBPyConnection:
    """A new store at ``path`` at schema ``version``, exactly as the migrations up to it leave it."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMPTZ)")
    for number, script in enumerate(MIGRATIONS[:version], start=1):
        con.execute(script)
        con.execute("INSERT INTO schema_version VALUES ($v, now())", {"v": number})
    return con


@contextmanager
def downgraded(
    current: Path, old: Path, version: int, copied: Sequence[str]
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A new ``version`` store at ``old`` holding ``current``'s ``copied`` tables as they are.

    The block writes the rest, reading ``current`` as ``src``; the store is closed after it.
    """
    con = schema_at(old, version)
    try:
        con.execute("ATTACH $p AS src (READ_ONLY)", {"p": str(current)})
        for table in copied:  # the old table's columns: later schemas may have added some
            names = con.execute(
                "SELECT column_name FROM duckdb_columns() "
                "WHERE database_name = current_database() AND table_name = $t "
                "ORDER BY column_index",
                {"t": table},
            ).fetchall()
            columns = ", ".join(f'"{name}"' for (name,) in names)
            con.execute(f"INSERT INTO {table} SELECT {columns} FROM src.{table}")
        yield con
        con.execute("DETACH src")
    finally:
        con.close()


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """``sql``'s rows from the store at ``path``, opened read-only."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def linked_and_downgraded(
    leakwatch_env: Path,
    two_file_breach: Callable[..., None],
    *,
    seed: int,
    version: int,
    downgrade: Callable[[Path, Path], None],
) -> tuple[Path, Path]:
    """(a store built by today's code and linked, the same data in a ``version`` store)."""
    from flows.context import runtime

    two_file_breach(seed=seed)
    current = runtime().settings.store
    with Store(current) as store:
        link(store, "b")
    old = leakwatch_env / "old" / f"v{version}.duckdb"
    old.parent.mkdir()
    downgrade(current, old)
    return current, old
