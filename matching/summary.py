"""The counts a run report shows, read from the store. Counts only, no identifier."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from matching.sql import Statement
from matching.store import Store
from schemas.models import RunSummary, SourceSummary

__all__ = ["run_summary"]

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
    FROM exposures e JOIN customers c USING (customer_id) WHERE e.breach_id = $breach_id
    """,
)
_BY = Statement(
    "exposures by list value",
    """
    SELECT 'key' AS axis, unnest(string_split(matched_on, ';')) AS value, count(*)
        FROM exposures WHERE breach_id = $breach_id GROUP BY ALL
    UNION ALL
    SELECT 'category', unnest(string_split(categories, ';')), count(*)
        FROM exposures WHERE breach_id = $breach_id AND categories <> '' GROUP BY ALL
    UNION ALL
    SELECT 'risk', risk, count(*) FROM exposures WHERE breach_id = $breach_id GROUP BY ALL
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


def run_summary(store: Store, breach_id: str) -> RunSummary:
    params = {"breach_id": breach_id}
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
        generated_at=datetime.now(UTC),
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
    )
