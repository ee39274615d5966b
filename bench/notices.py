"""Rendering notices into the outbox: the draft step's per-notice work, on exposed customers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.settings import Settings
from flows.context import open_store
from matching.ledger import notice_rows, plan_notices
from notify.completeness import check_complete
from notify.outbox import write_eml
from notify.plan import breach_facts, contexts
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
    """Plan notices, then time rendering, checking and writing at most ``cap`` of them as .eml."""
    with open_store(settings) as store:
        plan_notices(store, breach_id)
        rows = notice_rows(store, breach_id, ["planned"])
    rows = rows.filter(rows["email"].is_not_null()).head(cap)
    facts = breach_facts(settings, breach_id, datetime.now(UTC))
    outbox.mkdir(parents=True, exist_ok=True)
    renderer = NoticeRenderer()
    started = time.perf_counter()
    count = 0
    for ctx in contexts(rows.iter_rows(named=True), facts):
        assert ctx.email is not None
        notice = renderer.render(ctx)
        check_complete(notice, ctx)
        write_eml(outbox, notice, to=ctx.email, sender=settings.sender_email)
        count += 1
    return NoticesResult(count, time.perf_counter() - started)
