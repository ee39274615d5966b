"""The delivery state machine: which event moves a notice to which state, and what never regresses.

Decisions (README, "Proof of delivery"):

- States rank ``planned = drafted < sending = ambiguous < accepted < deferred < terminal``,
  the terminal states being ``delivered``, ``bounced`` and ``dropped``. An event moves a
  notice only forward; ``failed`` (refused before sending) never moves.
- Among terminal events, the *earliest by event time* wins, so the state does not depend on
  the order events arrive in. A bounce or drop after a delivery keeps ``delivered`` and is
  recorded; the notice is then listed for the fallback channel as ``bounce-after-delivered``
  (the receiving server accepted the message, then gave it up).
- The state is always recomputed from every stored event of the notice (the fold below), so
  duplicates, replays and out-of-order arrivals give the same result as one clean stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

__all__ = [
    "EVENT_STATE",
    "PRE_SEND",
    "RESOLVABLE",
    "SENT_OR_LATER",
    "STATES",
    "TERMINAL",
    "Folded",
    "StoredEvent",
    "base_state",
    "fold",
]

STATES: Final = (
    "planned",
    "drafted",
    "sending",
    "ambiguous",
    "accepted",
    "deferred",
    "delivered",
    "bounced",
    "dropped",
    "failed",
)
TERMINAL: Final = frozenset({"delivered", "bounced", "dropped"})
# States a sender may pick a notice up from (drafted: written to the outbox, not sent).
PRE_SEND: Final = ("planned", "drafted")
# States left by a crash or a lost answer: resolved from events before anything is sent.
RESOLVABLE: Final = ("sending", "ambiguous")
# The notice reached SendGrid: never sent again.
SENT_OR_LATER: Final = ("accepted", "deferred", "delivered", "bounced", "dropped")

# SendGrid event → the state it proves. Other events (open, click, spamreport…) are ignored.
EVENT_STATE: Final = {
    "processed": "accepted",
    "deferred": "deferred",
    "delivered": "delivered",
    "bounce": "bounced",
    "blocked": "bounced",
    "dropped": "dropped",
}

_RANK: Final = {
    "planned": 0,
    "drafted": 0,
    "sending": 1,
    "ambiguous": 1,
    "accepted": 2,
    "deferred": 3,
    "delivered": 4,
    "bounced": 4,
    "dropped": 4,
}


@dataclass(frozen=True)
class StoredEvent:
    """One delivery event of one notice, as the ledger keeps it."""

    event: str
    ts: datetime


@dataclass(frozen=True)
class Folded:
    """A notice's state after all its events, with the facts the ledger records."""

    state: str
    last_event: str | None
    last_event_at: datetime | None
    delivered_at: datetime | None
    late_bounce: bool


def base_state(state: str, accepted: bool) -> str:
    """The state a notice had before any event: what the sender itself recorded.

    A state that only events can give (delivered…) falls back to ``accepted`` when the API
    answered, else to ``ambiguous`` (a lost answer resolved by events).
    """
    if (state in _RANK and _RANK[state] <= _RANK["ambiguous"]) or state == "failed":
        return state
    return "accepted" if accepted else "ambiguous"


def _order(e: StoredEvent) -> tuple[datetime, int]:
    return e.ts, _RANK[EVENT_STATE[e.event]]


def fold(base: str, events: Iterable[StoredEvent]) -> Folded:
    """Apply every event, earliest first, to the state the sender recorded."""
    known = sorted((e for e in events if e.event in EVENT_STATE), key=_order)
    state = base
    delivered_at: datetime | None = None
    late_bounce = False
    for e in known:
        target = EVENT_STATE[e.event]
        if e.event == "delivered" and delivered_at is None:
            delivered_at = e.ts
        if state == "failed":
            continue
        if state in TERMINAL:
            late_bounce = late_bounce or (state == "delivered" and target != "delivered")
            continue
        if _RANK[target] > _RANK[state]:
            state = target
    last = known[-1] if known else None
    return Folded(
        state=state,
        last_event=last.event if last else None,
        last_event_at=last.ts if last else None,
        delivered_at=delivered_at if state == "delivered" else None,
        late_bounce=late_bounce,
    )
