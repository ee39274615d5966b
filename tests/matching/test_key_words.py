"""Join keys as two UBIGINT words: a 0005 store (BLOB keys) migrates in place and links the same."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest
from old_stores import EXPOSURES, downgraded, linked_and_downgraded, rows, schema_at

from matching.keyed_hash import key_bytes, key_words
from matching.link import link
from matching.sql import MIGRATIONS
from matching.store import Store

# Tables that migrations 0006 and 0007 leave as they were: copied as they are into the old store.
_UNCHANGED = ("breaches", "artifacts", "leak_tables", "leak_row_counts", "rejects")

# The link as it was written for BLOB keys (before migration 0006): the reference.
_BLOB_LINK = """
    SELECT ck.customer_id,
           bit_or(CASE lk.kind WHEN 'email' THEN 1 WHEN 'iban' THEN 2 ELSE 4 END)::UTINYINT,
           bit_or(lk.categories),
           count(DISTINCT (lk.artifact_no::UBIGINT << 48) | (lk.table_no::UBIGINT << 40) | lk.row)
    FROM leak_keys lk
    JOIN customer_keys ck ON ck.kind = lk.kind AND ck.key = lk.key
    WHERE lk.artifact_no IN (
        SELECT artifact_no FROM artifacts WHERE breach_id = 'b' AND state = 'done')
    GROUP BY ck.customer_id ORDER BY ALL
"""
_PAIRS_BLOB = """
    SELECT ck.customer_id, lk.artifact_no, lk.table_no, lk.row, lk.kind::VARCHAR
    FROM leak_keys lk JOIN customer_keys ck ON ck.kind = lk.kind AND ck.key = lk.key
    ORDER BY ALL
"""
_PAIRS_WORDS = """
    SELECT c.customer_id, lk.artifact_no, lk.table_no, lk.row, lk.kind::VARCHAR
    FROM leak_keys lk
    JOIN customer_keys ck ON ck.k1 = lk.k1 AND ck.kind = lk.kind AND ck.k2 = lk.k2
    JOIN customers c ON c.customer_no = ck.customer_no
    ORDER BY ALL
"""
# Customer keys by customer_id (schema 7 keeps the customer's number on keys).
_CUSTOMER_WORDS = "SELECT customer_id, kind::VARCHAR, k1, k2 FROM customer_keys JOIN customers USING (customer_no)"
# 16 bytes from the two words, in SQL: the old column rebuilt independently of keyed_hash.py.
_BLOB = "from_hex(lpad(to_hex({0}.k1), 16, '0') || lpad(to_hex({0}.k2), 16, '0'))"


def _downgrade(current: Path, old: Path) -> None:
    """Write ``current``'s data into a version-5 store at ``old``, keys as 16-byte BLOBs.

    Version 5 has no customer numbers: customers lose theirs, keys are written by customer_id.
    """
    with downgraded(current, old, 5, _UNCHANGED) as con:
        con.execute("INSERT INTO customers SELECT * EXCLUDE (customer_no) FROM src.customers")
        con.execute(
            "INSERT INTO customer_keys SELECT n.customer_id, c.kind, "
            + _BLOB.format("c")
            + ", c.key_id FROM src.customer_keys c JOIN src.customers n USING (customer_no)"
        )
        con.execute(
            "INSERT INTO leak_keys SELECT artifact_no, table_no, row, kind, "
            + _BLOB.format("l")
            + ", categories FROM src.leak_keys l"
        )


@pytest.fixture
def stores(leakwatch_env: Path, two_file_breach: Callable[..., None]) -> tuple[Path, Path]:
    """(a store built by today's code and linked, the same data in a version-5 store)."""
    return linked_and_downgraded(
        leakwatch_env, two_file_breach, seed=23, version=5, downgrade=_downgrade
    )


def test_migration_converts_blob_keys_in_place(stores: tuple[Path, Path]) -> None:
    current, old = stores
    blobs = rows(old, "SELECT kind::VARCHAR, key FROM leak_keys ORDER BY ALL")
    customer_blobs = rows(old, "SELECT customer_id, kind::VARCHAR, key FROM customer_keys")
    assert blobs and all(len(k) == 16 for _, k in blobs)

    with Store(old) as store:
        assert store.schema_version == len(MIGRATIONS) >= 6
    columns = {
        (t, c): d
        for t, c, d in rows(
            old,
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_name IN ('leak_keys', 'customer_keys')",
        )
    }
    assert columns[("leak_keys", "k1")] == columns[("customer_keys", "k2")] == "UBIGINT"
    assert ("leak_keys", "key") not in columns and ("customer_keys", "key") not in columns

    # Every key converted as keyed_hash.key_words reads it, and the same rows as before.
    words = rows(old, "SELECT kind::VARCHAR, k1, k2 FROM leak_keys ORDER BY ALL")
    assert sorted((kind, *key_words(k)) for kind, k in blobs) == words
    converted = rows(old, _CUSTOMER_WORDS)
    assert sorted((c, kind, key_bytes(a, b)) for c, kind, a, b in converted) == sorted(
        (c, kind, bytes(k)) for c, kind, k in customer_blobs
    )
    # ... and as today's code writes them for the same data.
    assert sorted(converted) == sorted(rows(current, _CUSTOMER_WORDS))


def test_word_join_finds_exactly_what_the_blob_join_found(stores: tuple[Path, Path]) -> None:
    current, old = stores
    blob_pairs = rows(old, _PAIRS_BLOB)
    blob_link = rows(old, _BLOB_LINK)
    assert len(blob_pairs) > 200 and max(r[3] for r in blob_link) > 1  # rows matched twice

    with Store(old) as store:
        report = link(store, "b")
    assert rows(old, _PAIRS_WORDS) == blob_pairs
    linked = rows(
        old,
        "SELECT customer_id, kinds, categories, matched_rows FROM ("
        "SELECT e.customer_id, e.category_mask AS categories, e.matched_rows, "
        "(CASE WHEN e.matched_on LIKE '%email%' THEN 1 ELSE 0 END "
        "| CASE WHEN e.matched_on LIKE '%iban%' THEN 2 ELSE 0 END "
        "| CASE WHEN e.matched_on LIKE '%phone%' THEN 4 ELSE 0 END)::UTINYINT AS kinds "
        "FROM exposures e WHERE breach_id = 'b') ORDER BY ALL",
    )
    assert linked == blob_link
    assert report.exposed == len(blob_link)
    # The migrated store gives the exposures of a store written with word keys from the start.
    assert rows(old, EXPOSURES) == rows(current, EXPOSURES)


def test_a_key_of_the_wrong_length_stops_the_migration(tmp_path: Path) -> None:
    path = tmp_path / "v5.duckdb"
    con = schema_at(path, 5)
    con.execute("INSERT INTO leak_keys VALUES (1, 0, 7, 'phone', from_hex('00ff'), 4)")
    con.close()
    with pytest.raises(duckdb.Error, match="not 16 bytes"):
        Store(path).close()
    assert rows(path, "SELECT max(version) FROM schema_version") == [(5,)]
    assert rows(path, "SELECT octet_length(key) FROM leak_keys") == [(2,)]


def test_key_frames_carry_two_words_and_no_blob(leakwatch_env: Path) -> None:
    from matching.keyed_hash import Pepper
    from matching.leaks import NormalisedBatch, hash_batch

    canonical = pl.DataFrame(
        {
            "row": pl.Series([0, 1, 1], dtype=pl.UInt64),
            "kind": ["phone", "email", "iban"],
            "canonical": ["+33612345678", "a@b.fr", "FR7630006000011234567890189"],
            "categories": pl.Series([4, 3, 2], dtype=pl.UInt16),
        }
    )
    empty = pl.DataFrame()
    keys = hash_batch(NormalisedBatch(empty, canonical, empty), Pepper.generate())
    assert keys.columns == ["row", "kind", "k1", "k2", "categories"]
    assert keys.schema["k1"] == keys.schema["k2"] == pl.UInt64
    assert sorted(keys["kind"].cast(pl.String).to_list()) == ["email", "iban", "phone"]
    assert keys["k1"].null_count() == 0
