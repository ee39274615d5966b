"""Delivery events recorded within their notices' places, through a send to the fake SendGrid:
each request's places are kept when its answer is recorded, every event takes its notice's
place, and none is lost when its request is unknown, points elsewhere, or lies far apart from
the others of its call."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from notify_world import World, ledger

from flows.context import open_store
from matching.ledger import ROW_GROUP, delivery_counts, place_clusters, plan_notices
from matching.sql import Statement
from notify.fake_sendgrid import FakeSendGrid
from notify.plan import breach_facts
from notify.proof import EventsReport, record_events
from notify.senders import SendGridSender
from notify.sending import send_notices
from notify.webhook import parse_events

_PLACED_EVENTS = """
    SELECT count(*), count(*) FILTER (WHERE d.seq = n.seq)
    FROM delivery_events d JOIN notices n USING (notice_id)
"""


def _send(world: World, fake: FakeSendGrid) -> dict[str, list[str]]:
    """Every e-mail notice sent, five to a request; the notices of each request by its id."""
    sender = SendGridSender(
        fake.api_key,
        host=fake.url,
        timeout_s=5.0,
        sender_email="securite@operateur.example",
        per_request=5,
        concurrency=2,
    )
    facts = breach_facts(world.settings, world.breach_id, datetime(2024, 10, 20, tzinfo=UTC))
    with open_store(world.settings) as store:
        report = send_notices(store, world.breach_id, facts, sender, batch_size=20)
    assert report.accepted == world.with_email
    requests: dict[str, list[str]] = defaultdict(list)
    for m in fake.sent:
        requests[m.message_id].append(m.notice_id or "")
    assert len(requests) > 4
    return dict(requests)


def _record(world: World, records: list[dict[str, Any]]) -> EventsReport:
    with open_store(world.settings) as store:
        return record_events(store, parse_events(records).events)


def _states(world: World) -> dict[str, str]:
    return dict(
        ledger(world.settings, "SELECT notice_id, state FROM notices WHERE channel = 'email'")
    )


def test_a_send_keeps_each_requests_places_and_events_take_their_notices_place(
    world: World, fake: FakeSendGrid
) -> None:
    requests = _send(world, fake)
    place = dict(ledger(world.settings, "SELECT notice_id, seq FROM notices"))
    expected = sorted(
        (message_id, min(place[i] for i in ids), max(place[i] for i in ids))
        for message_id, ids in requests.items()
    )
    assert ledger(world.settings, "SELECT * FROM sent_messages ORDER BY ALL") == expected

    records = fake.events()
    report = _record(world, records)
    assert report.stored == len(records) == 2 * world.with_email  # processed, delivered
    assert ledger(world.settings, _PLACED_EVENTS) == [(len(records), len(records))]
    assert set(_states(world).values()) == {"delivered"}


def test_events_whose_request_is_unknown_or_elsewhere_are_recorded_all_the_same(
    world: World, fake: FakeSendGrid
) -> None:
    requests = _send(world, fake)
    unknown, elsewhere, nowhere, other, *_ = sorted(requests)
    place = dict(ledger(world.settings, "SELECT notice_id, seq FROM notices"))
    with open_store(world.settings) as store:
        # One request forgotten, one given the place of another's notice, one places no notice
        # has.
        store.run(_FORGET, {"m": unknown})
        at = place[requests[other][0]]
        store.run(_MOVE, {"m": elsewhere, "first": at, "last": at})
        store.run(_MOVE, {"m": nowhere, "first": 10 * ROW_GROUP, "last": 11 * ROW_GROUP})
    records = fake.events()
    by_request = defaultdict(list)
    for record in records:
        by_request[record["sg_message_id"].split(".", 1)[0]].append(record)
    # Each call on its own, so that no other request's places hold its notices.
    for message_id in (unknown, elsewhere, nowhere):
        assert _record(world, by_request[message_id]).stored == len(by_request[message_id])
    # Events without a message id, and one of a notice this ledger does not know.
    bare = [{k: v for k, v in r.items() if k != "sg_message_id"} for r in by_request[other]]
    stranger = dict(bare[0], notice_id="f" * 32, sg_event_id="stranger-event")
    assert _record(world, [*bare, stranger]).stored == len(bare)
    assert _record(world, records).stored == len(records) - sum(
        len(by_request[m]) for m in (unknown, elsewhere, nowhere, other)
    )

    assert len(records) == 2 * world.with_email
    assert ledger(world.settings, _PLACED_EVENTS) == [(len(records), len(records))]
    assert set(_states(world).values()) == {"delivered"}
    assert _record(world, records).stored == 0  # posted again: nothing new


def test_an_event_id_stored_under_a_notice_elsewhere_is_skipped_all_the_same(
    world: World, fake: FakeSendGrid
) -> None:
    _send(world, fake)
    records = fake.events()
    reused = records[0]["sg_event_id"]
    with open_store(world.settings) as store:
        # Stored under a notice far from every notice of the call (never from SendGrid).
        store.run(_FORGE, {"id": reused, "seq": 10 * ROW_GROUP})
    report = _record(world, records)
    assert report.stored == len(records) - 1
    assert ledger(world.settings, _PLACED_EVENTS) == [(len(records) - 1,) * 2]
    assert ledger(world.settings, "SELECT count(*) FROM delivery_events") == [(len(records),)]


def test_a_call_answering_requests_far_apart_is_recorded_cluster_by_cluster(
    world: World, fake: FakeSendGrid
) -> None:
    # The later half of the notices placed two row groups after the first half.
    with open_store(world.settings) as store:
        assert plan_notices(store, world.breach_id) > 0
        store.run(_SPLIT, {"g": ROW_GROUP})
    _send(world, fake)
    place = dict(ledger(world.settings, "SELECT notice_id, seq FROM notices"))
    mailed = set(_states(world))
    early = {i for i in mailed if place[i] < ROW_GROUP}
    later = mailed - early
    assert early and later
    assert len(place_clusters((place[i], place[i]) for i in mailed)) == 2
    first = [r for r in fake.events() if r["notice_id"] in early]
    assert _record(world, first).stored == 2 * len(early)

    # One call: a late bounce of an early notice beside the later notices' events.
    late = sorted(early)[0]
    fake.outcomes[late] = "bounce"
    call = [r for r in fake.events() if r["notice_id"] in later or r["notice_id"] == late]
    assert _record(world, call).stored == 2 * len(later) + 1  # the bounce, not its "processed"

    assert set(_states(world).values()) == {"delivered"}
    stored = 2 * len(mailed) + 1
    assert ledger(world.settings, _PLACED_EVENTS) == [(stored, stored)]
    with open_store(world.settings, read_only=True) as store:
        assert delivery_counts(store, world.breach_id)["late_bounce"] == 1


_FORGET = Statement("forget a request", "DELETE FROM sent_messages WHERE message_id = $m")
_MOVE = Statement(
    "give a request places",
    "UPDATE sent_messages SET first_place = $first, last_place = $last WHERE message_id = $m",
)
_FORGE = Statement(
    "an event of a notice elsewhere",
    "INSERT INTO delivery_events VALUES ($id, 'f' || repeat('0', 31), 'processed', now(), now(), "
    "NULL, NULL, $seq)",
)
_SPLIT = Statement(
    "place the later half far",
    "UPDATE notices SET seq = seq + 2 * $g WHERE seq > (SELECT max(seq) // 2 FROM notices)",
)
