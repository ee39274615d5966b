"""The send loop: plan, render, check, record ``sending``, send, record the answers — exactly once.

Order of a run (README, "Sending exactly once"):

1. refuse a suspected breach (``require_confirmed``) unless only drafting to the outbox;
2. plan a notice for every exposed customer that has none;
3. resolve notices left ``sending`` (a crash) or ``ambiguous`` (a lost answer) from their
   delivery events; those without events stay ``ambiguous`` and are only sent again when the
   officer says so (``resend_ambiguous``);
4. per batch: render and check each notice (an incomplete one is ``failed``, never sent), mark
   the rest ``sending`` in one committed transaction, call the sender, and record every answer
   in one transaction (``accepted`` with SendGrid's message id, ``failed``, ``ambiguous``, or
   back to ``planned`` when nothing went out).

Drafting to the local outbox sends nothing, and rewriting a draft is harmless: its batches run
on every core (:func:`notify.drafting.start_drafting`), and each chunk's notices are recorded
``drafted`` only once all of its files are durable (after a crash, a re-run drafts them again).

A notice is picked up only from ``planned`` or ``drafted``, so a re-run sends nothing already
accepted or later.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import polars as pl

from connectors.delimited import Rebatcher
from core import crash
from core.errors import TerminalError
from matching import ledger
from matching.breaches import require_confirmed
from matching.store import Store
from notify.completeness import IncompleteNoticeError, check_complete
from notify.delivery import PRE_SEND
from notify.drafting import Drafted, DraftError, draft_chunks
from notify.plan import contexts
from notify.proof import resolve_unresolved
from notify.render import NoticeRenderer
from notify.senders import OutboxSender, Outcome, OutgoingNotice, Sender
from schemas.models import BreachFacts

__all__ = ["AmbiguousNoticesError", "SendReport", "prepare", "send_notices"]

Progress = Callable[[int, int], None]  # (notices done, total)
# Outbox drafts recorded together: each chunk's workers start once, and progress shows per chunk.
DRAFT_CHUNK = 20_000


class AmbiguousNoticesError(TerminalError):
    """Notices that may or may not have gone out: the officer decides (``--resend-ambiguous``)."""

    def __init__(self, notice_ids: Sequence[str]) -> None:
        self.notice_ids = tuple(notice_ids)
        super().__init__(
            f"{len(notice_ids)} notice(s) are ambiguous (sent, answer lost, no delivery event "
            "yet); they were not sent again. Wait for delivery events or re-send them knowingly "
            "with --resend-ambiguous"
        )


class _DryRun(Exception):
    """Rolls a dry run's planning back."""


@dataclass
class SendReport:
    """Counts of one run; notice ids only for the ambiguous ones (random, non-personal)."""

    sender: str
    dry_run: bool = False
    planned: int = 0
    candidates: int = 0
    rendered: int = 0
    incomplete: int = 0
    accepted: int = 0
    drafted: int = 0
    failed: int = 0
    unsent: int = 0
    retries: int = 0
    ambiguous: list[str] = field(default_factory=list)
    incomplete_reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Prepared:
    ready: list[OutgoingNotice]
    refused: list[Outcome]


def prepare(
    rows: Iterable[dict[str, object]], facts: BreachFacts, renderer: NoticeRenderer
) -> _Prepared:
    """Render and check each notice; a notice missing an art. 34(2) element is refused."""
    ready: list[OutgoingNotice] = []
    refused: list[Outcome] = []
    for ctx in contexts(rows, facts):
        if ctx.email is None:  # planned for post: the fallback list has it
            continue
        notice = renderer.render(ctx)
        try:
            check_complete(notice, ctx)
        except IncompleteNoticeError as exc:
            refused.append(
                Outcome(ctx.notice_id, "failed", reason="incomplete: " + ", ".join(exc.missing))
            )
            continue
        ready.append(OutgoingNotice(ctx.notice_id, ctx.email, notice))
    return _Prepared(ready, refused)


def _batches(frames: Iterable[pl.DataFrame], size: int) -> Iterator[pl.DataFrame]:
    """The rows of ``frames``, in order, ``size`` at a time (the last batch may hold fewer),
    whatever the frames' own sizes."""
    rebatch = Rebatcher(size)
    for frame in frames:
        yield from rebatch.push(frame)
    yield from rebatch.flush()


def _kind_batches(pages: Iterable[pl.DataFrame], unit: int, size: int) -> Iterator[pl.DataFrame]:
    """Batches of ``size`` notices (a multiple of ``unit``) for a sender whose requests carry
    up to ``unit`` notices of one shape: as soon as ``unit`` notices of one kind
    (:data:`~matching.ledger.KIND_COLUMNS`) have come, they go together into the batches; what
    is left of each kind at the end (fewer than ``unit``) goes last, kind by kind. Within a
    kind, ledger order. Holds fewer than ``unit`` notices of each kind from one page to the
    next, however many candidates there are."""
    kind = list(ledger.KIND_COLUMNS)
    at = pl.int_range(pl.len()).over(kind)
    count = pl.len().over(kind)

    def runs() -> Iterator[pl.DataFrame]:
        waiting: pl.DataFrame | None = None
        for page in pages:
            rows = page if waiting is None else pl.concat([waiting, page])
            ready = rows.select(at < count - count % unit).to_series()
            yield rows.filter(ready).sort(kind, maintain_order=True, nulls_last=True)
            waiting = _owned(rows.filter(~ready))
        if waiting is not None and waiting.height:
            yield waiting.sort(kind, maintain_order=True, nulls_last=True)

    return _batches(runs(), size)


def _owned(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` in memory of its own: a filtered frame's strings still point into its
    source's buffers, so a few notices held from page to page would keep every page alive."""
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="uncompressed")
    buffer.seek(0)
    return pl.read_ipc(buffer)


def _record(
    store: Store,
    outcomes: Sequence[Outcome],
    from_states: Sequence[str],
    places: ledger.Places = ledger.EVERY_PLACE,
) -> None:
    ledger.record_outcomes(
        store,
        [
            (o.notice_id, "planned" if o.state == "unsent" else o.state, o.message_id, o.reason)
            for o in outcomes
        ],
        from_states,
        places,
    )


def _tally(report: SendReport, outcomes: Sequence[Outcome]) -> None:
    for o in outcomes:
        if o.state == "accepted":
            report.accepted += 1
        elif o.state == "drafted":
            report.drafted += 1
        elif o.state == "failed":
            report.failed += 1
        elif o.state == "ambiguous":
            report.ambiguous.append(o.notice_id)
        else:
            report.unsent += 1


def send_notices(
    store: Store,
    breach_id: str,
    facts: BreachFacts,
    sender: Sender,
    *,
    batch_size: int = 100,
    limit: int | None = None,
    dry_run: bool = False,
    resend_ambiguous: bool = False,
    require_confirmation: bool = True,
    progress: Progress | None = None,
    renderer: NoticeRenderer | None = None,
    page_rows: int = ledger.PAGE_ROWS,
) -> SendReport:
    """Send (or draft) every e-mail notice of the breach not yet sent; see the module docstring.

    Raises the sender's halt (401/403) once the batch's answers are recorded.
    """
    if require_confirmation:
        require_confirmed(store, breach_id)
    renderer = renderer or NoticeRenderer()
    report = SendReport(sender=sender.name, dry_run=dry_run)
    if dry_run:
        with contextlib.suppress(_DryRun), store.transaction():
            report.planned = ledger.plan_notices_in_transaction(store, breach_id)
            with ledger.queued_candidates(
                store, breach_id, PRE_SEND, limit, page_rows=page_rows
            ) as queued:
                report.candidates = queued.count
                _check_only(queued.pages(), facts, renderer, report, progress)
            raise _DryRun
        report.ambiguous = ledger.unresolved_notices(store, breach_id)
        return report

    report.planned = ledger.plan_notices(store, breach_id)
    unresolved = resolve_unresolved(store, breach_id)
    from_states = (*PRE_SEND, "ambiguous") if resend_ambiguous else PRE_SEND
    with ledger.queued_candidates(
        store, breach_id, from_states, limit, page_rows=page_rows
    ) as queued:
        report.candidates = queued.count
        pages = queued.pages()
        if isinstance(sender, OutboxSender):
            _draft(store, pages, facts, sender, renderer, report, from_states, progress)
        else:
            _send(store, pages, facts, sender, renderer, report, from_states, batch_size, progress)
    if not resend_ambiguous:
        report.ambiguous = sorted(set(unresolved) | set(report.ambiguous))
    return report


def _send(
    store: Store,
    pages: Iterable[pl.DataFrame],
    facts: BreachFacts,
    sender: Sender,
    renderer: NoticeRenderer,
    report: SendReport,
    from_states: Sequence[str],
    batch_size: int,
    progress: Progress | None,
) -> None:
    """Per batch: render and check, record ``sending`` first where the sender needs it, send,
    record the answers. Raises the sender's halt once the batch's answers are recorded.

    A sender whose requests carry several notices of one shape gets batches of at least its
    ``min_batch``, made of runs of its ``per_request`` notices of one kind
    (:func:`_kind_batches`: the shape follows from the kind, and from which of the name and
    hints a customer has). A batch costs two ledger statements, each reading the row groups
    of the batch's places (:func:`matching.ledger.places_of`): against 5.68 M notices, a claim
    of 4 000 took 0.14 s when they came from across a page (runs of one kind), 0.011-0.028 s
    when consecutive, and 0.25-0.34 s reading every notice before places; larger batches
    spare the ledger.
    """
    batch_size = max(batch_size, sender.min_batch)
    if sender.per_request > 1:
        unit = sender.per_request
        batches = _kind_batches(pages, unit, -(-batch_size // unit) * unit)
    else:
        batches = _batches(pages, batch_size)
    done = 0
    for rows in batches:
        chunk = rows.to_dicts()  # one batch's dicts at a time: 5.68 M would take gigabytes
        places = ledger.places_of(rows)
        prepared = prepare(chunk, facts, renderer)
        report.rendered += len(prepared.ready) + len(prepared.refused)
        _note_incomplete(report, prepared.refused)
        _record(store, prepared.refused, from_states, places)
        batch = prepared.ready
        if sender.records_before_send and batch:
            claimed = set(
                ledger.mark_sending(
                    store, [n.notice_id for n in batch], uuid.uuid4().hex, from_states, places
                )
            )
            crash.point("after-mark-sending")
            batch = [n for n in batch if n.notice_id in claimed]
        result = sender.send(batch)
        sent_from = ("sending",) if sender.records_before_send else from_states
        _record(store, result.outcomes, sent_from, places)
        crash.point("after-mark-accepted")
        _tally(report, result.outcomes)
        report.retries += result.retries
        done += len(chunk)
        if progress:
            progress(done, report.candidates)
        if result.halt is not None:
            raise result.halt


def _draft(
    store: Store,
    pages: Iterable[pl.DataFrame],
    facts: BreachFacts,
    sender: OutboxSender,
    renderer: NoticeRenderer,
    report: SendReport,
    from_states: Sequence[str],
    progress: Progress | None,
) -> None:
    """Draft the candidates with an e-mail address into the outbox, a chunk at a time.

    A chunk's refusals are recorded ``failed`` with their reason and the rest ``drafted``, once
    every worker has made its files durable; a worker that fails stops the run with that chunk
    unrecorded (its notices stay where they were, to be drafted again).

    The chunks are pipelined (:func:`notify.drafting.draft_chunks`): while one chunk's workers
    draft, this process records the chunk before it, reads the next page of candidates when it
    needs one, and compiles the next chunk's kinds of notice, which the next workers inherit.
    Forks happen only between those steps, never during a store statement.
    """
    post = 0  # candidates planned for post, passed so far: the fallback list has them

    def mailable() -> Iterator[pl.DataFrame]:
        nonlocal post
        for page in pages:
            rows = page.filter(pl.col("email").is_not_null())
            post += page.height - rows.height
            yield rows

    done = 0
    chunks = 0

    def drafted(chunk: pl.DataFrame, made: Drafted) -> None:
        nonlocal done, chunks
        done = _record_drafted(store, chunk, made, report, from_states, done)
        chunks += 1
        if progress:
            progress(done + post, report.candidates)

    draft_chunks(
        _batches(mailable(), DRAFT_CHUNK),
        lambda chunk: chunk.to_dict(as_series=False),
        facts,
        sender.outbox,
        sender=sender.sender_email,
        renderer=renderer,
        drafted=drafted,
    )
    if progress and post and not chunks:  # only notices for post: no chunk said it
        progress(post, report.candidates)


def _record_drafted(
    store: Store,
    chunk: pl.DataFrame,
    drafted: Drafted,
    report: SendReport,
    from_states: Sequence[str],
    done: int,
) -> int:
    """Record a drafted chunk: its refusals ``failed``, the rest ``drafted``. Returns ``done``."""
    refused = {r.notice_id: r.reason for r in drafted.refused}
    if chunk.height - len(refused) != drafted.durable:
        raise DraftError(
            f"outbox drafting: {drafted.durable} notices durable of "
            f"{chunk.height - len(refused)} drafted"
        )
    incomplete: list[Outcome] = []
    outcomes: list[Outcome] = []
    for notice_id in chunk["notice_id"]:
        reason = refused.get(notice_id)
        if reason is None:
            outcomes.append(Outcome(notice_id, "drafted"))
        elif reason.startswith("incomplete: "):
            incomplete.append(Outcome(notice_id, "failed", reason=reason))
        else:
            outcomes.append(Outcome(notice_id, "failed", reason=reason))
    report.rendered += chunk.height
    _note_incomplete(report, incomplete)
    _record(store, [*incomplete, *outcomes], from_states, ledger.places_of(chunk))
    crash.point("after-mark-accepted")
    _tally(report, outcomes)
    return done + chunk.height


def _note_incomplete(report: SendReport, refused: Sequence[Outcome]) -> None:
    report.incomplete += len(refused)
    report.failed += len(refused)
    for o in refused:
        for element in (o.reason or "").removeprefix("incomplete: ").split(", "):
            report.incomplete_reasons[element] = report.incomplete_reasons.get(element, 0) + 1


def _check_only(
    pages: Iterable[pl.DataFrame],
    facts: BreachFacts,
    renderer: NoticeRenderer,
    report: SendReport,
    progress: Progress | None,
) -> None:
    done = 0
    for rows in _batches(pages, 500):
        prepared = prepare(rows.to_dicts(), facts, renderer)
        report.rendered += len(prepared.ready) + len(prepared.refused)
        _note_incomplete(report, prepared.refused)
        done += rows.height
        if progress:
            progress(done, report.candidates)
