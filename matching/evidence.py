"""The evidence manifest of a breach: one record per acquired artifact or archive member, as canonical JSON.

Records come from the ``artifacts`` table in a fixed order (source, path inside, SHA-256,
artifact number), each record's keys sorted, timestamps in UTC with a ``Z``: two exports of
the same store are byte-identical except ``generated_at``, the moment the manifest was made
(kept inside the signed file on purpose: the signature then attests when it was issued).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.errors import InputError
from matching.sql import Statement
from matching.store import Store

__all__ = ["MANIFEST_FORMAT", "evidence_records", "manifest_bytes"]

MANIFEST_FORMAT = "leakwatch-evidence/1"

_BREACH_EXISTS = Statement(
    "breach exists", "SELECT count(*) FROM breaches WHERE breach_id = $breach_id"
)
_EVIDENCE = Statement(
    "evidence records of a breach",
    """
    SELECT artifact_no, source, inner_path, sha256, size, media_type, acquired_at, telegram,
        state, error, parser, rows_read, rows_rejected, finished_at
    FROM artifacts WHERE breach_id = $breach_id
    ORDER BY source, coalesce(inner_path, ''), sha256, artifact_no
    """,
)


def _utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _source_kind(source: str, telegram: Mapping[str, Any] | None) -> str:
    if telegram:
        return "telegram"
    if source.startswith(("http://", "https://")):
        return "url"
    return "file"


def evidence_records(store: Store, breach_id: str) -> list[dict[str, Any]]:
    """Every artifact acquired for the breach, with its state and refusal reason."""
    if not store.scalar(_BREACH_EXISTS, {"breach_id": breach_id}):
        raise InputError("no such breach in the store", file=f"breach {breach_id}")
    records = []
    for row in store.rows(_EVIDENCE, {"breach_id": breach_id}):
        (
            number,
            source,
            inner_path,
            sha256,
            size,
            media_type,
            acquired_at,
            telegram_json,
            state,
            error,
            parser,
            rows_read,
            rows_rejected,
            finished_at,
        ) = row
        telegram = json.loads(telegram_json) if telegram_json else None
        records.append(
            {
                "artifact_no": int(number),
                "source": source,
                "source_kind": _source_kind(source, telegram),
                "inner_path": inner_path,
                "sha256": sha256 or None,  # '' for what acquisition refused: no content
                "size": int(size),
                "media_type": media_type,
                "acquired_at": _utc(acquired_at),
                "finished_at": _utc(finished_at),
                "parser": parser,
                "rows_read": int(rows_read),
                "rows_rejected": int(rows_rejected),
                "state": state,
                "refusal": error,
                "telegram": telegram,
            }
        )
    return records


def manifest_bytes(
    breach_id: str,
    records: list[dict[str, Any]],
    *,
    tool_version: str,
    generated_at: datetime,
) -> bytes:
    """The manifest as canonical UTF-8 JSON: sorted keys, two-space indent, final newline."""
    document = {
        "format": MANIFEST_FORMAT,
        "breach_id": breach_id,
        "generated_at": _utc(generated_at),
        "tool": {"name": "leakwatch", "version": tool_version},
        "artifact_count": len(records),
        "artifacts": records,
    }
    text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")
