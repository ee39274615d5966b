"""Customer numbers (schema 7): a 0006 store with data migrates in place and links as before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from old_stores import EXPOSURES, downgraded, linked_and_downgraded, rows, schema_at

from matching.link import link
from matching.shards import combine, export_shards, link_shard
from matching.sql import MIGRATIONS
from matching.store import Store

# Tables migration 0007 leaves as they were, copied as they are into the version-6 store (the
# customer load history is left out: its sequence would start again at 1).
_UNCHANGED = (
    "meta",
    "breaches",
    "artifacts",
    "leak_tables",
    "leak_keys",
    "leak_row_counts",
    "rejects",
    "exposures",
)
# The link as it was written before migration 0007, grouping by the customer_id: the reference.
_ID_LINK = """
    SELECT customer_id, bit_or(kinds)::UTINYINT AS kinds, bit_or(categories) AS categories,
           count(*) AS matched_rows
    FROM (
        SELECT ck.customer_id,
               (lk.artifact_no::UBIGINT << 48) | (lk.table_no::UBIGINT << 40) | lk.row AS leaked_row,
               bit_or(CASE lk.kind WHEN 'email' THEN 1 WHEN 'iban' THEN 2 ELSE 4 END) AS kinds,
               bit_or(lk.categories) AS categories
        FROM leak_keys lk
        JOIN customer_keys ck ON ck.k1 = lk.k1 AND ck.k2 = lk.k2
        WHERE lk.artifact_no IN (
            SELECT artifact_no FROM artifacts WHERE breach_id = 'b' AND state = 'done')
        GROUP BY ck.customer_id, leaked_row
    )
    GROUP BY customer_id ORDER BY ALL
"""
# The exposures as the reference query's columns (kinds rebuilt from matched_on).
_LINKED = """
    SELECT customer_id,
           (CASE WHEN matched_on LIKE '%email%' THEN 1 ELSE 0 END
            | CASE WHEN matched_on LIKE '%iban%' THEN 2 ELSE 0 END
            | CASE WHEN matched_on LIKE '%phone%' THEN 4 ELSE 0 END)::UTINYINT,
           category_mask, matched_rows
    FROM exposures WHERE breach_id = 'b' ORDER BY ALL
"""
_V6_KEYS = "SELECT customer_id, kind::VARCHAR, k1, k2, key_id FROM customer_keys ORDER BY ALL"
_V7_KEYS = (
    "SELECT c.customer_id, k.kind::VARCHAR, k.k1, k.k2, k.key_id FROM customer_keys k "
    "JOIN customers c USING (customer_no) ORDER BY ALL"
)
_V6_CUSTOMERS = "SELECT * FROM customers ORDER BY customer_id"
_V7_CUSTOMERS = "SELECT * EXCLUDE (customer_no) FROM customers ORDER BY customer_id"


def _downgrade(current: Path, old: Path) -> None:
    """Write ``current``'s data into a version-6 store at ``old``: keys by customer_id, no numbers."""
    with downgraded(current, old, 6, _UNCHANGED) as con:
        con.execute("INSERT INTO customers SELECT * EXCLUDE (customer_no) FROM src.customers")
        con.execute(
            "INSERT INTO customer_keys SELECT c.customer_id, k.kind, k.k1, k.k2, k.key_id "
            "FROM src.customer_keys k JOIN src.customers c USING (customer_no)"
        )


@pytest.fixture
def stores(leakwatch_env: Path, two_file_breach: Callable[..., None]) -> tuple[Path, Path]:
    """(a store built by today's code and linked, the same data in a version-6 store)."""
    return linked_and_downgraded(
        leakwatch_env, two_file_breach, seed=29, version=6, downgrade=_downgrade
    )


def test_migration_numbers_existing_customers_in_place(stores: tuple[Path, Path]) -> None:
    current, old = stores
    customers = rows(old, _V6_CUSTOMERS)
    keys = rows(old, _V6_KEYS)
    exposures = rows(old, EXPOSURES)
    assert len(customers) == 800 and len(keys) > 1500 and exposures

    with Store(old) as store:
        assert store.schema_version == len(MIGRATIONS) >= 7
    # Numbered 1..n in customer_id order; every other column as it was.
    numbered = rows(old, "SELECT customer_id, customer_no FROM customers ORDER BY customer_id")
    assert [n for _, n in numbered] == list(range(1, len(customers) + 1))
    assert rows(old, _V7_CUSTOMERS) == customers
    # Every key kept, now under its customer's number; exposures untouched.
    assert rows(old, _V7_KEYS) == keys
    assert rows(old, EXPOSURES) == exposures
    columns = dict(
        rows(
            old,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'customer_keys'",
        )
    )
    assert columns == {
        "customer_no": "UINTEGER",
        "kind": "ENUM('email', 'iban', 'phone')",
        "k1": "UBIGINT",
        "k2": "UBIGINT",
        "key_id": "VARCHAR",
    }
    # A migrated store has the schema a new one has.
    schema = (
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name IN ('customers', 'customer_keys') ORDER BY ALL"
    )
    assert rows(old, schema) == rows(current, schema)


def test_a_migrated_store_links_as_before(stores: tuple[Path, Path], leakwatch_env: Path) -> None:
    current, old = stores
    reference = rows(old, _ID_LINK)
    assert len(reference) > 150 and max(r[3] for r in reference) > 1  # rows matched twice

    with Store(old) as store:
        report = link(store, "b")
        assert report.exposed == len(reference)
        assert _rows_of(store, _LINKED) == reference
        by_link = _rows_of(store, EXPOSURES)
        link(store, "b", shards=3)
        assert _rows_of(store, EXPOSURES) == by_link
        folder = leakwatch_env / "shards"
        export = export_shards(store, "b", folder, 4)
        partials = [link_shard(p, folder / f"partial-{p.shard}.parquet") for p in export.paths]
        combine(store, "b", partials, plan=export.plan)
        assert _rows_of(store, EXPOSURES) == by_link
    # ... the exposures of a store that had customer numbers from the start.
    assert by_link == rows(current, EXPOSURES)


def test_loads_into_a_migrated_store_keep_the_numbers(
    stores: tuple[Path, Path], leakwatch_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import polars as pl

    from flows import steps
    from flows.context import runtime

    _, old = stores
    Store(old).close()
    numbers = rows(old, "SELECT customer_id, customer_no FROM customers ORDER BY ALL")
    monkeypatch.setenv("LEAKWATCH_STORE", str(old))
    rt = runtime()
    report = steps.load_customer_file(rt, leakwatch_env / "customers.csv")
    assert (report.inserted, report.updated, report.unchanged) == (0, 0, len(numbers))
    assert rows(old, "SELECT customer_id, customer_no FROM customers ORDER BY ALL") == numbers

    base = pl.read_csv(leakwatch_env / "customers.csv", infer_schema=False)
    first = base.head(1)
    added = pl.concat(
        [
            first.with_columns(customer_id=pl.lit("NEW-2")),
            base.slice(1, 9),
            first.with_columns(customer_id=pl.lit("NEW-1")),
        ]
    )
    added.write_csv(leakwatch_env / "more.csv")
    report = steps.load_customer_file(rt, leakwatch_env / "more.csv")
    assert report.inserted == 2
    after = dict(rows(old, "SELECT customer_id, customer_no FROM customers"))
    assert {c: after[c] for c, _ in numbers} == dict(numbers)
    n = len(numbers)
    assert (after["NEW-2"], after["NEW-1"]) == (n + 1, n + 2)  # in file order, after the last


def _rows_of(store: Store, sql: str) -> list[tuple[Any, ...]]:
    return store.con.execute(sql).fetchall()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            "INSERT INTO customer_keys VALUES ('C9', 'phone', 1, 2, 'k')",
            "key of no stored customer",
        ),
        (
            "INSERT INTO customers SELECT * FROM customers",
            "customer_id twice",
        ),
    ],
)
def test_an_inconsistent_store_stops_the_migration(
    tmp_path: Path, setup: str, message: str
) -> None:
    path = tmp_path / "v6.duckdb"
    con = schema_at(path, 6)
    con.execute(
        "INSERT INTO customers VALUES ('C1', NULL, NULL, NULL, 'fr', 'active', NULL, NULL, NULL, "
        "from_hex('00'), 'k', now())"
    )
    con.execute(setup)
    before = (
        con.execute("SELECT count(*) FROM customers").fetchone(),
        con.execute("SELECT count(*) FROM customer_keys").fetchone(),
    )
    con.close()
    with pytest.raises(duckdb.Error, match=message):
        Store(path).close()
    assert rows(path, "SELECT max(version) FROM schema_version") == [(6,)]
    assert (
        rows(path, "SELECT count(*) FROM customers")[0],
        rows(path, "SELECT count(*) FROM customer_keys")[0],
    ) == before
    assert ("customer_id",) in rows(
        path,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'customer_keys'",
    )
