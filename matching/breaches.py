"""Breaches in the store: their status (suspected until confirmed), regime, awareness time, description."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.errors import ConfigError, TerminalError
from matching.sql import Statement
from matching.store import Store

__all__ = [
    "BreachNotConfirmedError",
    "BreachRecord",
    "confirm_breach",
    "describe_breach",
    "get_breach",
    "require_confirmed",
    "set_awareness",
]


class BreachNotConfirmedError(TerminalError):
    """No customer is notified about a breach the DPO has not confirmed."""


@dataclass(frozen=True)
class BreachRecord:
    breach_id: str
    status: str  # "suspected" or "confirmed"
    regime: str  # "telecom" or "gdpr"
    created_at: datetime
    aware_at: datetime | None
    confirmed_at: datetime | None
    description: dict[str, Any]
    first_ingested_at: datetime | None

    @property
    def effective_aware_at(self) -> datetime | None:
        """The officer's recorded awareness time, else the first ingestion (issue rule)."""
        return self.aware_at or self.first_ingested_at


_GET = Statement(
    "get breach",
    """
    SELECT b.breach_id, b.status, b.regime, b.created_at, b.aware_at, b.confirmed_at,
           b.description,
           (SELECT min(acquired_at) FROM artifacts a WHERE a.breach_id = b.breach_id)
    FROM breaches b WHERE b.breach_id = $breach_id
    """,
)
_CONFIRM = Statement(
    "confirm breach",
    """
    UPDATE breaches SET status = 'confirmed', confirmed_at = coalesce(confirmed_at, $now)
    WHERE breach_id = $breach_id
    """,
)
_AWARE = Statement(
    "record awareness",
    "UPDATE breaches SET aware_at = $aware_at WHERE breach_id = $breach_id",
)
_REGIME = Statement(
    "record regime", "UPDATE breaches SET regime = $regime WHERE breach_id = $breach_id"
)
_DESCRIBE = Statement(
    "describe breach",
    "UPDATE breaches SET description = $description WHERE breach_id = $breach_id",
)


def get_breach(store: Store, breach_id: str) -> BreachRecord:
    rows = store.rows(_GET, {"breach_id": breach_id})
    if not rows:
        raise ConfigError(f"no breach {breach_id!r} in the store; ingest a source into it first")
    bid, status, regime, created, aware, confirmed, description, first = rows[0]
    return BreachRecord(
        breach_id=bid,
        status=status,
        regime=regime,
        created_at=created,
        aware_at=aware,
        confirmed_at=confirmed,
        description=json.loads(description) if description else {},
        first_ingested_at=first,
    )


def confirm_breach(
    store: Store,
    breach_id: str,
    *,
    aware_at: datetime | None = None,
    regime: str | None = None,
) -> BreachRecord:
    """The DPO's confirmation; optionally the awareness time and regime with it."""
    get_breach(store, breach_id)
    with store.transaction():
        store.run(_CONFIRM, {"breach_id": breach_id, "now": datetime.now(UTC)})
        if aware_at is not None:
            store.run(_AWARE, {"breach_id": breach_id, "aware_at": aware_at})
        if regime is not None:
            if regime not in ("telecom", "gdpr"):
                raise ConfigError("regime must be 'telecom' or 'gdpr'")
            store.run(_REGIME, {"breach_id": breach_id, "regime": regime})
    return get_breach(store, breach_id)


def set_awareness(store: Store, breach_id: str, aware_at: datetime) -> None:
    get_breach(store, breach_id)
    store.run(_AWARE, {"breach_id": breach_id, "aware_at": aware_at})


def describe_breach(store: Store, breach_id: str, description: dict[str, Any]) -> None:
    """Store the officer's description (circumstances, measures, contacts…) as JSON."""
    get_breach(store, breach_id)
    store.run(_DESCRIBE, {"breach_id": breach_id, "description": json.dumps(description)})


def require_confirmed(store: Store, breach_id: str) -> BreachRecord:
    record = get_breach(store, breach_id)
    if record.status != "confirmed":
        raise BreachNotConfirmedError(
            f"breach {breach_id!r} is still suspected: no customer is notified until the DPO "
            f"confirms it (leakwatch breach confirm {breach_id})"
        )
    return record
