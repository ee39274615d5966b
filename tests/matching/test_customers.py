"""Loading the customer base: idempotent, updating, reporting every refusal, storing no clear key."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from matching.customers import load_customers
from matching.keyed_hash import Pepper
from matching.sql import Statement
from matching.store import Store

COLUMNS = (
    "customer_id",
    "email",
    "phone",
    "iban",
    "first_name",
    "last_name",
    "language",
    "status",
    "contract_end",
)
GOOD_IBAN = "FR7630006000011234567890189"


def _batch(rows: list[dict[str, str | None]], start: int = 1) -> pl.DataFrame:
    frame = pl.DataFrame(
        {c: [r.get(c) for r in rows] for c in COLUMNS}, schema=dict.fromkeys(COLUMNS, pl.String)
    )
    return frame.with_row_index("__row", offset=start).with_columns(pl.col("__row").cast(pl.UInt64))


ROWS: list[dict[str, str | None]] = [
    {
        "customer_id": "C1",
        "email": " Alice@Example.FR ",
        "phone": "06 12 34 56 78",
        "iban": GOOD_IBAN,
        "first_name": "Alice",
        "last_name": "Martin",
        "language": "fr",
    },
    {
        "customer_id": "C2",
        "email": "bob@example.fr",
        "phone": "+33 7 81 23 45 67",
        "iban": "FR7630006000011234567890188",
        "first_name": "Bob",
        "last_name": "Durand",
        "language": "EN",
        "status": "former",
        "contract_end": "2023-05-31",
    },
    {
        "customer_id": "C3",
        "email": "not-an-email",
        "phone": "12",
        "iban": None,
        "first_name": "Chloé",
        "last_name": "Petit",
        "language": "de",
        "status": "zombie",
        "contract_end": "31/05/2023",
    },
    {
        "customer_id": None,
        "email": "x@y.fr",
        "phone": None,
        "iban": None,
        "first_name": "No",
        "last_name": "Id",
        "language": "fr",
    },
    {
        "customer_id": "C1",
        "email": "dup@example.fr",
        "phone": None,
        "iban": None,
        "first_name": "Dup",
        "last_name": "Row",
        "language": "fr",
    },
]
PEPPER = Pepper("t1", bytes(range(32)))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "s.duckdb")


def _load(store: Store, rows: list[dict[str, str | None]]) -> object:
    return load_customers(
        store,
        [_batch(rows[:2]), _batch(rows[2:], start=3)],
        PEPPER,
        file="customers.csv",
        sha256="0" * 64,
    )


def test_first_load_reports_every_refusal_with_row_and_reason(store: Store) -> None:
    report = _load(store, ROWS)
    assert report.rows_read == 5
    assert report.inserted == 3
    assert report.rows_rejected == 2  # no id, duplicate id
    rejects = store.rows(
        Statement("r", 'SELECT row, "column", reason FROM customer_rejects ORDER BY row, "column"')
    )
    by_row = {(r, c) for r, c, _ in rejects}
    assert (2, "iban") in by_row  # RIB key wrong
    assert {
        (3, "email"),
        (3, "phone"),
        (3, "language"),
        (3, "status"),
        (3, "contract_end"),
    } <= by_row
    assert (4, "customer_id") in by_row and (5, "customer_id") in by_row


def test_reload_of_the_same_file_changes_nothing(store: Store) -> None:
    _load(store, ROWS)
    before = store.rows(Statement("c", "SELECT * FROM customers ORDER BY customer_id"))
    report = _load(store, ROWS)
    assert (report.inserted, report.updated, report.unchanged) == (0, 0, 3)
    assert store.rows(Statement("c", "SELECT * FROM customers ORDER BY customer_id")) == before


def test_a_changed_row_updates_the_base_and_its_keys(store: Store) -> None:
    _load(store, ROWS)
    changed = [dict(r) for r in ROWS]
    changed[0]["phone"] = "06 99 88 77 66"
    report = _load(store, changed)
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 2)
    n = store.scalar(Statement("k", "SELECT count(*) FROM customer_keys WHERE customer_id = 'C1'"))
    assert n == 3  # email, phone, iban: the old phone key is gone


def test_no_clear_phone_or_iban_is_stored(store: Store) -> None:
    _load(store, ROWS)
    tables = [t for (t,) in store.rows(Statement("t", "SELECT table_name FROM duckdb_tables()"))]
    for table in tables:
        text = (
            store.scalar(Statement("dump", f"SELECT string_agg(t::VARCHAR, '|') FROM {table} t"))
            or ""
        )
        for needle in ("612345678", "781234567", "30006000011234567890"):
            assert needle not in text, table


def test_contact_fields_are_normalised(store: Store) -> None:
    _load(store, ROWS)
    rows = dict(store.rows(Statement("e", "SELECT customer_id, email FROM customers")))
    assert rows["C1"] == "alice@example.fr"
    assert rows["C3"] is None
    lang = dict(store.rows(Statement("l", "SELECT customer_id, language FROM customers")))
    assert lang == {"C1": "fr", "C2": "en", "C3": "fr"}
