"""Delivery events within their notices' places (schema 12): each answered request's range of
places is kept; events are stored with their notice's place, and a batch's statements read and
write only within its places; a version-11 store keeps every event and places it when it
migrates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from old_stores import downgraded, rows

from matching import ledger
from matching.sql import MIGRATIONS, Statement
from matching.store import Store, StoreError

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
_EVENT_COLUMNS = "sg_event_id, notice_id, event, ts, received_at, raw_reason_code, sg_message_id"
_STATE = Statement("a notice's state", "SELECT state FROM notices WHERE notice_id = $id")


@pytest.fixture
def planned(plan_breach: Callable[[int], Path]) -> Path:
    """A store whose breach "b" is linked and its notices planned; its path."""
    return plan_breach(43)


def _accept(store: Store, notices: list[dict[str, Any]], message_id: str) -> None:
    """``notices`` (candidates' rows) claimed and accepted in one request, ``message_id``."""
    ids = [n["notice_id"] for n in notices]
    places = (min(n["seq"] for n in notices), max(n["seq"] for n in notices))
    assert len(ledger.mark_sending(store, ids, "b1", ["planned"], places)) == len(ids)
    ledger.record_outcomes(store, [(i, "accepted", message_id, None) for i in ids], ["sending"])


def _event(notice_id: str, event: str, seconds: int, sg_event_id: str) -> tuple[Any, ...]:
    return (sg_event_id, notice_id, event, T0 + timedelta(seconds=seconds), None, None)


def test_each_answered_request_keeps_the_range_of_its_notices_places(planned: Path) -> None:
    with Store(planned) as store:
        every = ledger.send_candidates(store, "b", ["planned"]).to_dicts()
        # Two requests in one batch, their notices interleaved; a third answered later.
        first, second = every[0:20:2], every[1:20:2]
        ids = [n["notice_id"] for n in every[:20]]
        ledger.mark_sending(store, ids, "b1", ["planned"], (every[0]["seq"], every[19]["seq"]))
        outcomes: list[tuple[str, str, str | None, str | None]]
        outcomes = [(n["notice_id"], "accepted", "req-a.x", None) for n in first]
        outcomes += [(n["notice_id"], "accepted", "req-b", None) for n in second[:-1]]
        outcomes.append((second[-1]["notice_id"], "ambiguous", None, "read timeout"))
        # A notice outside the batch's places with a request's id is not counted in its range.
        outcomes.append((every[40]["notice_id"], "accepted", "req-b", None))
        ledger.record_outcomes(store, outcomes, ["sending"], (every[0]["seq"], every[19]["seq"]))
        _accept(store, every[30:35], "req-c.filter0001.0")
        # Outcomes without a message id (drafts) record no request.
        ledger.record_outcomes(
            store, [(every[50]["notice_id"], "drafted", None, None)], ["planned"]
        )
        sent = store.rows(Statement("sent", "SELECT * FROM sent_messages ORDER BY ALL"))
    assert sent == [
        ("req-a", first[0]["seq"], first[-1]["seq"]),
        ("req-b", second[0]["seq"], second[-2]["seq"]),
        ("req-c", every[30]["seq"], every[34]["seq"]),
    ]


def test_a_batch_of_events_is_recorded_within_its_places_and_nothing_outside_them(
    planned: Path,
) -> None:
    with Store(planned) as store:
        every = ledger.send_candidates(store, "b", ["planned"]).to_dicts()
        _accept(store, every[:10], "req-a")
        _accept(store, every[20:21], "req-z")
        inside, outside = every[3]["notice_id"], every[20]["notice_id"]
        places = (every[0]["seq"], every[9]["seq"])
        # Forged rows outside the places under the inside notice's id: the same event (a check
        # reading them would skip the real one) and an earlier bounce (a fold reading it would
        # give "bounced").
        forge = Statement(
            "forge events",
            "INSERT INTO delivery_events VALUES ($id, $notice, $event, $ts, $ts, NULL, NULL, $seq)",
        )
        for name, event, seconds in (("f1", "delivered", 5), ("f2", "bounce", 1)):
            store.run(
                forge,
                {
                    "id": name,
                    "notice": inside,
                    "event": event,
                    "ts": T0 + timedelta(seconds=seconds),
                    "seq": every[20]["seq"],
                },
            )
        with store.transaction():
            stored = ledger.insert_events(
                store,
                [
                    _event(inside, "delivered", 5, "e1"),
                    _event(outside, "delivered", 5, "e2"),  # a known notice, outside: skipped
                    _event("0" * 32, "delivered", 5, "e3"),  # an unknown notice: skipped
                ],
                places,
            )
            assert stored == [inside]
            # The same id again, and the same event under a new id: duplicates.
            again = [_event(inside, "delivered", 5, "e1"), _event(inside, "delivered", 5, "e4")]
            assert ledger.insert_events(store, again, places) == []
            folded = ledger.fold_input(store, [inside, outside], places)
            assert [(r[0], r[3]) for r in folded] == [(inside, "delivered")]
            forged_fold = (outside, "accepted", "bounced", "bounce", T0, None, "req-z")
            real_fold = (inside, "accepted", "delivered", "delivered", T0, T0, "req-a")
            ledger.write_folded(store, [real_fold, forged_fold], places)
        # An id stored outside the places: not looked for there, so the table's key refuses
        # it; looked for everywhere, it is skipped.
        reused = [_event(inside, "bounce", 9, "f1")]
        with pytest.raises(StoreError) as refused, store.transaction():
            ledger.insert_events(store, reused, places)
        assert refused.value.kind == "ConstraintException"
        with store.transaction():
            assert ledger.insert_events(store, reused, places, ids_everywhere=True) == []
        events = store.rows(
            Statement("events", "SELECT sg_event_id, seq FROM delivery_events ORDER BY ALL")
        )
        states = [store.scalar(_STATE, {"id": i}) for i in (inside, outside)]
    assert events == [("e1", every[3]["seq"]), ("f1", every[20]["seq"]), ("f2", every[20]["seq"])]
    assert states == ["delivered", "accepted"]


def test_places_far_apart_make_separate_clusters() -> None:
    gap = ledger.ROW_GROUP
    assert ledger.place_clusters([]) == []
    assert ledger.place_clusters([(5, 5), (1, 3), (2, 9)]) == [(1, 9)]
    assert ledger.place_clusters([(1, 10), (10 + gap, 10 + gap)]) == [(1, 10 + gap)]
    assert ledger.place_clusters([(10 + gap + 1, 10 + gap + 4), (1, 10)]) == [
        (1, 10),
        (10 + gap + 1, 10 + gap + 4),
    ]
    # A range within a wide one does not end the cluster early.
    assert ledger.place_clusters([(1, 10 * gap), (5, 6), (11 * gap, 11 * gap)]) == [(1, 11 * gap)]
    assert ledger.place_clusters([(1, 2), (40, 50)], gap=10) == [(1, 2), (40, 50)]


def test_a_version_11_store_keeps_every_event_and_places_it(
    planned: Path, leakwatch_env: Path
) -> None:
    old = leakwatch_env / "old" / "v11.duckdb"
    old.parent.mkdir()
    with downgraded(planned, old, 11, ["meta", "customers", "notices"]) as con:
        # Two requests answered, one message id with SendGrid's older dotted form.
        con.execute(
            "UPDATE notices SET state = 'delivered', sendgrid_message_id = "
            "CASE WHEN seq <= 20 THEN 'req-a' ELSE 'req-b.dfd.64b469' END WHERE seq <= 30"
        )
        # Events stored in no order of place, one of a notice that is gone.
        con.execute(
            "INSERT INTO delivery_events "
            "SELECT 'ev-' || seq || '-' || k, notice_id, "
            "CASE k WHEN 0 THEN 'processed' ELSE 'delivered' END, "
            "TIMESTAMPTZ '2026-11-01 12:00:00+00' + to_seconds(k), now(), NULL, "
            "sendgrid_message_id || '.recvd-1.0' "
            "FROM notices, range(2) r(k) WHERE seq <= 30 ORDER BY notice_id, k"
        )
        con.execute(
            "INSERT INTO delivery_events VALUES ('gone', 'f' || repeat('0', 31), 'delivered', "
            "TIMESTAMPTZ '2026-11-01 11:00:00+00', now(), NULL, NULL)"
        )
    earlier = rows(old, f"SELECT {_EVENT_COLUMNS} FROM delivery_events ORDER BY sg_event_id")
    assert len(earlier) == 61

    with Store(old) as store:
        assert store.schema_version == len(MIGRATIONS) >= 12
    assert (
        rows(old, f"SELECT {_EVENT_COLUMNS} FROM delivery_events ORDER BY sg_event_id") == earlier
    )
    placed = rows(
        old,
        "SELECT d.seq, n.seq, d.rowid FROM delivery_events d LEFT JOIN notices n USING (notice_id) "
        "ORDER BY d.rowid",
    )
    assert [r[0] for r in placed] == sorted(r[0] for r in placed)  # stored in place order
    assert placed[0][:2] == (0, None)  # the event whose notice is gone
    assert all(d == n for d, n, _ in placed[1:])
    assert rows(old, "SELECT * FROM sent_messages ORDER BY ALL") == [
        ("req-a", 1, 20),
        ("req-b", 21, 30),
    ]
    # A migrated store has the schema a new one has.
    schema = (
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name IN ('delivery_events', 'sent_messages') ORDER BY ALL"
    )
    assert rows(old, schema) == rows(planned, schema)
