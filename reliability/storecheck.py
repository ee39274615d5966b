"""What must be equal between a faulted-then-recovered store and a fault-free one, times left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

__all__ = ["artifact_rows", "exposure_rows", "leak_key_rows", "store_counts", "store_state"]

# Artifacts are compared by content and place, not by number: a re-run may number them anew.
_ARTIFACTS = """
    SELECT breach_id, source, coalesce(inner_path, ''), sha256, size, media_type,
           coalesce(telegram::VARCHAR, ''), state, coalesce(error, ''), coalesce(parser, ''),
           rows_read, rows_rejected
    FROM artifacts ORDER BY ALL
"""
_LEAK_KEYS = """
    SELECT a.sha256, coalesce(a.inner_path, ''), k.table_no, k.row, k.kind::VARCHAR, k.k1,
           k.k2, k.categories, a.key_id
    FROM leak_keys k JOIN artifacts a USING (artifact_no) ORDER BY ALL
"""
_EXPOSURES = """
    SELECT breach_id, customer_id, matched_on, categories, category_mask, risk, reasons,
           matched_rows
    FROM exposures ORDER BY ALL
"""
_COUNTS = {
    "customers": "SELECT count(*) FROM customers",
    "customer_keys": "SELECT count(*) FROM customer_keys",
    "artifacts_done": "SELECT count(*) FROM artifacts WHERE state = 'done'",
    "leak_keys": "SELECT count(*) FROM leak_keys",
    "leak_rows": "SELECT coalesce(sum(rows), 0) FROM leak_row_counts",
    "rejects": "SELECT count(*) FROM rejects",
    "leak_tables": "SELECT count(*) FROM leak_tables",
    "exposures": "SELECT count(*) FROM exposures",
}


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def artifact_rows(path: Path) -> list[tuple[Any, ...]]:
    """The evidence-relevant artifact rows (acquisition and finish times left out)."""
    return _query(path, _ARTIFACTS)


def leak_key_rows(path: Path) -> list[tuple[Any, ...]]:
    return _query(path, _LEAK_KEYS)


def exposure_rows(path: Path) -> list[tuple[Any, ...]]:
    return _query(path, _EXPOSURES)


def store_counts(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for name, sql in _COUNTS.items():
            row = con.execute(sql).fetchone()
            out[name] = int(row[0]) if row else 0
        return out
    finally:
        con.close()


def store_state(path: Path) -> dict[str, Any]:
    """Everything compared: counts, artifact rows, leak keys and exposures."""
    return {
        "counts": store_counts(path),
        "artifacts": artifact_rows(path),
        "leak_keys": leak_key_rows(path),
        "exposures": exposure_rows(path),
    }
