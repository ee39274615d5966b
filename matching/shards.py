"""The sharded match: keys split by hash prefix into Parquet shards, each linked on its own."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from matching.customer_filter import current_id
from matching.link import (
    COMBINE_PAIRS,
    LinkReport,
    Plan,
    hinted_by,
    kind_bit,
    leaked_row,
    shard_of,
    write_result,
)
from matching.sql import Statement
from matching.store import Store, StoreError

__all__ = [
    "ShardExport",
    "ShardPaths",
    "combine",
    "export_shards",
    "link_shard",
    "shard_paths",
]

MAX_SHARDS = 65_536  # the prefix is the key's first two bytes

# Shard files carry customer numbers, not customer ids: exposures are stored by number, and
# only the store's view ``exposures`` maps numbers to ids.
#
# Keys are split by link.shard_of, as the one-store link splits them.
#
# Each side is written in one pass, partitioned by shard (``<side>/shard=<n>/*.parquet``):
# a query per shard read every key once per shard (20 M x 20 M, 4 shards: 22.7 s against
# 6.1 s for both passes with the hints, below). The customer side leaves the kind out: the
# join compares (k1, k2) only, as the link does.
_SHARD = f"{shard_of()} AS shard"
_CUSTOMER_KEYS = "SELECT customer_no, k1, k2{shard} FROM customer_keys{limit}"
_EXPORT_CUSTOMERS = Statement(
    "export customer keys by shard",
    f"""
    COPY ({_CUSTOMER_KEYS.format(shard=", " + _SHARD, limit="")})
    TO $path (FORMAT parquet, PARTITION_BY (shard), OVERWRITE)
    """,
)
# The breach's leak keys from done artifacts, each with the row id link.py counts rows by:
# only those that hit the customer filter when its hints hold for the breach, as the link's
# "hinted" plan joins them (about a third at 30 % overlap), else every one.
_LEAK_KEYS = """
    SELECT kind::VARCHAR AS kind, k1, k2, categories, {leaked_row} AS leaked_row{shard}
    FROM leak_keys
    WHERE artifact_no IN (
            SELECT artifact_no FROM artifacts WHERE breach_id = $breach_id AND state = 'done')
      AND ($every_key OR customer_hint){limit}
"""
_EXPORT_LEAKS = Statement(
    "export leak keys by shard",
    f"""
    COPY ({_LEAK_KEYS.format(leaked_row=leaked_row(), shard=", " + _SHARD, limit="")})
    TO $path (FORMAT parquet, PARTITION_BY (shard), OVERWRITE)
    """,
)
# A shard no key fell in gets an empty file of the same columns, so every shard reads alike.
_EMPTY_CUSTOMERS = Statement(
    "an empty shard of customer keys",
    f"COPY ({_CUSTOMER_KEYS.format(shard='', limit=' LIMIT 0')}) TO $path (FORMAT parquet)",
)
_EMPTY_LEAKS = Statement(
    "an empty shard of leak keys",
    f"""
    COPY ({_LEAK_KEYS.format(leaked_row=leaked_row(), shard="", limit=" LIMIT 0")})
    TO $path (FORMAT parquet)
    """,
)
# Each shard gives its (customer, leaked row) pairs, combined as the one-store link combines
# its shards' (link.COMBINE_PAIRS).
_LINK_FILES = """
    COPY (
        SELECT ck.customer_no, lk.leaked_row, bit_or({kind_bit})::UTINYINT AS kinds,
               bit_or(lk.categories)::USMALLINT AS categories
        FROM read_parquet($leaks, hive_partitioning = false) lk
        JOIN read_parquet($customers, hive_partitioning = false) ck
            ON ck.k1 = lk.k1 AND ck.k2 = lk.k2
        GROUP BY ck.customer_no, lk.leaked_row
    ) TO $path (FORMAT parquet)
"""
_LINK_SHARD_FILES = Statement(
    "link one shard's files", _LINK_FILES.format(kind_bit=kind_bit("lk."))
)
_COMBINE_PAIRS = Statement(
    "combine shard pairs", COMBINE_PAIRS.format(pairs="read_parquet($paths)")
)


@dataclass(frozen=True)
class ShardPaths:
    """One shard's two input folders of Parquet files: customer keys and the breach's leak
    keys in that shard."""

    shard: int
    customers: Path
    leaks: Path


@dataclass(frozen=True)
class ShardExport:
    """Every shard's folders, and the link plan their leak keys follow (see ``_LEAK_KEYS``)."""

    paths: list[ShardPaths]
    plan: Plan


def shard_paths(folder: Path, shards: int) -> list[ShardPaths]:
    """Where each shard's files live in ``folder``: the same names in every process."""
    return [
        ShardPaths(
            shard=n,
            customers=folder / "customers" / f"shard={n}",
            leaks=folder / "leaks" / f"shard={n}",
        )
        for n in range(shards)
    ]


def export_shards(store: Store, breach_id: str, out_dir: Path, shards: int) -> ShardExport:
    """Write each shard's customer keys and the breach's leak keys: keyed hashes and numbers."""
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"shards must be between 1 and {MAX_SHARDS}")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = shard_paths(out_dir, shards)
    store.run(_EXPORT_CUSTOMERS, {"shards": shards, "path": str(out_dir / "customers")})
    # Whether the hints hold is checked once the customer keys have been read, as the link
    # does: their blocks are then in DuckDB's cache, if it could keep them.
    hinted = hinted_by(store, breach_id)
    plan: Plan = "hinted" if hinted is not None and current_id(store) == hinted else "all"
    store.run(
        _EXPORT_LEAKS,
        {
            "breach_id": breach_id,
            "shards": shards,
            "every_key": plan == "all",
            "path": str(out_dir / "leaks"),
        },
    )
    for p in paths:
        for folder, empty, params in (
            (p.customers, _EMPTY_CUSTOMERS, {}),
            (p.leaks, _EMPTY_LEAKS, {"breach_id": breach_id, "every_key": True}),
        ):
            if not folder.is_dir():
                folder.mkdir(parents=True)
                store.run(empty, {**params, "path": str(folder / "empty.parquet")})
    return ShardExport(paths, plan)


def link_shard(shard: ShardPaths, out: Path, *, memory_limit: str = "2GB") -> Path:
    """Join one shard's files in a private in-memory DuckDB; its (customer, row) pairs to ``out``.

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
            {
                "leaks": str(shard.leaks / "*.parquet"),
                "customers": str(shard.customers / "*.parquet"),
                "path": str(partial),
            },
        )
    finally:
        con.close()
    os.replace(partial, out)
    return out


def combine(
    store: Store, breach_id: str, partial_paths: Sequence[Path], *, plan: Plan = "all"
) -> LinkReport:
    """Combine the shards' pairs (one file each) and replace the breach's exposures, as
    ``link`` does; ``plan``: the export's (:attr:`ShardExport.plan`), for the report."""
    if not partial_paths:
        raise ValueError("no partials to combine")
    store.run(_COMBINE_PAIRS, {"paths": [str(p) for p in partial_paths]})
    exposed = write_result(store, breach_id)
    return LinkReport(breach_id=breach_id, exposed=exposed, shards=len(partial_paths), plan=plan)


def _run(con: duckdb.DuckDBPyConnection, statement: Statement, params: Mapping[str, Any]) -> None:
    """The store's choke point for a bare connection: errors carry the statement, not values."""
    try:
        for text, names in statement.parts():
            con.execute(text, {k: params[k] for k in names} if names else None)
    except duckdb.Error as exc:
        raise StoreError(statement, exc) from None
