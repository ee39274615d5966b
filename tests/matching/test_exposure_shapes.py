"""Exposures by number and shape (schema 8): a 0007 store with data migrates in place, the view
`exposures` reads as the table did, and the link writes the same rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from old_stores import EXPOSURES, downgraded, linked_and_downgraded, rows, schema_at

from matching.link import link
from matching.sql import MIGRATIONS
from matching.store import Store

# What a version-7 store holds that the link and the exposures need, copied as it is; the
# version-7 `exposures` table is filled from today's view, whose columns are the table's.
_COPIED = (
    "meta",
    "customers",
    "customer_keys",
    "breaches",
    "artifacts",
    "leak_tables",
    "leak_keys",
    "leak_row_counts",
    "rejects",
    "exposures",
)
_EXPOSURE_COLUMNS = (
    "SELECT column_name, data_type FROM information_schema.columns "
    "WHERE table_name = 'exposures' ORDER BY ordinal_position"
)


def _downgrade(current: Path, old: Path) -> None:
    with downgraded(current, old, 7, _COPIED):
        pass


@pytest.fixture
def stores(leakwatch_env: Path, two_file_breach: Callable[..., None]) -> tuple[Path, Path]:
    """(a store built by today's code and linked, the same data in a version-7 store)."""
    return linked_and_downgraded(
        leakwatch_env, two_file_breach, seed=31, version=7, downgrade=_downgrade
    )


def test_migration_keeps_every_exposure(stores: tuple[Path, Path]) -> None:
    current, old = stores
    exposures = rows(old, EXPOSURES)
    shapes = rows(old, "SELECT DISTINCT matched_on, category_mask FROM exposures")
    assert len(exposures) > 150 and len(shapes) > 3
    old_columns = rows(old, _EXPOSURE_COLUMNS)

    with Store(old) as store:
        assert store.schema_version == len(MIGRATIONS) >= 8
    assert rows(old, EXPOSURES) == exposures
    assert rows(old, _EXPOSURE_COLUMNS) == old_columns  # the view reads as the table did
    assert rows(old, "SELECT count(*) FROM exposure_shapes") == [(len(shapes),)]
    assert rows(
        old, "SELECT table_type FROM information_schema.tables WHERE table_name = 'exposures'"
    ) == [("VIEW",)]
    # kinds rebuilt from the names: the link of the migrated store writes the same rows.
    with Store(old) as store:
        link(store, "b")
    assert rows(old, EXPOSURES) == exposures == rows(current, EXPOSURES)
    schema = (
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name LIKE 'exposure%' ORDER BY ALL"
    )
    assert rows(old, schema) == rows(current, schema)


def test_a_relink_replaces_only_its_breach(stores: tuple[Path, Path]) -> None:
    current, _ = stores
    with Store(current) as store:
        store.con.execute(
            "INSERT INTO exposure_shapes SELECT 'other', kinds, category_mask, matched_on, "
            "categories, risk, reasons FROM exposure_shapes WHERE breach_id = 'b'"
        )
        store.con.execute(
            "INSERT INTO exposure_rows SELECT 'other', customer_no, kinds, category_mask, "
            "matched_rows, computed_at FROM exposure_rows WHERE breach_id = 'b'"
        )
        before = store.con.execute(EXPOSURES).fetchall()
        link(store, "b")
        link(store, "b")
        assert store.con.execute(EXPOSURES).fetchall() == before
        counts = store.con.execute(
            "SELECT breach_id, count(*) FROM exposures GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    assert counts == [("b", len(before)), ("other", len(before))]


_SHAPE_ROW = "('b', 'C1', 'email', 'email', 2, 'low', 'r', 1, now())"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            "INSERT INTO exposures VALUES ('b', 'C9', 'email', 'email', 2, 'low', 'r', 1, now())",
            "customer that is not stored",
        ),
        (
            "INSERT INTO exposures VALUES ('b', 'C2', 'email', 'email', 2, 'high', 'r', 1, now())",
            "two decisions for one shape",
        ),
    ],
)
def test_an_inconsistent_store_stops_the_migration(
    tmp_path: Path, setup: str, message: str
) -> None:
    path = tmp_path / "v7.duckdb"
    con = schema_at(path, 7)
    for number, customer in enumerate(("C1", "C2"), start=1):
        con.execute(
            "INSERT INTO customers VALUES ($n, $c, NULL, NULL, NULL, 'fr', 'active', NULL, "
            "NULL, NULL, from_hex('00'), 'k', now())",
            {"n": number, "c": customer},
        )
    con.execute(f"INSERT INTO exposures VALUES {_SHAPE_ROW}")
    con.execute(setup)
    con.close()
    with pytest.raises(duckdb.Error, match=message):
        Store(path).close()
    assert rows(path, "SELECT max(version) FROM schema_version") == [(7,)]
    assert rows(path, "SELECT count(*) FROM exposures") == [(2,)]
    assert rows(
        path,
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('exposure_rows', 'exposure_shapes')",
    ) == [(0,)]
