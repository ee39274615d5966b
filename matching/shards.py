"""The sharded match: keys split by hash prefix into Parquet shards, each linked on its own."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from matching.link import LinkReport, write_partials
from matching.sql import Statement
from matching.store import Store, StoreError

__all__ = ["ShardPaths", "combine", "export_shards", "link_shard", "shard_paths"]

MAX_SHARDS = 65_536  # the prefix is the key's first two bytes

# Shard files carry customer numbers, not customer ids: exposures are stored by number, and
# only the store's view ``exposures`` maps numbers to ids.
#
# The keys are keyed hashes, uniform in every byte: their first two bytes, read as a
# big-endian number (k1 >> 48, keyed_hash.py), split them evenly and the same way in every
# process and version.
_EXPORT_CUSTOMERS = Statement(
    "export customer keys shard",
    """
    COPY (
        SELECT customer_no, kind::VARCHAR AS kind, k1, k2 FROM customer_keys
        WHERE (k1 >> 48) % $shards = $shard
    ) TO $path (FORMAT parquet)
    """,
)
# The breach's leak keys from done artifacts, each with the row id link.py counts rows by.
_EXPORT_LEAKS = Statement(
    "export leak keys shard",
    """
    COPY (
        SELECT kind::VARCHAR AS kind, k1, k2, categories,
               (artifact_no::UBIGINT << 48) | (table_no::UBIGINT << 40) | row AS rowid
        FROM leak_keys
        WHERE artifact_no IN (
                SELECT artifact_no FROM artifacts WHERE breach_id = $breach_id AND state = 'done')
          AND (k1 >> 48) % $shards = $shard
    ) TO $path (FORMAT parquet)
    """,
)
_LINK_SHARD_FILES = Statement(
    "link one shard's files",
    """
    COPY (
        SELECT ck.customer_no,
               bit_or(CASE lk.kind WHEN 'email' THEN 1 WHEN 'iban' THEN 2 ELSE 4 END)::UTINYINT
                   AS kinds,
               bit_or(lk.categories)::USMALLINT AS categories,
               list(DISTINCT lk.rowid) AS rowids
        FROM read_parquet($leaks) lk
        JOIN read_parquet($customers) ck
            ON ck.k1 = lk.k1 AND ck.k2 = lk.k2
        GROUP BY ck.customer_no
    ) TO $path (FORMAT parquet)
    """,
)
_LOAD_PARTIALS = Statement(
    "load shard partials",
    """
    CREATE OR REPLACE TEMP TABLE link_partial AS
    SELECT customer_no::UINTEGER AS customer_no, kinds::UTINYINT AS kinds,
           categories::USMALLINT AS categories, rowids::UBIGINT[] AS rowids
    FROM read_parquet($paths)
    """,
)


@dataclass(frozen=True)
class ShardPaths:
    """One shard's two input files: customer keys and the breach's leak keys in that shard."""

    shard: int
    customers: Path
    leaks: Path


def shard_paths(folder: Path, shards: int) -> list[ShardPaths]:
    """Where each shard's files live in ``folder``: the same names in every process."""
    return [
        ShardPaths(
            shard=n,
            customers=folder / f"customers-{n:05d}.parquet",
            leaks=folder / f"leaks-{n:05d}.parquet",
        )
        for n in range(shards)
    ]


def export_shards(store: Store, breach_id: str, out_dir: Path, shards: int) -> list[ShardPaths]:
    """Write each shard's customer keys and the breach's leak keys: keyed hashes and numbers."""
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"shards must be between 1 and {MAX_SHARDS}")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = shard_paths(out_dir, shards)
    for p in paths:
        store.run(_EXPORT_CUSTOMERS, {"shards": shards, "shard": p.shard, "path": str(p.customers)})
        store.run(
            _EXPORT_LEAKS,
            {"breach_id": breach_id, "shards": shards, "shard": p.shard, "path": str(p.leaks)},
        )
    return paths


def link_shard(shard: ShardPaths, out: Path, *, memory_limit: str = "2GB") -> Path:
    """Join one shard's files in a private in-memory DuckDB; per-customer partials to ``out``.

    A pure function of files: it runs in any process that can read ``shard`` and write
    ``out``. The result appears under its name only once complete.
    """
    partial = out.with_name(out.name + ".part")
    config: dict[str, Any] = {"memory_limit": memory_limit}
    config["temp_directory"] = str(out.with_name(out.name + ".tmp"))
    con = duckdb.connect(":memory:", config=config)
    try:
        _run(
            con,
            _LINK_SHARD_FILES,
            {"leaks": str(shard.leaks), "customers": str(shard.customers), "path": str(partial)},
        )
    finally:
        con.close()
    os.replace(partial, out)
    return out


def combine(store: Store, breach_id: str, partial_paths: Sequence[Path]) -> LinkReport:
    """Combine the shards' partials and replace the breach's exposures, as ``link`` does."""
    if not partial_paths:
        raise ValueError("no partials to combine")
    store.run(_LOAD_PARTIALS, {"paths": [str(p) for p in partial_paths]})
    exposed = write_partials(store, breach_id)
    return LinkReport(breach_id=breach_id, exposed=exposed, shards=len(partial_paths), plan="all")


def _run(con: duckdb.DuckDBPyConnection, statement: Statement, params: Mapping[str, Any]) -> None:
    """The store's choke point for a bare connection: errors carry the statement, not values."""
    try:
        for text, names in statement.parts():
            con.execute(text, {k: params[k] for k in names} if names else None)
    except duckdb.Error as exc:
        raise StoreError(statement, exc) from None
