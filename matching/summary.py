"""The counts a run report shows, read from the store. Counts only, no identifier."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from matching.ledger import notice_states
from matching.sql import Statement
from matching.store import Store
from schemas.models import BreachTimes, RunSummary, SourceSummary

__all__ = ["RETENTION_BUCKETS", "retention_bucket", "run_summary"]

# How long after the end of their contract former subscribers' data was still kept, at the
# breach's awareness time. Labels are what the report and the register show.
RETENTION_BUCKETS = (
    "end date unknown",
    "contract ended after awareness",
    "under 1 year",
    "1 to 3 years",
    "3 to 5 years",
    "5 years or more",
)

_SOURCES = Statement(
    "sources of a breach",
    """
    SELECT CASE WHEN inner_path IS NULL THEN source ELSE source || '!' || inner_path END,
           sha256, size, coalesce(parser, ''), rows_read, rows_rejected, state
    FROM artifacts WHERE breach_id = $breach_id ORDER BY artifact_no
    """,
)
_REJECTS = Statement(
    "rejects by reason",
    """
    SELECT ("column" IS NULL) AS whole_row, reason, count(*)
    FROM rejects WHERE artifact_no IN
        (SELECT artifact_no FROM artifacts WHERE breach_id = $breach_id)
    GROUP BY ALL ORDER BY ALL
    """,
)
_EXPOSED = Statement(
    "exposure figures",
    """
    SELECT count(*),
           count(*) FILTER (WHERE c.status = 'former'),
           count(*) FILTER (WHERE c.email IS NULL)
    FROM exposure_rows e JOIN customers c USING (customer_no) WHERE e.breach_id = $breach_id
    """,
)
_BY = Statement(
    "exposures by list value",
    """
    WITH e AS (
        SELECT s.matched_on, s.categories, s.risk
        FROM exposure_rows r JOIN exposure_shapes s USING (breach_id, kinds, category_mask)
        WHERE r.breach_id = $breach_id
    )
    SELECT axis, value, count(*) FROM (
        SELECT 'key' AS axis, unnest(string_split(matched_on, ';')) AS value FROM e
        UNION ALL
        SELECT 'category', unnest(string_split(categories, ';')) FROM e WHERE categories <> ''
    ) GROUP BY ALL
    UNION ALL
    SELECT 'risk', risk, count(*) FROM e GROUP BY ALL
    """,
)
_CUSTOMERS = Statement("customers in base", "SELECT count(*) FROM customers")
_DRAFTED = Statement(
    "notices drafted",
    "SELECT count(*) FROM notices WHERE breach_id = $breach_id AND state <> 'planned' "
    "AND channel = 'email'",
)
_ROLES = Statement(
    "column roles",
    """
    SELECT CASE WHEN a.inner_path IS NULL THEN a.source ELSE a.source || '!' || a.inner_path END
               || CASE WHEN t.table_name = '' THEN '' ELSE ' [' || t.table_name || ']' END,
           t.roles
    FROM leak_tables t JOIN artifacts a USING (artifact_no)
    WHERE a.breach_id = $breach_id ORDER BY t.artifact_no, t.table_no
    """,
)


_TIMES = Statement(
    "breach times",
    """
    SELECT b.status, b.regime, b.created_at, b.aware_at, b.confirmed_at,
           (SELECT min(acquired_at) FROM artifacts a WHERE a.breach_id = b.breach_id),
           (SELECT max(acquired_at) FROM artifacts a WHERE a.breach_id = b.breach_id),
           (SELECT max(computed_at) FROM exposure_rows e WHERE e.breach_id = b.breach_id),
           (SELECT min(planned_at) FROM notices n WHERE n.breach_id = b.breach_id),
           (SELECT min(sent_at) FROM notices n WHERE n.breach_id = b.breach_id),
           (SELECT max(sent_at) FROM notices n WHERE n.breach_id = b.breach_id),
           (SELECT max(delivered_at) FROM notices n WHERE n.breach_id = b.breach_id),
           (SELECT count(*) FROM notices n WHERE n.breach_id = b.breach_id
                AND n.channel = 'email' AND n.sent_at IS NULL),
           (SELECT min(generated_at) FROM regulator_notices r
                WHERE r.breach_id = b.breach_id AND r.phase = 'initial'),
           (SELECT min(generated_at) FROM regulator_notices r
                WHERE r.breach_id = b.breach_id AND r.phase = 'complementary')
    FROM breaches b WHERE b.breach_id = $breach_id
    """,
)
_OVERLAP = Statement(
    "exposed customers also exposed in other breaches",
    """
    SELECT o.breach_id, count(DISTINCT o.customer_no)
    FROM exposure_rows e JOIN exposure_rows o
        ON o.customer_no = e.customer_no AND o.breach_id <> e.breach_id
    WHERE e.breach_id = $breach_id GROUP BY ALL ORDER BY ALL
    """,
)
_OVERLAP_TOTAL = Statement(
    "exposed customers also exposed in any other breach",
    """
    SELECT count(*) FROM exposure_rows e
    WHERE e.breach_id = $breach_id AND EXISTS
        (SELECT 1 FROM exposure_rows o WHERE o.customer_no = e.customer_no
             AND o.breach_id <> e.breach_id)
    """,
)
_FORMER_DAYS = Statement(
    "former subscribers exposed, by days since contract end",
    """
    SELECT date_diff('day', c.contract_end, CAST($reference AS DATE)), count(*)
    FROM exposure_rows e JOIN customers c USING (customer_no)
    WHERE e.breach_id = $breach_id AND c.status = 'former'
    GROUP BY ALL
    """,
)


def retention_bucket(days_since_end: int | None) -> str:
    """The bucket of a former subscriber whose contract ended ``days_since_end`` days earlier."""
    if days_since_end is None:
        return RETENTION_BUCKETS[0]
    if days_since_end < 0:
        return RETENTION_BUCKETS[1]
    for bucket, limit in zip(RETENTION_BUCKETS[2:5], (365, 3 * 365, 5 * 365), strict=True):
        if days_since_end < limit:
            return bucket
    return RETENTION_BUCKETS[5]


def _times(store: Store, breach_id: str) -> tuple[str, str, BreachTimes]:
    rows = store.rows(_TIMES, {"breach_id": breach_id})
    if not rows:
        return "suspected", "telecom", BreachTimes()
    (status, regime, created, aware, confirmed, first, last, matched, planned, first_sent,
     last_sent, delivered, unsent, initial, complementary) = rows[0]  # fmt: skip
    return (
        str(status),
        str(regime),
        BreachTimes(
            created_at=created,
            aware_at=aware or first,
            aware_recorded=aware is not None,
            confirmed_at=confirmed,
            first_ingested_at=first,
            last_ingested_at=last,
            matched_at=matched,
            notices_planned_at=planned,
            first_sent_at=first_sent,
            last_sent_at=last_sent,
            last_delivered_at=delivered,
            unsent_email_notices=int(unsent),
            regulator_initial_at=initial,
            regulator_complementary_at=complementary,
        ),
    )


def _former_buckets(store: Store, breach_id: str, reference: datetime) -> dict[str, int]:
    """Days are counted to the UTC date of ``reference`` (the awareness time)."""
    buckets = dict.fromkeys(RETENTION_BUCKETS, 0)
    params = {"breach_id": breach_id, "reference": reference.astimezone(UTC).date()}
    for days, n in store.rows(_FORMER_DAYS, params):
        buckets[retention_bucket(None if days is None else int(days))] += int(n)
    return buckets


def run_summary(store: Store, breach_id: str) -> RunSummary:
    params = {"breach_id": breach_id}
    status, regime, times = _times(store, breach_id)
    now = datetime.now(UTC)
    sources = [
        SourceSummary(
            display=d,
            sha256=sha,
            size=int(size),
            parser=parser if state != "failed" else f"{parser or '?'} (refused)",
            rows_read=int(read),
            rows_rejected=int(rej),
        )
        for d, sha, size, parser, read, rej, state in store.rows(_SOURCES, params)
    ]
    row_reasons: dict[str, int] = {}
    value_reasons: dict[str, int] = {}
    for whole_row, reason, n in store.rows(_REJECTS, params):
        (row_reasons if whole_row else value_reasons)[reason] = int(n)
    exposed, former, without_email = store.rows(_EXPOSED, params)[0]
    by: dict[str, dict[str, int]] = {"key": {}, "category": {}, "risk": {}}
    for axis, value, n in store.rows(_BY, params):
        by[axis][value] = int(n)
    roles: dict[str, dict[str, str]] = {}
    for display, payload in store.rows(_ROLES, params):
        decoded = json.loads(payload)
        roles[display] = {
            col: f"{d.get('category') or 'ignored'} ({d.get('source')})"
            for col, d in decoded.items()
        }
    return RunSummary(
        breach_id=breach_id,
        generated_at=now,
        customers_total=int(store.scalar(_CUSTOMERS)),
        sources=sources,
        rows_read=sum(s.rows_read for s in sources),
        rows_rejected=sum(s.rows_rejected for s in sources),
        rejects_by_reason=row_reasons,
        values_rejected_by_reason=value_reasons,
        exposed_total=int(exposed),
        by_key=dict(sorted(by["key"].items())),
        by_category=dict(sorted(by["category"].items(), key=lambda kv: -kv[1])),
        by_risk={r: by["risk"].get(r, 0) for r in ("high", "medium", "low")},
        former_exposed=int(former),
        notices_drafted=int(store.scalar(_DRAFTED, params)),
        notices_without_email=int(without_email),
        column_roles=roles,
        status=status,
        regime=regime,
        times=times,
        notices_by_state={
            f"{channel}/{state}": n
            for (channel, state), n in sorted(notice_states(store, breach_id).items())
        },
        overlap_total=int(store.scalar(_OVERLAP_TOTAL, params)),
        overlap_by_breach={str(b): int(n) for b, n in store.rows(_OVERLAP, params)},
        former_by_time_since_end=_former_buckets(store, breach_id, times.aware_at or now),
    )
