"""A breach's timeline and the state of each deadline, for the run report and the register (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from notify.deadlines import Regime, ScheduledDeadline, schedule
from schemas.models import BreachTimes

__all__ = ["DeadlineRow", "TimelineRow", "deadline_rows", "moment", "timeline_rows"]


@dataclass(frozen=True)
class TimelineRow:
    label: str
    at: datetime | None
    detail: str


@dataclass(frozen=True)
class DeadlineRow:
    label: str
    due_at: datetime | None
    done_at: datetime | None
    state: str  # met, missed, pending
    binding: bool
    legal_basis: str


def moment(at: datetime | None) -> str:
    """A time as the report and the register show it: UTC to the minute, or "—"."""
    if at is None:
        return "—"
    shown = at.astimezone(UTC) if at.tzinfo is not None else at
    return shown.strftime("%Y-%m-%d %H:%M UTC")


def timeline_rows(t: BreachTimes) -> list[TimelineRow]:
    """What happened when, in time order; steps that have not happened yet come last."""
    aware_detail = (
        "recorded by the officer"
        if t.aware_recorded
        else "no awareness time recorded: the first ingestion counts"
    )
    unsent = f"{t.unsent_email_notices:,} e-mail notices not sent yet"
    rows = [
        TimelineRow("Breach opened in leakwatch", t.created_at, ""),
        TimelineRow("Awareness (deadlines start)", t.aware_at, aware_detail),
        TimelineRow("Confirmed by the DPO", t.confirmed_at, ""),
        TimelineRow("First source ingested", t.first_ingested_at, ""),
        TimelineRow("Last source ingested", t.last_ingested_at, ""),
        TimelineRow("Matching against the customer base", t.matched_at, "latest run"),
        TimelineRow("Customer notices planned", t.notices_planned_at, ""),
        TimelineRow("First customer notice sent", t.first_sent_at, ""),
        TimelineRow("Last customer notice sent", t.last_sent_at, unsent),
        TimelineRow("Last delivery confirmed", t.last_delivered_at, ""),
        TimelineRow("CNIL initial notification", t.regulator_initial_at, ""),
        TimelineRow("CNIL complementary notification", t.regulator_complementary_at, ""),
    ]
    timed = sorted(((r.at, i) for i, r in enumerate(rows) if r.at is not None))
    return [rows[i] for _, i in timed] + [r for r in rows if r.at is None]


def _customers_done_at(t: BreachTimes) -> datetime | None:
    """Customer notification is done when every e-mail notice has been sent."""
    return t.last_sent_at if t.last_sent_at is not None and t.unsent_email_notices == 0 else None


def deadline_rows(regime: str, t: BreachTimes, now: datetime) -> list[DeadlineRow]:
    """Each deadline with its due time, when it was met, and met / missed / pending at ``now``.

    Empty when the clock has not started (no awareness time and nothing ingested).
    """
    if t.aware_at is None:
        return []
    chosen: Regime = "gdpr" if regime == "gdpr" else "telecom"
    scheduled: tuple[ScheduledDeadline, ...] = schedule(
        chosen,
        t.aware_at,
        now=now,
        confirmed_at=t.confirmed_at,
        initial_at=t.regulator_initial_at,
        complementary_at=t.regulator_complementary_at,
        customers_done_at=_customers_done_at(t),
    )
    return [
        DeadlineRow(
            label=s.deadline.label,
            due_at=s.deadline.due_at,
            done_at=s.done_at,
            state=s.state,
            binding=s.deadline.binding,
            legal_basis=s.deadline.legal_basis,
        )
        for s in scheduled
    ]
