"""Rendering notices into the outbox: the draft step's per-notice work, on exposed customers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.settings import Settings
from flows.context import open_store
from matching.ledger import notice_rows, plan_notices
from notify.drafting import start_drafting
from notify.plan import breach_facts
from notify.render import NoticeRenderer

__all__ = ["NoticesResult", "render_notices"]


@dataclass(frozen=True)
class NoticesResult:
    notices: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.notices / self.seconds if self.seconds > 0 else 0.0


def render_notices(settings: Settings, breach_id: str, outbox: Path, cap: int) -> NoticesResult:
    """Plan notices, then time rendering, checking and writing at most ``cap`` of them as .eml.

    Counted when durable on disk. Worker processes (one per core) each render, check, build
    and write their share in batches, each synced while the next is drafted, as a real run's
    outbox step does. Everything from the rows handed over to the last durable file is timed, the
    workers' start included.
    """
    with open_store(settings) as store:
        plan_notices(store, breach_id)
        rows = notice_rows(store, breach_id, ["planned"])
    rows = rows.filter(rows["email"].is_not_null()).head(cap)
    facts = breach_facts(settings, breach_id, datetime.now(UTC))
    outbox.mkdir(parents=True, exist_ok=True)
    renderer = NoticeRenderer()
    started = time.perf_counter()
    drafted = start_drafting(
        rows.to_dict(as_series=False),
        facts,
        outbox,
        sender=settings.sender_email,
        renderer=renderer,
    ).wait()
    seconds = time.perf_counter() - started
    if drafted.refused:  # the bench has no bad address and no incomplete notice
        first = drafted.refused[0]
        raise SystemExit(f"bench: notice {first.notice_id} refused: {first.reason}")
    return NoticesResult(drafted.durable, seconds)
