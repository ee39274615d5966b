"""The breach register in the store (migration 0005): revisions of each breach's entry, never updated."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from matching.sql import Statement
from matching.store import Store

__all__ = ["StoredEntry", "breach_ids", "latest_entries", "record_entry"]

_BREACHES = Statement(
    "every breach", "SELECT breach_id FROM breaches ORDER BY created_at, breach_id"
)
_LATEST_HASH = Statement(
    "latest register revision of a breach",
    """
    SELECT content_sha256 FROM breach_register WHERE breach_id = $breach_id
    ORDER BY revision DESC LIMIT 1
    """,
)
_INSERT = Statement(
    "record register revision",
    """
    INSERT INTO breach_register
        (breach_id, recorded_at, facts, effects, decisions, remedial_actions, content_sha256)
    VALUES ($breach_id, $now, $facts, $effects, $decisions, $actions, $sha256)
    """,
)
_LATEST = Statement(
    "latest register entries",
    """
    SELECT revision, breach_id, recorded_at, facts, effects, decisions, remedial_actions
    FROM breach_register
    QUALIFY row_number() OVER (PARTITION BY breach_id ORDER BY revision DESC) = 1
    ORDER BY breach_id
    """,
)


@dataclass(frozen=True)
class StoredEntry:
    revision: int
    breach_id: str
    recorded_at: datetime
    facts: dict[str, Any]
    effects: dict[str, Any]
    decisions: dict[str, Any]
    remedial_actions: list[str]


def breach_ids(store: Store) -> list[str]:
    """Every breach of the store, oldest first, notified or not."""
    return [str(r[0]) for r in store.rows(_BREACHES)]


def record_entry(
    store: Store,
    breach_id: str,
    *,
    facts: dict[str, Any],
    effects: dict[str, Any],
    decisions: dict[str, Any],
    remedial_actions: list[str],
    content_sha256: str,
) -> bool:
    """Add a revision when the entry's content changed; True when one was added."""
    with store.transaction():
        if store.scalar(_LATEST_HASH, {"breach_id": breach_id}) == content_sha256:
            return False
        store.run(
            _INSERT,
            {
                "breach_id": breach_id,
                "now": datetime.now(UTC),
                "facts": json.dumps(facts, sort_keys=True),
                "effects": json.dumps(effects, sort_keys=True),
                "decisions": json.dumps(decisions, sort_keys=True),
                "actions": json.dumps(remedial_actions),
                "sha256": content_sha256,
            },
        )
    return True


def latest_entries(store: Store) -> list[StoredEntry]:
    """The latest revision of every breach's entry."""
    return [
        StoredEntry(
            revision=int(rev),
            breach_id=str(bid),
            recorded_at=at,
            facts=json.loads(facts),
            effects=json.loads(effects),
            decisions=json.loads(decisions),
            remedial_actions=list(json.loads(actions)),
        )
        for rev, bid, at, facts, effects, decisions, actions in store.rows(_LATEST)
    ]
