"""The figures a regulator dossier needs, read from the store, and its record of regulator notices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from matching.ledger import delivery_counts, notice_states
from matching.sql import Statement
from matching.store import Store

__all__ = [
    "DossierFigures",
    "RegulatorNoticeRecord",
    "SourceFigures",
    "dossier_figures",
    "record_regulator_notice",
    "regulator_notices",
]

# Only artifacts ingested in full count, as in linking.
_RECORDS_BY_MASK = Statement(
    "leaked records by category mask",
    """
    SELECT r.categories, sum(r.rows)
    FROM leak_row_counts r JOIN artifacts a USING (artifact_no)
    WHERE a.breach_id = $breach_id AND a.state = 'done'
    GROUP BY ALL ORDER BY ALL
    """,
)
_RECORDS_BY_KEY = Statement(
    "leaked records by identifier kind",
    """
    SELECT k.kind::VARCHAR, count(DISTINCT (k.artifact_no, k.table_no, k.row))
    FROM leak_keys k JOIN artifacts a USING (artifact_no)
    WHERE a.breach_id = $breach_id AND a.state = 'done'
    GROUP BY ALL ORDER BY ALL
    """,
)
# Exposed persons by shape (a handful of distinct rows); every per-person figure sums over it.
_PERSON_SHAPES = Statement(
    "exposed persons by shape",
    """
    SELECT s.matched_on, e.category_mask, s.risk, c.status = 'former', count(*)
    FROM exposure_rows e
    JOIN customers c USING (customer_no)
    JOIN exposure_shapes s USING (breach_id, kinds, category_mask)
    WHERE e.breach_id = $breach_id
    GROUP BY ALL ORDER BY ALL
    """,
)
_SOURCES = Statement(
    "sources of a breach with their acquisition facts",
    """
    SELECT CASE WHEN inner_path IS NULL THEN source ELSE source || '!' || inner_path END,
           sha256, size, media_type, acquired_at, rows_read, rows_rejected, state = 'failed'
    FROM artifacts WHERE breach_id = $breach_id ORDER BY artifact_no
    """,
)
_NOTICE_TIMES = Statement(
    "customer notice progress",
    """
    SELECT count(*), count(*) FILTER (WHERE list_contains($open_states, state)),
           max(coalesce(accepted_at, sent_at, updated_at))
               FILTER (WHERE NOT list_contains($open_states, state))
    FROM notices WHERE breach_id = $breach_id AND channel = 'email'
    """,
)
_RECORD = Statement(
    "record regulator notice",
    """
    INSERT INTO regulator_notices
        (breach_id, phase, generated_at, due_at, on_time, late_reason, dossier_sha256, path)
    VALUES ($breach_id, $phase, $generated_at, $due_at, $on_time, $late_reason, $sha256, $path)
    """,
)
_NOTICES = Statement(
    "regulator notices of a breach",
    """
    SELECT phase, generated_at, due_at, on_time, late_reason, dossier_sha256, path
    FROM regulator_notices WHERE breach_id = $breach_id ORDER BY generated_at, notice_no
    """,
)


@dataclass(frozen=True)
class SourceFigures:
    """One acquired artifact as the dossier cites it: where, fingerprint, when, how many rows."""

    display: str
    sha256: str
    size: int
    media_type: str
    acquired_at: datetime
    rows_read: int
    rows_rejected: int
    refused: bool


@dataclass(frozen=True)
class DossierFigures:
    """Counts only. Persons are exposed customers; records are leaked rows.

    ``*_by_mask`` count by the data-category bit mask (``schemas.vocab.CATEGORY_BITS``) so any
    grouping of categories (field level, or the CNIL form's broader ones) is a sum over masks.
    """

    breach_id: str
    persons_total: int
    persons_former: int
    persons_by_mask: dict[int, int]
    persons_by_key: dict[str, int]
    persons_by_risk: dict[str, int]
    records_total: int
    records_by_mask: dict[int, int]
    records_by_key: dict[str, int]
    rows_read: int
    rows_rejected: int
    sources: tuple[SourceFigures, ...]
    notices: dict[tuple[str, str], int]  # (channel, state) -> count, from the ledger
    delivery: dict[str, int]  # matching.ledger.delivery_counts
    notices_open: int  # e-mail notices not yet accepted by the sender
    notices_closed_last_at: datetime | None


@dataclass(frozen=True)
class RegulatorNoticeRecord:
    phase: str
    generated_at: datetime
    due_at: datetime | None
    on_time: bool
    late_reason: str | None
    dossier_sha256: str
    path: str


def dossier_figures(store: Store, breach_id: str, *, open_states: Sequence[str]) -> DossierFigures:
    """Everything countable about a breach. ``open_states``: ledger states not yet sent.

    ``notices_closed_last_at`` is when the last e-mail notice left (accepted by the sender), the
    completion time of the customer notification once ``notices_open`` is 0.
    """
    params = {"breach_id": breach_id}
    sources = tuple(
        SourceFigures(
            display=display,
            sha256=sha,
            size=int(size),
            media_type=media,
            acquired_at=acquired,
            rows_read=int(read),
            rows_rejected=int(rejected),
            refused=bool(failed),
        )
        for display, sha, size, media, acquired, read, rejected, failed in store.rows(
            _SOURCES, params
        )
    )
    by_mask: dict[int, int] = {}
    by_key: dict[str, int] = {}
    by_risk: dict[str, int] = dict.fromkeys(("high", "medium", "low"), 0)
    persons = former = 0
    for matched_on, mask, risk, is_former, n in store.rows(_PERSON_SHAPES, params):
        count = int(n)
        persons += count
        former += count if is_former else 0
        by_mask[int(mask)] = by_mask.get(int(mask), 0) + count
        by_risk[risk] = by_risk.get(risk, 0) + count
        for key in filter(None, matched_on.split(";")):
            by_key[key] = by_key.get(key, 0) + count
    records_by_mask = {int(m): int(n) for m, n in store.rows(_RECORDS_BY_MASK, params)}
    total, open_, last = store.rows(_NOTICE_TIMES, {**params, "open_states": list(open_states)})[0]
    return DossierFigures(
        breach_id=breach_id,
        persons_total=persons,
        persons_former=former,
        persons_by_mask=by_mask,
        persons_by_key=dict(sorted(by_key.items())),
        persons_by_risk=by_risk,
        records_total=sum(records_by_mask.values()),
        records_by_mask=records_by_mask,
        records_by_key={k: int(n) for k, n in store.rows(_RECORDS_BY_KEY, params)},
        rows_read=sum(s.rows_read for s in sources),
        rows_rejected=sum(s.rows_rejected for s in sources),
        sources=sources,
        notices=notice_states(store, breach_id),
        delivery=delivery_counts(store, breach_id),
        notices_open=int(open_ or 0) if total else 0,
        notices_closed_last_at=last,
    )


def record_regulator_notice(store: Store, breach_id: str, record: RegulatorNoticeRecord) -> None:
    store.run(
        _RECORD,
        {
            "breach_id": breach_id,
            "phase": record.phase,
            "generated_at": record.generated_at,
            "due_at": record.due_at,
            "on_time": record.on_time,
            "late_reason": record.late_reason,
            "sha256": record.dossier_sha256,
            "path": record.path,
        },
    )


def regulator_notices(store: Store, breach_id: str) -> list[RegulatorNoticeRecord]:
    """The breach's regulator notices, oldest first."""
    return [
        RegulatorNoticeRecord(
            phase=phase,
            generated_at=generated,
            due_at=due,
            on_time=bool(on_time),
            late_reason=reason,
            dossier_sha256=sha,
            path=path,
        )
        for phase, generated, due, on_time, reason, sha, path in store.rows(
            _NOTICES, {"breach_id": breach_id}
        )
    ]
