"""Stores of an earlier schema made from today's, for the migration tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from matching.link import link
from matching.store import Store


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
