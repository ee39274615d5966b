"""Rendering notices into the outbox: the draft step's per-notice work, on exposed customers.

Planning and drafting each run in a fresh process of their own (``bench.child``): drafting
forked from a process that had just planned millions of notices and run the bare limit and
the peer ran slower (10 M: 8 116/s against 13 694/s from a fresh process).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from bench.data import BREACH_ID
from core.settings import Settings
from flows.context import open_store
from matching.ledger import plan_notices, send_candidates
from notify.drafting import Drafted, draft_chunks
from notify.plan import breach_facts
from notify.render import NoticeRenderer
from notify.sending import DRAFT_CHUNK

__all__ = ["NoticesResult", "plan", "render_notices"]


@dataclass(frozen=True)
class NoticesResult:
    notices: int
    seconds: float
    first_notices: int = 0  # the first chunk's, whose workers compile its kinds themselves
    first_seconds: float = 0.0

    @property
    def per_s(self) -> float:
        return self.notices / self.seconds if self.seconds > 0 else 0.0

    @property
    def first_per_s(self) -> float:
        return self.first_notices / self.first_seconds if self.first_seconds > 0 else 0.0


def plan(settings: Settings) -> int:
    """Plan the notices of every exposed customer of the bench's breach; returns how many."""
    with open_store(settings) as store:
        return plan_notices(store, BREACH_ID)


def render_notices(settings: Settings, outbox: Path, cap: int) -> NoticesResult:
    """Time rendering, checking and writing the first ``cap`` planned e-mail notices as .eml.

    As the outbox step drafts them (:func:`notify.drafting.draft_chunks`), in chunks of
    ``DRAFT_CHUNK``: worker processes (one per core) take pieces of a chunk whichever is free,
    and render, check, build and write them in batches, each synced while the next is drafted;
    meanwhile this process compiles the next chunk's kinds of notice, which its workers
    inherit. Counted when durable on disk; everything from the rows handed over to the last
    durable file is timed, the workers' start included. Not timed: reading the rows, and the
    store's records of each chunk (the outbox step's, here not made). The first chunk is also
    timed alone (until its workers have ended): its workers compile its kinds themselves.
    """
    with open_store(settings) as store:
        rows = send_candidates(store, BREACH_ID, ["planned"], limit=cap)
    rows = rows.filter(rows["email"].is_not_null())
    facts = breach_facts(settings, BREACH_ID, datetime.now(UTC))
    outbox.mkdir(parents=True, exist_ok=True)
    durable = 0
    first: tuple[int, float] | None = None

    def drafted(chunk: pl.DataFrame, made: Drafted) -> None:
        nonlocal durable, first
        if made.refused:  # the bench has no bad address and no incomplete notice
            refusal = made.refused[0]
            raise SystemExit(f"bench: notice {refusal.notice_id} refused: {refusal.reason}")
        durable += made.durable
        if first is None:  # reported once the next chunk's workers have started, if any
            first = (made.durable, time.perf_counter() - started)

    started = time.perf_counter()
    draft_chunks(
        (rows.slice(at, DRAFT_CHUNK) for at in range(0, rows.height, DRAFT_CHUNK)),
        lambda chunk: chunk.to_dict(as_series=False),
        facts,
        outbox,
        sender=settings.sender_email,
        renderer=NoticeRenderer(),
        drafted=drafted,
    )
    seconds = time.perf_counter() - started
    first_notices, first_seconds = first or (0, 0.0)
    return NoticesResult(durable, seconds, first_notices, first_seconds)
