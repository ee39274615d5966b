"""Deadline arithmetic for both regimes, across daylight-saving changes, and the late-reason rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from core.errors import ConfigError
from notify.deadlines import (
    LateReasonRequiredError,
    customer_deadline,
    deadline_state,
    deadlines,
    evaluate_notice,
    parse_moment,
    regulator_deadline,
    schedule,
)

PARIS = ZoneInfo("Europe/Paris")


def test_telecom_initial_is_24_hours_across_the_spring_change() -> None:
    # Paris moves from +01:00 to +02:00 on 2026-03-29 at 02:00: 24 elapsed hours, not 24 clock hours.
    aware = parse_moment("2026-03-28T10:00:00+01:00", what="aware")
    assert aware == datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    due = regulator_deadline("telecom", "initial", aware).due_at
    assert due == datetime(2026, 3, 29, 9, 0, tzinfo=UTC)
    assert due is not None
    local = due.astimezone(PARIS)
    assert (local.hour, local.utcoffset()) == (11, timedelta(hours=2))


def test_gdpr_is_72_hours_across_the_autumn_change() -> None:
    # Paris moves from +02:00 to +01:00 on 2026-10-25 at 03:00.
    aware = parse_moment("2026-10-24T12:00:00+02:00", what="aware")
    deadline = regulator_deadline("gdpr", "initial", aware)
    assert deadline.due_at == datetime(2026, 10, 27, 10, 0, tzinfo=UTC)
    assert deadline.due_at.astimezone(PARIS).hour == 11
    assert "33(1)" in deadline.legal_basis and deadline.binding


def test_the_same_instant_in_any_offset_gives_the_same_deadline() -> None:
    spellings = ["2026-03-28T09:00:00Z", "2026-03-28T10:00:00+01:00", "2026-03-28T04:00-05:00"]
    dues = {
        regulator_deadline("telecom", "initial", parse_moment(s, what="t")).due_at
        for s in spellings
    }
    assert dues == {datetime(2026, 3, 29, 9, 0, tzinfo=UTC)}


def test_telecom_complementary_counts_three_days_from_the_initial_notification() -> None:
    aware = datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    initial = datetime(2026, 3, 28, 20, 15, tzinfo=timezone(timedelta(hours=1)))
    made = regulator_deadline("telecom", "complementary", aware, initial)
    assert made.due_at == datetime(2026, 3, 31, 19, 15, tzinfo=UTC)
    assert not made.provisional and made.starts_from == "initial notification"
    assert "2(3)" in made.legal_basis
    # Before the initial notice exists: counted from its due time, and marked provisional.
    pending = regulator_deadline("telecom", "complementary", aware)
    assert pending.due_at == datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    assert pending.provisional


def test_gdpr_phases_have_no_figure() -> None:
    d = regulator_deadline("gdpr", "complementary", datetime(2026, 1, 1, tzinfo=UTC))
    assert d.due_at is None and "33(4)" in d.legal_basis
    assert evaluate_notice(d, datetime(2027, 1, 1, tzinfo=UTC)).on_time


def test_customer_target_is_a_target_counted_from_confirmation() -> None:
    assert customer_deadline(None).due_at is None
    confirmed = datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    d = customer_deadline(confirmed)
    assert d.due_at == confirmed + timedelta(hours=72)
    assert not d.binding and "pas un délai légal" in d.legal_basis
    assert customer_deadline(confirmed, 24).due_at == confirmed + timedelta(hours=24)
    keys = [x.key for x in deadlines("telecom", confirmed, confirmed_at=confirmed)]
    assert keys == ["regulator_initial", "regulator_complementary", "customers"]


@pytest.mark.parametrize(
    "text", ["2026-03-28T10:00:00", "2026-03-28", "yesterday", "2026-13-40T10:00+01:00", ""]
)
def test_times_without_offset_or_malformed_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--aware-at"):
        parse_moment(text, what="--aware-at")


def test_naive_awareness_is_refused() -> None:
    with pytest.raises(ConfigError, match="offset"):
        regulator_deadline("telecom", "initial", datetime(2026, 3, 28, 10, 0))


def test_late_notice_without_reason_is_refused_and_with_reason_carries_it() -> None:
    aware = datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    d = regulator_deadline("telecom", "initial", aware)
    on_time = evaluate_notice(d, aware + timedelta(hours=23, minutes=59), "ignored")
    assert on_time.on_time and on_time.late_reason is None
    exactly = evaluate_notice(d, aware + timedelta(hours=24))
    assert exactly.on_time
    late_at = aware + timedelta(hours=30)
    for reason in (None, "", "   "):
        with pytest.raises(LateReasonRequiredError, match="--late-reason"):
            evaluate_notice(d, late_at, reason)
    late = evaluate_notice(d, late_at, "  Fichier découvert sur Telegram le 29/03.  ")
    assert not late.on_time and late.late_reason == "Fichier découvert sur Telegram le 29/03."
    assert late.made_at == late_at and late.due_at == d.due_at


def test_states_met_missed_pending() -> None:
    aware = datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    d = regulator_deadline("telecom", "initial", aware)
    assert deadline_state(d, aware + timedelta(hours=2), aware + timedelta(days=9)) == "met"
    assert deadline_state(d, aware + timedelta(hours=25), aware + timedelta(days=9)) == "missed"
    assert deadline_state(d, None, aware + timedelta(hours=25)) == "missed"
    assert deadline_state(d, None, aware + timedelta(hours=1)) == "pending"
    rows = schedule(
        "telecom",
        aware,
        now=aware + timedelta(hours=30),
        confirmed_at=aware,
        initial_at=aware + timedelta(hours=3),
    )
    assert [r.state for r in rows] == ["met", "pending", "pending"]
    assert rows[1].deadline.due_at == aware + timedelta(hours=3, days=3)
