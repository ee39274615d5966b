"""The delivery state machine: forward only, first terminal event by time wins, order of arrival irrelevant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import permutations

import pytest

from notify.delivery import StoredEvent, base_state, fold

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def ev(kind: str, seconds: int) -> StoredEvent:
    return StoredEvent(kind, T0 + timedelta(seconds=seconds))


@pytest.mark.parametrize(
    ("events", "state"),
    [
        ([ev("processed", 0)], "accepted"),
        ([ev("processed", 0), ev("deferred", 5)], "deferred"),
        ([ev("processed", 0), ev("deferred", 5), ev("delivered", 60)], "delivered"),
        ([ev("processed", 0), ev("bounce", 5)], "bounced"),
        ([ev("blocked", 5)], "bounced"),
        ([ev("dropped", 1)], "dropped"),
        ([ev("delivered", 2), ev("deferred", 9)], "delivered"),  # never regresses
        ([ev("open", 9), ev("click", 10)], "accepted"),  # untracked kinds change nothing
    ],
)
def test_every_arrival_order_gives_the_same_state(events: list[StoredEvent], state: str) -> None:
    results = {fold("accepted", list(order)).state for order in permutations(events)}
    assert results == {state}


def test_a_bounce_after_delivery_keeps_delivered_and_is_flagged() -> None:
    result = fold("accepted", [ev("bounce", 30), ev("delivered", 2)])
    assert result.state == "delivered" and result.late_bounce
    assert result.delivered_at == T0 + timedelta(seconds=2)
    assert result.last_event == "bounce" and result.last_event_at == T0 + timedelta(seconds=30)


def test_the_earliest_terminal_event_wins() -> None:
    assert fold("accepted", [ev("delivered", 20), ev("bounce", 3)]).state == "bounced"


def test_events_resolve_a_lost_answer_and_never_touch_a_refused_notice() -> None:
    assert fold("ambiguous", [ev("processed", 0)]).state == "accepted"
    assert fold("sending", [ev("delivered", 0)]).state == "delivered"
    assert fold("failed", [ev("delivered", 0)]).state == "failed"


def test_the_base_state_is_what_the_sender_recorded() -> None:
    assert base_state("delivered", accepted=True) == "accepted"
    assert base_state("delivered", accepted=False) == "ambiguous"
    assert base_state("sending", accepted=False) == "sending"
    assert base_state("failed", accepted=False) == "failed"
