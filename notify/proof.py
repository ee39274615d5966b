"""Proof of delivery in the ledger: storing delivery events, folding them into states, resolving ambiguity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from pathlib import Path

from matching import ledger
from matching.store import Store
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


def refold(store: Store, notice_ids: Sequence[str]) -> int:
    """Recompute each notice's state from all its stored events; returns how many changed.

    Call inside a transaction.
    """
    if not notice_ids:
        return 0
    rows = ledger.fold_input(store, sorted(set(notice_ids)))
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
        message_id = message_ids[0].split(".", 1)[0] if message_ids else None
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
    ledger.write_folded(store, folded)
    return sum(1 for f in folded if f[1] != f[2])


def record_events(store: Store, events: Sequence[DeliveryEvent]) -> EventsReport:
    """Store new events and move their notices' states, in one transaction."""
    rows = [
        (e.sg_event_id, e.notice_id, e.event, e.ts, e.reason_code, e.sg_message_id) for e in events
    ]
    with store.transaction():
        touched = ledger.insert_events(store, rows)
        changed = refold(store, touched)
    return EventsReport(received=len(events), stored=len(touched), changed=changed)


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
