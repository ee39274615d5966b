"""Loading the customer base: idempotent, updating, numbering, reporting refusals, no clear key."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from matching.customers import load_customers
from matching.keyed_hash import Pepper
from matching.sql import Statement
from matching.store import Store, StoreError

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
    n = store.scalar(
        Statement(
            "k",
            "SELECT count(*) FROM customer_keys JOIN customers USING (customer_no) "
            "WHERE customer_id = 'C1'",
        )
    )
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


# -- customer numbers (schema 7) --------------------------------------------------------------
_NUMBERS = Statement("numbers", "SELECT customer_id, customer_no FROM customers")
_KEYS_BY_ID = Statement(
    "keys by customer_id",
    "SELECT c.customer_id, k.kind::VARCHAR, k.k1, k.k2 FROM customer_keys k "
    "JOIN customers c USING (customer_no) ORDER BY ALL",
)
_ORPHAN_KEYS = Statement(
    "keys of no customer",
    "SELECT count(*) FROM customer_keys ANTI JOIN customers USING (customer_no)",
)


def _numbers(store: Store) -> dict[str, int]:
    return {str(c): int(n) for c, n in store.rows(_NUMBERS)}


def _row(customer_id: str, email: str) -> dict[str, str | None]:
    return {"customer_id": customer_id, "email": email, "language": "fr"}


def test_customers_are_numbered_in_file_order_the_same_in_any_store(
    store: Store, tmp_path: Path
) -> None:
    _load(store, ROWS)
    assert _numbers(store) == {"C1": 1, "C2": 2, "C3": 3}  # rows 4 (no id), 5 (dup) take none
    assert store.scalar(_ORPHAN_KEYS) == 0
    with Store(tmp_path / "other.duckdb") as other:
        _load(other, ROWS)
        assert _numbers(other) == _numbers(store)
        assert other.rows(_KEYS_BY_ID) == store.rows(_KEYS_BY_ID)


def test_numbers_are_stable_across_reloads_updates_and_reordering(store: Store) -> None:
    _load(store, ROWS)
    first = _numbers(store)
    _load(store, ROWS)
    assert _numbers(store) == first

    changed = [dict(r) for r in ROWS]
    changed[0]["phone"] = "06 99 88 77 66"  # C1 updated: deleted and written again
    changed[1]["first_name"] = "Robert"  # C2 updated without a key change
    report = _load(store, changed)
    assert report.updated == 2
    assert _numbers(store) == first
    keys = store.rows(_KEYS_BY_ID)
    assert [r[:2] for r in keys if r[0] == "C1"] == [
        ("C1", "email"),
        ("C1", "iban"),
        ("C1", "phone"),
    ]
    assert store.scalar(_ORPHAN_KEYS) == 0

    # The same customers in another order, with new ones first: old numbers kept, new ones after.
    reordered = [_row("C5", "e@example.fr"), _row("C4", "d@example.fr"), *reversed(changed[:3])]
    report = load_customers(
        store, [_batch(reordered)], PEPPER, file="customers.csv", sha256="1" * 64
    )
    assert (report.inserted, report.updated) == (2, 0)
    assert _numbers(store) == {**first, "C5": 4, "C4": 5}


def test_a_customer_absent_from_a_reload_keeps_its_number_when_back(store: Store) -> None:
    _load(store, ROWS)
    first = _numbers(store)
    report = load_customers(
        store,
        [_batch([*ROWS[1:3], _row("C4", "d@example.fr")])],
        PEPPER,
        file="b.csv",
        sha256="2" * 64,
    )
    assert report.inserted == 1
    assert _numbers(store) == {**first, "C4": 4}  # C1, absent from the file, is still stored
    report = _load(store, ROWS)
    assert (report.inserted, report.updated) == (0, 0)
    assert _numbers(store) == {**first, "C4": 4}


def test_a_removed_customer_added_again_takes_a_number_no_present_customer_holds(
    store: Store,
) -> None:
    _load(store, ROWS)
    keys_before = store.rows(_KEYS_BY_ID)
    # Nothing in leakwatch removes a customer yet; an erasure would remove its row and keys.
    for table in ("customer_keys", "customers"):
        store.run(Statement("remove", f"DELETE FROM {table} WHERE customer_no IN (1, 2)"))
    _load(store, [ROWS[1], _row("C4", "d@example.fr"), ROWS[0]])
    numbers = _numbers(store)
    # In file order after the highest number kept: no present customer's number is taken again.
    assert numbers == {"C3": 3, "C2": 4, "C4": 5, "C1": 6}
    assert store.scalar(_ORPHAN_KEYS) == 0
    # C1 and C2 have their keys again, under their new numbers.
    assert [r for r in store.rows(_KEYS_BY_ID) if r[0] != "C4"] == keys_before


def test_customer_numbers_are_unique_in_the_store(store: Store) -> None:
    _load(store, ROWS)
    with pytest.raises(StoreError):
        store.run(
            Statement(
                "a second customer with number 1",
                "INSERT INTO customers SELECT * REPLACE ('C9' AS customer_id) FROM customers "
                "WHERE customer_no = 1",
            )
        )
