"""Storing leaked tables: per row a category mask, per valid identifier a keyed hash, per refusal a reason."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import polars as pl

from core import crash
from matching.customer_filter import CustomerFilter
from matching.identity import normalise
from matching.keyed_hash import KIND_DTYPE, Pepper, hash_keys
from matching.sql import Statement
from matching.store import Store
from schemas.vocab import CATEGORY_BITS, Category, KeyKind

__all__ = [
    "ArtifactFacts",
    "NormalisedBatch",
    "TableCounts",
    "begin_artifact",
    "begin_unhashed",
    "ensure_breach",
    "fail_artifact",
    "finish_artifact",
    "hash_batch",
    "ingest_batches",
    "ingest_normalised",
    "may_hold",
    "normalise_leak_batch",
    "record_refusal",
    "record_table",
]

ROW = "__row"
_KEY_CATEGORIES: dict[Category, KeyKind] = {
    Category.EMAIL: KeyKind.EMAIL,
    Category.IBAN: KeyKind.IBAN,
    Category.PHONE: KeyKind.PHONE,
}


@dataclass(frozen=True)
class ArtifactFacts:
    """What the store keeps about an acquired artifact (the evidence record's core)."""

    breach_id: str
    source: str
    sha256: str
    size: int
    media_type: str
    acquired_at: datetime
    inner_path: str | None = None
    telegram: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class TableCounts:
    rows: int
    keys: int
    values_rejected: int


_ENSURE_BREACH = Statement(
    "ensure breach",
    """
    INSERT INTO breaches (breach_id, created_at, status, regime)
    VALUES ($breach_id, $now, 'suspected', $regime) ON CONFLICT DO NOTHING
    """,
)
_FIND_ARTIFACT = Statement(
    "find artifact",
    """
    SELECT artifact_no, state FROM artifacts
    WHERE breach_id = $breach_id AND sha256 = $sha256
      AND coalesce(inner_path, '') = coalesce($inner_path, '')
    ORDER BY artifact_no LIMIT 1
    """,
)
_DONE_SHA = Statement(
    "artifact content already ingested",
    "SELECT count(*) FROM artifacts WHERE breach_id = $breach_id AND sha256 = $sha256 "
    "AND state = 'done'",
)
_PURGE = Statement(
    "purge a partial artifact",
    """
    DELETE FROM leak_keys WHERE artifact_no = $no;
    DELETE FROM leak_row_counts WHERE artifact_no = $no;
    DELETE FROM rejects WHERE artifact_no = $no;
    DELETE FROM leak_tables WHERE artifact_no = $no;
    UPDATE artifacts SET state = 'ingesting', error = NULL, rows_read = 0, rows_rejected = 0,
        acquired_at = $acquired_at WHERE artifact_no = $no;
    """,
)
_SAME_SIZE = Statement(
    "hashed artifacts of the same size",
    "SELECT count(*) FROM artifacts WHERE breach_id = $breach_id AND size = $size AND sha256 <> ''",
)
_FIND_UNHASHED = Statement(
    "find an artifact left unhashed",
    """
    SELECT artifact_no FROM artifacts
    WHERE breach_id = $breach_id AND state = 'ingesting' AND sha256 = '' AND source = $source
      AND coalesce(inner_path, '') = coalesce($inner_path, '')
    ORDER BY artifact_no LIMIT 1
    """,
)
_REACQUIRED = Statement(
    "record what a re-acquired artifact is",
    "UPDATE artifacts SET size = $size, media_type = $media_type WHERE artifact_no = $no",
)
_SHA = Statement(
    "record an artifact's SHA-256",
    "UPDATE artifacts SET sha256 = $sha256 WHERE artifact_no = $no",
)
_NEW_ARTIFACT = Statement(
    "record artifact",
    """
    INSERT INTO artifacts (artifact_no, breach_id, source, inner_path, sha256, size, media_type,
        acquired_at, telegram, state)
    VALUES (nextval('artifact_seq'), $breach_id, $source, $inner_path, $sha256, $size,
        $media_type, $acquired_at, $telegram, 'ingesting')
    RETURNING artifact_no
    """,
)
_INSERT_BATCH = Statement(
    "store a leaked batch",
    """
    INSERT INTO leak_keys
        SELECT $no, $table_no, row, kind, k1, k2, categories, customer_hint FROM batch_keys;
    INSERT INTO leak_row_counts SELECT $no, $table_no, categories, count(*)
        FROM batch_rows GROUP BY categories;
    INSERT INTO rejects SELECT $no, $table_no, row, "column", reason FROM batch_rejects;
    """,
)
_KEY_ID = Statement(
    "record the pepper's key id of an artifact",
    "UPDATE artifacts SET key_id = $key_id WHERE artifact_no = $no",
)
_HINTED_BY = Statement(
    "record the customer filter an artifact's keys were probed against",
    "UPDATE artifacts SET hint_keys = $hint_keys, hint_xor = $hint_xor WHERE artifact_no = $no",
)
_RECORD_TABLE = Statement(
    "record a leaked table",
    """
    INSERT INTO leak_tables VALUES ($no, $table_no, $name, $parser, $encoding, $has_header,
        $roles, $rows_read, $rows_rejected)
    """,
)
_RECORD_ROW_REJECTS = Statement(
    "record refused records",
    'INSERT INTO rejects SELECT $no, $table_no, row, "column", reason FROM record_rejects',
)
_FINISH = Statement(
    "finish artifact",
    """
    UPDATE artifacts SET state = 'done', parser = $parser, rows_read = $rows_read,
        rows_rejected = $rows_rejected, finished_at = $now WHERE artifact_no = $no
    """,
)
_FAIL = Statement(
    "fail artifact",
    """
    UPDATE artifacts SET state = 'failed', error = $error, parser = $parser, finished_at = $now
    WHERE artifact_no = $no
    """,
)
_FAILED_REJECT = Statement(
    "record a refused artifact",
    "INSERT INTO rejects VALUES ($no, NULL, NULL, NULL, $error)",
)


def ensure_breach(store: Store, breach_id: str, *, regime: str) -> None:
    store.run(_ENSURE_BREACH, {"breach_id": breach_id, "now": datetime.now(UTC), "regime": regime})


def _new_artifact(store: Store, facts: ArtifactFacts) -> int:
    return int(
        store.scalar(
            _NEW_ARTIFACT,
            {
                "breach_id": facts.breach_id,
                "sha256": facts.sha256,
                "source": facts.source,
                "inner_path": facts.inner_path,
                "size": facts.size,
                "media_type": facts.media_type,
                "acquired_at": facts.acquired_at,
                "telegram": json.dumps(facts.telegram) if facts.telegram else None,
            },
        )
    )


def begin_artifact(store: Store, facts: ArtifactFacts) -> int | None:
    """The artifact number to ingest into, or None when the same content is already in the breach.

    An artifact left half-ingested by a crash is purged and ingested again under its number.
    """
    params = {"breach_id": facts.breach_id, "sha256": facts.sha256}
    if store.scalar(_DONE_SHA, params):
        return None
    with store.transaction():
        found = store.rows(_FIND_ARTIFACT, {**params, "inner_path": facts.inner_path})
        if found:
            number = int(found[0][0])
            store.run(_PURGE, {"no": number, "acquired_at": facts.acquired_at})
            return number
        return _new_artifact(store, facts)


def may_hold(store: Store, breach_id: str, size: int) -> bool:
    """Whether the breach has a hashed artifact of this size: one that may hold the same bytes.

    Content of a size never seen cannot be a known artifact's, so it can be ingested while it
    is still being hashed (``begin_unhashed``).
    """
    return bool(store.scalar(_SAME_SIZE, {"breach_id": breach_id, "size": size}))


def begin_unhashed(store: Store, facts: ArtifactFacts) -> int:
    """The artifact number to ingest into before its SHA-256 is known (recorded as '').

    Only for content ``may_hold`` says no artifact of the breach can hold: the same bytes come
    again with the same size, find this one hashed (one writer at a time), and are skipped or
    re-ingested by ``begin_artifact``. One left half-ingested by a crash (same source, still
    '') is purged and ingested again under its number. ``finish_artifact`` or
    ``fail_artifact`` record the SHA-256 once known.
    """
    params = {"breach_id": facts.breach_id, "source": facts.source, "inner_path": facts.inner_path}
    with store.transaction():
        found = store.rows(_FIND_UNHASHED, params)
        if found:
            number = int(found[0][0])
            store.run(_PURGE, {"no": number, "acquired_at": facts.acquired_at})
            store.run(
                _REACQUIRED, {"no": number, "size": facts.size, "media_type": facts.media_type}
            )
            return number
        return _new_artifact(store, replace(facts, sha256=""))


def _nonempty(columns: Sequence[str]) -> pl.Expr:
    # "Something left after strip_chars()": Rust's \s is the White_Space property that
    # strip_chars() removes, and the search stops at the first other character without
    # allocating a stripped copy of every value.
    return pl.any_horizontal(pl.col(c).str.contains(r"\S") for c in columns)


def category_mask(columns_by_category: Mapping[Category, Sequence[str]]) -> pl.Expr:
    """The row's category bit mask: a category is present when any of its columns is non-empty."""
    terms = [
        pl.when(_nonempty(cols)).then(CATEGORY_BITS[cat]).otherwise(0)
        for cat, cols in columns_by_category.items()
        if cols
    ]
    if not terms:
        return pl.lit(0, dtype=pl.UInt16)
    return pl.sum_horizontal(terms).cast(pl.UInt16)


KEY_FRAME_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.UInt64(),
    "kind": KIND_DTYPE,
    "k1": pl.UInt64(),
    "k2": pl.UInt64(),
    "categories": pl.UInt16(),
}


@dataclass(frozen=True)
class NormalisedBatch:
    """One batch before hashing: what a parser's rows hold, with clear values still in memory.

    ``rows``: row (UInt64), categories (UInt16), one per record kept. ``canonical``: row, kind
    (``KIND_DTYPE``, an Enum), canonical (String), categories, one per valid identifier. ``rejects``: row,
    column, reason, one per refused value. The native scanner (matching.fastscan) produces
    these directly; ``normalise_leak_batch`` produces them from an all-string frame.

    ``keys`` (``KEY_FRAME_SCHEMA``) holds identifiers already hashed where they were decided
    (the native scanner hashes its own), under the pepper named by ``keys_key_id``;
    ``hash_batch`` adds them to the keys of ``canonical``.
    """

    rows: pl.DataFrame
    canonical: pl.DataFrame
    rejects: pl.DataFrame
    keys: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=KEY_FRAME_SCHEMA))
    keys_key_id: str | None = None


CANONICAL_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.UInt64(),
    "kind": KIND_DTYPE,
    "canonical": pl.String(),
    "categories": pl.UInt16(),
}
REJECT_SCHEMA = {"row": pl.UInt64, "column": pl.String, "reason": pl.String}


def normalise_leak_batch(
    batch: pl.DataFrame,
    roles: Mapping[str, Category | None],
    *,
    default_region: str = "FR",
) -> NormalisedBatch:
    """Category masks, canonical identifiers and value refusals of one all-string batch."""
    by_category: dict[Category, list[str]] = {}
    for column, category in roles.items():
        if category is not None and column in batch.columns:
            by_category.setdefault(category, []).append(column)
    rows = batch.select(pl.col(ROW).alias("row"), category_mask(by_category).alias("categories"))
    canon_parts: list[pl.DataFrame] = []
    reject_parts: list[pl.DataFrame] = []
    for category, kind in _KEY_CATEGORIES.items():
        for column in by_category.get(category, []):
            result = normalise(kind, batch[column], default_region)
            canon_parts.append(
                rows.with_columns(
                    canonical=result["canonical"], kind=pl.lit(kind.value, dtype=KIND_DTYPE)
                )
                .filter(pl.col("canonical").is_not_null())
                .select("row", "kind", "canonical", "categories")
            )
            reject_parts.append(
                rows.select("row")
                .with_columns(reason=result["reason"], column=pl.lit(column))
                .filter(pl.col("reason").is_not_null())
                .select("row", "column", "reason")
            )
    canonical = pl.concat(canon_parts) if canon_parts else pl.DataFrame(schema=CANONICAL_SCHEMA)
    rejects = pl.concat(reject_parts) if reject_parts else pl.DataFrame(schema=REJECT_SCHEMA)
    return NormalisedBatch(rows, canonical, rejects)


def hash_batch(normalised: NormalisedBatch, pepper: Pepper) -> pl.DataFrame:
    """The batch's keys: row, kind, k1, k2, categories; the clear canonical values are dropped.

    ``kind`` is a polars Enum in key_kind's order, which DuckDB stores without a string lookup.
    """
    canonical = normalised.canonical
    parts = []
    if normalised.keys.height:
        if normalised.keys_key_id != pepper.key_id:
            raise ValueError("a batch's keys were hashed under another pepper than this one")
        parts.append(normalised.keys)
    for kind in _KEY_CATEGORIES.values():
        part = canonical.filter(pl.col("kind") == kind.value)
        if part.height:
            parts.append(
                pl.concat(
                    [
                        part.select("row", "kind"),
                        hash_keys(pepper, kind, part["canonical"]),
                        part.select("categories"),
                    ],
                    how="horizontal",
                )
            )
    if not parts:
        return pl.DataFrame(schema=KEY_FRAME_SCHEMA)
    return pl.concat(parts)


def prepare_leak_batch(
    batch: pl.DataFrame,
    roles: Mapping[str, Category | None],
    pepper: Pepper,
    *,
    default_region: str = "FR",
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(rows with their mask, keys, value rejects) for one batch. Clear values never leave memory."""
    normalised = normalise_leak_batch(batch, roles, default_region=default_region)
    return normalised.rows, hash_batch(normalised, pepper), normalised.rejects


def ingest_batches(
    store: Store,
    artifact_no: int,
    table_no: int,
    batches: Iterable[pl.DataFrame],
    roles: Mapping[str, Category | None],
    pepper: Pepper,
    *,
    default_region: str = "FR",
    customer_filter: Future[CustomerFilter | None] | None = None,
) -> TableCounts:
    """Normalise, hash and store every all-string batch, each in its own transaction."""
    return ingest_normalised(
        store,
        artifact_no,
        table_no,
        (normalise_leak_batch(b, roles, default_region=default_region) for b in batches),
        pepper,
        customer_filter,
    )


def ingest_normalised(
    store: Store,
    artifact_no: int,
    table_no: int,
    batches: Iterable[NormalisedBatch],
    pepper: Pepper,
    customer_filter: Future[CustomerFilter | None] | None = None,
) -> TableCounts:
    """Hash and store every normalised batch, each in its own transaction.

    One writer thread stores batch N while this thread reads, normalises and hashes batch N+1
    (DuckDB and polars release the GIL); one batch in flight keeps memory bounded. A failure
    on either side stops the loop once the batch in flight is committed or refused.
    ``customer_filter`` (awaited when the first batch is stored): each key is stored with
    whether it hits the filter, and the artifact with the filter's id, once all its keys are
    (``matching.customer_filter``); without one, neither (NULL).
    """
    rows = keys = values_rejected = 0
    store.run(_KEY_ID, {"no": artifact_no, "key_id": pepper.key_id})

    def hints() -> CustomerFilter | None:
        return customer_filter.result() if customer_filter is not None else None

    def write(normalised: NormalisedBatch, key_frame: pl.DataFrame) -> None:
        probe = hints()
        key_frame = key_frame.with_columns(
            pl.Series("customer_hint", probe.probe(key_frame["k1"].to_numpy()), dtype=pl.Boolean)
            if probe is not None
            else pl.lit(None, pl.Boolean).alias("customer_hint")
        )
        with (
            store.transaction(),
            store.registered("batch_rows", normalised.rows),
            store.registered("batch_keys", key_frame),
            store.registered("batch_rejects", normalised.rejects),
        ):
            store.run(_INSERT_BATCH, {"no": artifact_no, "table_no": table_no})
        crash.point("ingest-mid-batch-commit")  # between two batch transactions

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="leakwatch-store") as writer:
        in_flight: Future[None] | None = None
        for normalised in batches:
            key_frame = hash_batch(normalised, pepper)
            if in_flight is not None:
                in_flight.result()
            in_flight = writer.submit(write, normalised, key_frame)
            rows += normalised.rows.height
            keys += key_frame.height
            values_rejected += normalised.rejects.height
        if in_flight is not None:
            in_flight.result()
    probed = hints()
    store.run(
        _HINTED_BY,
        {
            "no": artifact_no,
            "hint_keys": probed.id.keys if probed is not None else None,
            "hint_xor": probed.id.key_xor if probed is not None else None,
        },
    )
    return TableCounts(rows=rows, keys=keys, values_rejected=values_rejected)


def record_table(
    store: Store,
    artifact_no: int,
    table_no: int,
    *,
    name: str,
    parser: str,
    encoding: str | None,
    has_header: bool,
    roles: Mapping[str, Mapping[str, Any]],
    rows_read: int,
    record_rejects: pl.DataFrame,
) -> None:
    """Keep how a table was read and which records were refused (row, column, reason)."""
    with store.transaction(), store.registered("record_rejects", record_rejects):
        store.run(
            _RECORD_TABLE,
            {
                "no": artifact_no,
                "table_no": table_no,
                "name": name,
                "parser": parser,
                "encoding": encoding,
                "has_header": has_header,
                "roles": json.dumps(roles),
                "rows_read": rows_read,
                "rows_rejected": record_rejects.height,
            },
        )
        store.run(_RECORD_ROW_REJECTS, {"no": artifact_no, "table_no": table_no})


def finish_artifact(
    store: Store,
    artifact_no: int,
    *,
    parser: str,
    rows_read: int,
    rows_rejected: int,
    sha256: str | None = None,
) -> None:
    """Mark an artifact done; ``sha256``: its digest, if it began unhashed."""
    with store.transaction():
        if sha256 is not None:
            store.run(_SHA, {"no": artifact_no, "sha256": sha256})
        store.run(
            _FINISH,
            {
                "no": artifact_no,
                "parser": parser,
                "rows_read": rows_read,
                "rows_rejected": rows_rejected,
                "now": datetime.now(UTC),
            },
        )


def record_refusal(
    store: Store, breach_id: str, source: str, inner_path: str | None, reason: str
) -> int:
    """Keep something acquisition refused (a hostile archive member, an unreadable archive...):
    a failed artifact with no content (sha256 '', size 0) and its reason in the rejects."""
    with store.transaction():
        number = int(
            store.scalar(
                _NEW_ARTIFACT,
                {
                    "breach_id": breach_id,
                    "sha256": "",
                    "source": source,
                    "inner_path": inner_path,
                    "size": 0,
                    "media_type": "application/octet-stream",
                    "acquired_at": datetime.now(UTC),
                    "telegram": None,
                },
            )
        )
        store.run(_FAIL, {"no": number, "error": reason, "parser": None, "now": datetime.now(UTC)})
        store.run(_FAILED_REJECT, {"no": number, "error": reason})
    return number


def fail_artifact(
    store: Store, artifact_no: int, *, error: str, parser: str | None, sha256: str | None = None
) -> None:
    """Mark an artifact refused; the reason (never a value) goes to the rejects too."""
    with store.transaction():
        if sha256 is not None:
            store.run(_SHA, {"no": artifact_no, "sha256": sha256})
        store.run(
            _FAIL, {"no": artifact_no, "error": error, "parser": parser, "now": datetime.now(UTC)}
        )
        store.run(_FAILED_REJECT, {"no": artifact_no, "error": error})
