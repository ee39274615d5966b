"""The bare limit: polars reading the leak file, plus a DuckDB join on precomputed keys.

The keys are leakwatch's own (taken from the store after its run: k1, the first 64 bits of
each key), so the join matches what leakwatch matched, and grouped by the customer number as
leakwatch groups them; nothing is normalised or hashed in the timed part. This module is the
harness's yardstick, not leakwatch: its SQL lives here on purpose.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from bench.data import LEAK_DELIMITER

__all__ = ["LimitResult", "run_limit"]

_PRECOMPUTE = """
CREATE TABLE lk AS SELECT k1 AS k, kind::VARCHAR::ENUM('email', 'iban', 'phone') AS kind,
    categories, row FROM store.leak_keys;
CREATE TABLE ck AS SELECT customer_no, kind::VARCHAR::ENUM('email', 'iban', 'phone') AS kind,
    k1 AS k FROM store.customer_keys;
"""
_JOIN = """
CREATE TABLE exposed AS
SELECT ck.customer_no, bit_or(CASE lk.kind WHEN 'email' THEN 1 WHEN 'iban' THEN 2 ELSE 4 END),
       bit_or(lk.categories), count(DISTINCT lk.row)
FROM lk JOIN ck ON ck.kind = lk.kind AND ck.k = lk.k
GROUP BY ck.customer_no
"""


@dataclass(frozen=True)
class LimitResult:
    read_s: float
    join_s: float
    exposed: int

    @property
    def total_s(self) -> float:
        return self.read_s + self.join_s


def run_limit(leak: Path, store: Path, *, before: Callable[[], None] = lambda: None) -> LimitResult:
    """Time the read of the three identifier columns, then the join and grouping per customer.

    ``before`` runs once the keys are precomputed, just before the clock starts."""
    con = duckdb.connect()
    try:
        quoted = str(store).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS store (READ_ONLY)")
        for statement in _PRECOMPUTE.split(";"):
            if statement.strip():
                con.execute(statement)
        con.execute("DETACH store")
        before()
        started = time.perf_counter()
        frame = (
            pl.scan_csv(
                leak,
                separator=LEAK_DELIMITER,
                infer_schema=False,
                encoding="utf8-lossy",  # polars has no cp1252; identifiers are ASCII anyway
            )
            .select("email", "telephone", "iban")
            .collect()
        )
        read = time.perf_counter()
        con.execute(_JOIN)
        joined = time.perf_counter()
        exposed = con.execute("SELECT count(*) FROM exposed").fetchone()
        assert frame.height > 0
    finally:
        con.close()
    return LimitResult(read - started, joined - read, int(exposed[0]) if exposed else 0)
