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
from notify.outbox import EmlFile, OutboxWriter, build_emls
from notify.plan import breach_facts, contexts
from notify.render import NoticeRenderer, RenderedNotice

__all__ = ["NoticesResult", "render_notices"]


@dataclass(frozen=True)
class NoticesResult:
    notices: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.notices / self.seconds if self.seconds > 0 else 0.0


BATCH = 1000  # notices made durable together, as the outbox sender does per send batch


def _built(outbox: Path, batch: list[tuple[RenderedNotice, str]], sender: str) -> list[EmlFile]:
    """Build and empty ``batch``; every notice must build (the bench has no bad address)."""
    built = build_emls(outbox, batch, sender=sender)
    batch.clear()
    files = [f for f in built if isinstance(f, EmlFile)]
    if len(files) != len(built):
        raise next(f for f in built if not isinstance(f, EmlFile))
    return files


def render_notices(settings: Settings, breach_id: str, outbox: Path, cap: int) -> NoticesResult:
    """Plan notices, then time rendering, checking and writing at most ``cap`` of them as .eml.

    Counted when durable on disk. A child process writes one batch (system calls, durability)
    while this one renders the next: the two cores work at once, as in a real run's outbox
    step across send batches. The child's start is inside the timed part.
    """
    with open_store(settings) as store:
        plan_notices(store, breach_id)
        rows = notice_rows(store, breach_id, ["planned"])
    rows = rows.filter(rows["email"].is_not_null()).head(cap)
    facts = breach_facts(settings, breach_id, datetime.now(UTC))
    outbox.mkdir(parents=True, exist_ok=True)
    renderer = NoticeRenderer()
    started = time.perf_counter()
    batch: list[tuple[RenderedNotice, str]] = []
    with OutboxWriter(outbox) as writer:
        for ctx in contexts(rows.iter_rows(named=True), facts):
            assert ctx.email is not None
            notice = renderer.render(ctx)
            check_complete(notice, ctx)
            batch.append((notice, ctx.email))
            if len(batch) >= BATCH:
                writer.submit(_built(outbox, batch, settings.sender_email))
        writer.submit(_built(outbox, batch, settings.sender_email))
    return NoticesResult(writer.durable, time.perf_counter() - started)
