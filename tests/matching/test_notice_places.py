"""Notices' places in the order of sending (schema 11): a planning places its notices after the
last place in use, in customer number order, and stores them so; a version-10 store is placed
the same way when it migrates; a batch recorded within its range of places is recorded as
anywhere, and a notice outside that range is left alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from old_stores import downgraded, rows

from matching import ledger
from matching.sql import MIGRATIONS, Statement
from matching.store import Store

# Place, customer number and where the row is stored, in the order of places.
_PLACED = """
    SELECT n.seq, c.customer_no, n.rowid, n.planned_at, n.notice_id
    FROM notices n LEFT JOIN customers c USING (customer_id)
    ORDER BY n.seq
"""
_NOTICE_COLUMNS = (
    "notice_id, breach_id, customer_id, channel, state, planned_at, updated_at, attempts, "
    "sendgrid_message_id, sent_at, accepted_at, delivered_at, last_event, last_event_at, "
    "batch_id, error_reason"
)


@pytest.fixture
def planned(plan_breach: Callable[[int], Path]) -> Path:
    """A store whose breach "b" is linked and its notices planned; its path."""
    return plan_breach(41)


def _stored_in_order(placed: list[tuple[Any, ...]]) -> bool:
    return [r[2] for r in placed] == sorted(r[2] for r in placed)


def test_a_planning_places_its_notices_by_customer_number_after_the_last_place(
    planned: Path,
) -> None:
    first = rows(planned, _PLACED)
    assert [r[0] for r in first] == list(range(1, len(first) + 1))
    assert [r[1] for r in first] == sorted(r[1] for r in first)
    assert _stored_in_order(first)

    # Some notices planned again (their rows gone): after the last place, by customer number.
    with Store(planned) as store:
        store.run(Statement("forget some notices", "DELETE FROM notices WHERE seq % 3 = 1"))
        again = ledger.plan_notices(store, "b")
    placed = rows(planned, _PLACED)
    assert again == len([r for r in first if r[0] % 3 == 1])
    new = placed[len(first) - again :]
    assert [r[0] for r in new] == list(range(len(first) + 1, len(first) + again + 1))
    assert [r[1] for r in new] == sorted(r[1] for r in new)
    assert _stored_in_order(placed)


def test_a_version_10_store_places_its_notices_in_the_order_of_sending(
    planned: Path, leakwatch_env: Path
) -> None:
    before = rows(planned, f"SELECT {_NOTICE_COLUMNS} FROM notices ORDER BY notice_id")
    old = leakwatch_env / "old" / "v10.duckdb"
    old.parent.mkdir()
    with downgraded(planned, old, 10, ["meta", "customers"]) as con:
        # Stored in no particular order, planned at two moments (a third of them a day before).
        con.execute(
            f"INSERT INTO notices SELECT {_NOTICE_COLUMNS} FROM src.notices ORDER BY notice_id"
        )
        con.execute(
            "UPDATE notices SET planned_at = planned_at - INTERVAL 1 DAY WHERE customer_id IN "
            "(SELECT customer_id FROM customers WHERE customer_no % 3 = 0)"
        )
    earlier = rows(old, f"SELECT {_NOTICE_COLUMNS} FROM notices ORDER BY notice_id")

    with Store(old) as store:
        assert store.schema_version == len(MIGRATIONS) >= 11
    assert rows(old, f"SELECT {_NOTICE_COLUMNS} FROM notices ORDER BY notice_id") == earlier
    assert len(earlier) == len(before)
    placed = rows(old, _PLACED)
    assert [r[0] for r in placed] == list(range(1, len(placed) + 1))
    assert [(r[3], r[1], r[4]) for r in placed] == sorted((r[3], r[1], r[4]) for r in placed)
    assert placed[0][3] < placed[-1][3]  # both moments are there
    assert _stored_in_order(placed)


def test_a_batch_recorded_within_its_places_is_recorded_and_nothing_outside_them(
    planned: Path,
) -> None:
    with Store(planned) as store:
        every = ledger.send_candidates(store, "b", ["planned"])
        batch, later = every.head(10), every.slice(10, 1)
        places = ledger.places_of(batch)
        assert places == (batch["seq"].min(), batch["seq"].max())
        assert ledger.places_of(every.head(0)) == ledger.EVERY_PLACE
        ids = batch["notice_id"].to_list()

        # A notice outside the range is not claimed, whatever its state.
        outside = later["notice_id"].to_list()
        assert ledger.mark_sending(store, outside, "x", ["planned"], places) == []
        assert sorted(ledger.mark_sending(store, ids, "b1", ["planned"], places)) == sorted(ids)
        outcomes = [(i, "accepted", f"m-{i}", None) for i in ids + outside]
        ledger.record_outcomes(store, outcomes, ["sending"], places)
        states = store.frame(
            Statement("states", "SELECT notice_id, state, sendgrid_message_id FROM notices")
        )
    got = {r[0]: (r[1], r[2]) for r in states.iter_rows()}
    assert all(got[i] == ("accepted", f"m-{i}") for i in ids)
    assert got[outside[0]] == ("planned", None)
    assert (states["state"] == "planned").sum() == states.height - len(ids)
    assert every["seq"].is_sorted()  # the queue's order is the places' order
