"""Proof of delivery in the ledger: storing delivery events, folding them into states, resolving ambiguity."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from pathlib import Path

from matching import ledger
from matching.store import Store, StoreError
from notify.delivery import StoredEvent, base_state, fold
from notify.webhook import DeliveryEvent

__all__ = [
    "EventsReport",
    "record_events",
    "refold",
    "resolve_unresolved",
    "write_fallback_csv",
]


@dataclass(frozen=True)
class EventsReport:
    received: int
    stored: int  # new events of notices this ledger knows
    changed: int  # notices whose state changed


def refold(
    store: Store, notice_ids: Sequence[str], places: ledger.Places = ledger.EVERY_PLACE
) -> int:
    """Recompute each notice's state from all its stored events; returns how many changed.

    ``places``: a range holding every notice of ``notice_ids`` (one outside it is left as it
    is). Call inside a transaction.
    """
    if not notice_ids:
        return 0
    rows = ledger.fold_input(store, sorted(set(notice_ids)), places)
    folded: list[tuple[str, str, str, str | None, datetime | None, datetime | None, str | None]]
    folded = []
    for notice_id, group in groupby(rows, key=lambda r: r[0]):
        items = list(group)
        _, state, accepted, *_ = items[0]
        events = [StoredEvent(r[3], r[4]) for r in items if r[3] is not None]
        if not events:
            continue
        result = fold(base_state(state, bool(accepted)), events)
        message_ids = [r[5] for r in items if r[5]]
        message_id = ledger.message_key(message_ids[0]) if message_ids else None
        if result.state != state or result.last_event is not None:
            folded.append(
                (
                    notice_id,
                    state,
                    result.state,
                    result.last_event,
                    result.last_event_at,
                    result.delivered_at,
                    message_id,
                )
            )
    ledger.write_folded(store, folded, places)
    return sum(1 for f in folded if f[1] != f[2])


def record_events(store: Store, events: Sequence[DeliveryEvent]) -> EventsReport:
    """Store new events and move their notices' states, in one transaction.

    The events' notices are found within the places of the requests they answer
    (:func:`matching.ledger.notice_places`), then the events are stored, folded and written
    per cluster of nearby places (:func:`_by_cluster`), each statement reading only the row
    groups of its cluster. Events of notices this ledger does not know are skipped.

    An event id already stored is looked for within the places too: an id names one event of
    one notice. One stored under a notice elsewhere (never from SendGrid) breaks the table's
    key; the call is then recorded again with each id looked for among every stored event, as
    before schema 12, so it is skipped all the same.
    """
    try:
        return _record_events(store, events, ids_everywhere=False)
    except StoreError as exc:
        if exc.kind != "ConstraintException":
            raise
    return _record_events(store, events, ids_everywhere=True)


def _record_events(
    store: Store, events: Sequence[DeliveryEvent], *, ids_everywhere: bool
) -> EventsReport:
    stored = changed = 0
    with store.transaction():
        places = ledger.notice_places(store, [(e.notice_id, e.sg_message_id) for e in events])
        for cluster, rows in _by_cluster(events, places):
            touched = ledger.insert_events(store, rows, cluster, ids_everywhere=ids_everywhere)
            stored += len(touched)
            changed += refold(store, touched, cluster)
    return EventsReport(received=len(events), stored=stored, changed=changed)


_EventRow = tuple[str, str, str, datetime, str | None, str | None]


def _by_cluster(
    events: Sequence[DeliveryEvent], places: dict[str, int]
) -> list[tuple[ledger.Places, list[_EventRow]]]:
    """The events of notices with a place, grouped by cluster of nearby places
    (:func:`matching.ledger.place_clusters`), as :func:`matching.ledger.insert_events` takes
    them.

    A call's events may answer requests far apart (a late bounce beside fresh deliveries): one
    range over both would read every row group between them. A notice's events all fall in
    the cluster of its place, so it is folded from all of them.
    """
    clusters = ledger.place_clusters((p, p) for p in set(places.values()))
    starts = [first for first, _ in clusters]
    members: list[list[_EventRow]] = [[] for _ in clusters]
    for e in events:
        place = places.get(e.notice_id)
        if place is not None:
            members[bisect_right(starts, place) - 1].append(
                (e.sg_event_id, e.notice_id, e.event, e.ts, e.reason_code, e.sg_message_id)
            )
    return list(zip(clusters, members, strict=True))


def resolve_unresolved(store: Store, breach_id: str) -> list[str]:
    """Settle notices left ``sending`` or ``ambiguous`` from their events (by notice id).

    A notice with an event goes to the state its events prove; one without stays (or becomes)
    ``ambiguous`` and is returned: it may or may not have gone out, and only the officer may
    decide to send it again.
    """
    pending = ledger.unresolved_notices(store, breach_id)
    with store.transaction():
        refold(store, pending)
    ledger.mark_interrupted_ambiguous(store, breach_id)
    return ledger.unresolved_notices(store, breach_id)


def write_fallback_csv(store: Store, breach_id: str, path: Path) -> int:
    """customer_id, notice_id, reason of every customer to reach by post or SMS; returns rows."""
    frame = ledger.fallback_rows(store, breach_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return frame.height
