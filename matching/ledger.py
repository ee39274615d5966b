"""The notice ledger: one notice per exposed customer and breach, planned once, then tracked."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl

from matching.sql import Statement
from matching.store import Store

__all__ = ["mark_notices", "notice_rows", "notice_states", "plan_notices"]

_PLAN = Statement(
    "plan notices",
    """
    INSERT INTO notices
    SELECT replace(uuid()::VARCHAR, '-', ''), $breach_id, e.customer_id,
           CASE WHEN c.email IS NULL THEN 'post' ELSE 'email' END, 'planned', $now, $now
    FROM exposures e JOIN customers c USING (customer_id)
    WHERE e.breach_id = $breach_id
      AND NOT EXISTS (SELECT 1 FROM notices n
                      WHERE n.breach_id = $breach_id AND n.customer_id = e.customer_id)
    RETURNING notice_id
    """,
)
_ROWS = Statement(
    "notices with their context",
    """
    SELECT n.notice_id, n.customer_id, n.channel, n.state, c.language, c.first_name,
           c.last_name, c.email, e.matched_on, e.categories, e.risk, c.iban_hint, c.phone_hint
    FROM notices n
    JOIN exposures e ON e.breach_id = n.breach_id AND e.customer_id = n.customer_id
    JOIN customers c ON c.customer_id = n.customer_id
    WHERE n.breach_id = $breach_id AND list_contains($states, n.state)
    ORDER BY n.notice_id
    """,
)
_MARK = Statement(
    "mark notices",
    """
    UPDATE notices SET state = $state, updated_at = $now
    WHERE notice_id IN (SELECT notice_id FROM marked)
    """,
)
_STATES = Statement(
    "notices by state",
    "SELECT channel, state, count(*) FROM notices WHERE breach_id = $breach_id "
    "GROUP BY ALL ORDER BY ALL",
)


def plan_notices(store: Store, breach_id: str) -> int:
    """Plan a notice for every exposed customer that has none yet; returns how many were added."""
    with store.transaction():
        return len(store.rows(_PLAN, {"breach_id": breach_id, "now": datetime.now(UTC)}))


def notice_rows(store: Store, breach_id: str, states: Sequence[str]) -> pl.DataFrame:
    return store.frame(_ROWS, {"breach_id": breach_id, "states": list(states)})


def mark_notices(store: Store, notice_ids: Sequence[str], state: str) -> None:
    marked = pl.DataFrame({"notice_id": list(notice_ids)}, schema={"notice_id": pl.String})
    with store.transaction(), store.registered("marked", marked):
        store.run(_MARK, {"state": state, "now": datetime.now(UTC)})


def notice_states(store: Store, breach_id: str) -> dict[tuple[str, str], int]:
    return {(ch, st): int(n) for ch, st, n in store.rows(_STATES, {"breach_id": breach_id})}
