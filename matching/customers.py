"""Loading the customer base: validate, normalise, hash, and merge into the store idempotently."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from matching.customer_filter import refresh_filter
from matching.identity import normalise
from matching.keyed_hash import KIND_DTYPE, Pepper, hash_keys, hmac_batch
from matching.sql import Statement
from matching.store import Store
from schemas.vocab import KeyKind

__all__ = ["CustomerLoadReport", "load_customers", "prepare_customer_batch"]

ROW = "__row"
REASON_NO_ID = "missing customer_id"
REASON_DUPLICATE_ID = "duplicate customer_id (first occurrence kept)"
REASON_LANGUAGE = "unknown language (French used)"
REASON_STATUS = "unknown status (active used)"
REASON_CONTRACT_END = "unreadable contract_end date"

_KEY_COLUMNS: tuple[tuple[str, KeyKind], ...] = (
    ("email", KeyKind.EMAIL),
    ("phone", KeyKind.PHONE),
    ("iban", KeyKind.IBAN),
)


@dataclass(frozen=True)
class CustomerLoadReport:
    file: str
    rows_read: int
    rows_rejected: int
    values_rejected: int
    inserted: int
    updated: int
    unchanged: int
    rejects_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedCustomers:
    """One batch, ready for the store: contact rows, keys, and value/row rejects (where, why)."""

    customers: pl.DataFrame
    keys: pl.DataFrame
    rejects: pl.DataFrame


def _clean(col: str) -> pl.Expr:
    text = pl.col(col).str.strip_chars()
    return pl.when(text.str.len_bytes() > 0).then(text).otherwise(None)


def _iban_hint(iban: pl.Series) -> pl.Series:
    """Vectorised ``core.redact.mask_iban`` of canonical IBANs."""
    return pl.select(
        pl.concat_str([iban.str.slice(0, 2), pl.lit("•• •••• "), iban.str.slice(-4)])
    ).to_series()


def _phone_hint(phone: pl.Series) -> pl.Series:
    """Vectorised ``core.redact.mask_phone`` of E.164 numbers."""
    return pl.select(pl.concat_str([pl.lit("•• •• •• •• "), phone.str.slice(-2)])).to_series()


def prepare_customer_batch(
    batch: pl.DataFrame, pepper: Pepper, *, default_region: str = "FR"
) -> PreparedCustomers:
    """Validate and normalise one batch of the customer file; clear phone and IBAN stay in memory."""
    frame = batch.with_columns(
        _clean(c) for c in batch.columns if c != ROW and batch.schema[c] == pl.String
    )
    reject_parts: list[pl.DataFrame] = []

    def rejects(mask: pl.Expr, column: str | None, reason: str) -> None:
        part = frame.filter(mask).select(
            pl.col(ROW).cast(pl.Int64).alias("row"),
            pl.lit(column, dtype=pl.String).alias("column"),
            pl.lit(reason).alias("reason"),
        )
        if part.height:
            reject_parts.append(part)

    rejects(pl.col("customer_id").is_null(), "customer_id", REASON_NO_ID)
    frame = frame.filter(pl.col("customer_id").is_not_null())

    canon: dict[KeyKind, pl.Series] = {}
    for column, kind in _KEY_COLUMNS:
        result = normalise(kind, frame[column], default_region)
        canon[kind] = result["canonical"]
        reasons = result["reason"]
        bad = (
            frame.select(ROW)
            .with_columns(reasons.alias("reason"))
            .filter(pl.col("reason").is_not_null())
        )
        if bad.height:
            reject_parts.append(
                bad.select(
                    pl.col(ROW).cast(pl.Int64).alias("row"),
                    pl.lit(column, dtype=pl.String).alias("column"),
                    pl.col("reason"),
                )
            )

    language = pl.col("language").str.to_lowercase()
    rejects(language.is_not_null() & ~language.is_in(["fr", "en"]), "language", REASON_LANGUAGE)
    status = pl.col("status").str.to_lowercase()
    rejects(status.is_not_null() & ~status.is_in(["active", "former"]), "status", REASON_STATUS)
    contract_end = pl.col("contract_end").str.to_date("%Y-%m-%d", strict=False)
    rejects(
        pl.col("contract_end").is_not_null() & contract_end.is_null(),
        "contract_end",
        REASON_CONTRACT_END,
    )

    iban = canon[KeyKind.IBAN]
    phone = canon[KeyKind.PHONE]
    contact = frame.select(
        pl.col(ROW).cast(pl.Int64).alias("row"),
        "customer_id",
        canon[KeyKind.EMAIL].alias("email"),
        "first_name",
        "last_name",
        pl.when(language.is_in(["fr", "en"]))
        .then(language)
        .otherwise(pl.lit("fr"))
        .alias("language"),
        pl.when(status.is_in(["active", "former"]))
        .then(status)
        .otherwise(pl.lit("active"))
        .alias("status"),
        contract_end.alias("contract_end"),
        _iban_hint(iban).alias("iban_hint"),
        _phone_hint(phone).alias("phone_hint"),
    )
    # The fingerprint covers everything a reload could change, identifiers included, keyed
    # so that it reveals nothing about them.
    parts = ["customer_id", "email", "first_name", "last_name", "language", "status"]
    signature = contact.select(
        pl.concat_str(
            [pl.col(c).fill_null("") for c in parts]
            + [
                pl.col("contract_end").cast(pl.String).fill_null(""),
                pl.lit(phone).fill_null(""),
                pl.lit(iban).fill_null(""),
            ],
            separator="\x1f",
        )
    ).to_series()
    contact = contact.with_columns(
        hmac_batch(pepper, b"customer-row:", signature).alias("fingerprint")
    )

    key_parts = []
    ids = frame.select(pl.col(ROW).cast(pl.Int64).alias("row"), "customer_id")
    for kind in KeyKind:
        part = pl.concat(
            [
                ids.with_columns(kind=pl.lit(kind.value, dtype=KIND_DTYPE)),
                hash_keys(pepper, kind, canon[kind]),
            ],
            how="horizontal",
        ).filter(pl.col("k1").is_not_null())
        key_parts.append(part)
    reject_frame = (
        pl.concat(reject_parts)
        if reject_parts
        else pl.DataFrame(schema={"row": pl.Int64, "column": pl.String, "reason": pl.String})
    )
    return PreparedCustomers(contact, pl.concat(key_parts), reject_frame)


_STAGE = Statement(
    "stage customers",
    """
    CREATE OR REPLACE TEMP TABLE stage_customers (
        row BIGINT, customer_id VARCHAR, email VARCHAR, first_name VARCHAR, last_name VARCHAR,
        language VARCHAR, status VARCHAR, contract_end DATE, iban_hint VARCHAR,
        phone_hint VARCHAR, fingerprint BLOB);
    CREATE OR REPLACE TEMP TABLE stage_keys (row BIGINT, kind key_kind, k1 UBIGINT, k2 UBIGINT);
    CREATE OR REPLACE TEMP TABLE stage_rejects (row BIGINT, "column" VARCHAR, reason VARCHAR);
    """,
)
_STAGE_BATCH = Statement(
    "stage a customer batch",
    """
    INSERT INTO stage_customers SELECT row, customer_id, email, first_name, last_name, language,
        status, contract_end, iban_hint, phone_hint, fingerprint FROM batch_customers;
    INSERT INTO stage_keys SELECT row, kind, k1, k2 FROM batch_keys;
    INSERT INTO stage_rejects SELECT row, "column", reason FROM batch_rejects;
    """,
)
_DUPLICATES = Statement(
    "reject duplicate customer ids",
    """
    CREATE OR REPLACE TEMP TABLE stage_dups AS
        SELECT row, customer_id FROM (
            SELECT row, customer_id,
                   row_number() OVER (PARTITION BY customer_id ORDER BY row) AS nth
            FROM stage_customers) WHERE nth > 1;
    INSERT INTO stage_rejects SELECT row, 'customer_id', $reason FROM stage_dups;
    DELETE FROM stage_keys WHERE row IN (SELECT row FROM stage_dups);
    DELETE FROM stage_customers WHERE row IN (SELECT row FROM stage_dups);
    """,
)
# A stored customer keeps its number for good; new customers are numbered after the highest
# number in use, in file order, so the same file gives the same numbers in any store. Keys are
# written with the number (the link joins and groups on it) and found by it, not by the id.
_MERGE = Statement(
    "merge staged customers",
    """
    CREATE OR REPLACE TEMP TABLE stage_changes AS
        SELECT s.row, CASE WHEN c.customer_id IS NULL THEN 'insert' ELSE 'update' END AS change,
               coalesce(c.customer_no, (SELECT coalesce(max(customer_no), 0) FROM customers)
                   + row_number() OVER (PARTITION BY c.customer_id IS NULL ORDER BY s.row)
               )::UINTEGER AS customer_no
        FROM stage_customers s LEFT JOIN customers c USING (customer_id)
        WHERE c.customer_id IS NULL OR c.fingerprint <> s.fingerprint OR c.key_id <> $key_id;
    DELETE FROM customer_keys WHERE customer_no IN
        (SELECT customer_no FROM stage_changes WHERE change = 'update');
    DELETE FROM customers WHERE customer_no IN
        (SELECT customer_no FROM stage_changes WHERE change = 'update');
    INSERT INTO customers
        SELECT ch.customer_no, s.customer_id, email, first_name, last_name, language, status,
               contract_end, iban_hint, phone_hint, fingerprint, $key_id, $now
        FROM stage_customers s JOIN stage_changes ch USING (row);
    INSERT INTO customer_keys
        SELECT ch.customer_no, kind, k1, k2, $key_id
        FROM stage_keys k JOIN stage_changes ch USING (row);
    """,
)
_COUNTS = Statement(
    "count staged changes",
    """
    SELECT (SELECT count(*) FROM stage_changes WHERE change = 'insert'),
           (SELECT count(*) FROM stage_changes WHERE change = 'update'),
           (SELECT count(*) FROM stage_customers) - (SELECT count(*) FROM stage_changes),
           (SELECT count(DISTINCT row) FILTER (WHERE "column" = 'customer_id') FROM stage_rejects),
           (SELECT count(*) FILTER (WHERE "column" <> 'customer_id') FROM stage_rejects)
    """,
)
_RECORD_LOAD = Statement(
    "record a customer load",
    """
    INSERT INTO customer_loads VALUES (nextval('load_seq'), $file, $sha256, $rows_read,
        $rows_rejected, $inserted, $updated, $unchanged, $now) RETURNING load_no
    """,
)
_RECORD_REJECTS = Statement(
    "record customer rejects",
    'INSERT INTO customer_rejects SELECT $load_no, row, "column", reason FROM stage_rejects',
)
_REJECT_REASONS = Statement(
    "customer rejects by reason",
    "SELECT reason, count(*) FROM stage_rejects GROUP BY reason ORDER BY reason",
)


def load_customers(
    store: Store,
    batches: Iterable[pl.DataFrame],
    pepper: Pepper,
    *,
    file: str,
    sha256: str,
    default_region: str = "FR",
) -> CustomerLoadReport:
    """Stage every batch, then merge in one transaction: same file twice changes nothing."""
    now = datetime.now(UTC)
    rows_read = 0
    store.run(_STAGE)
    for batch in batches:
        rows_read += batch.height
        prepared = prepare_customer_batch(batch, pepper, default_region=default_region)
        with (
            store.registered("batch_customers", prepared.customers),
            store.registered("batch_keys", prepared.keys),
            store.registered("batch_rejects", prepared.rejects),
        ):
            store.run(_STAGE_BATCH)
    with store.transaction():
        store.run(_DUPLICATES, {"reason": REASON_DUPLICATE_ID})
        store.run(_MERGE, {"key_id": pepper.key_id, "now": now})
        refresh_filter(store)  # the customer keys changed: the filter leaks are probed against
        inserted, updated, unchanged, rows_rejected, values_rejected = store.rows(_COUNTS)[0]
        load_no = store.scalar(
            _RECORD_LOAD,
            {
                "file": file,
                "sha256": sha256,
                "rows_read": rows_read,
                "rows_rejected": rows_rejected,
                "inserted": inserted,
                "updated": updated,
                "unchanged": unchanged,
                "now": now,
            },
        )
        store.run(_RECORD_REJECTS, {"load_no": load_no})
        reasons = Counter({r: int(n) for r, n in store.rows(_REJECT_REASONS)})
    return CustomerLoadReport(
        file=file,
        rows_read=rows_read,
        rows_rejected=int(rows_rejected),
        values_rejected=int(values_rejected),
        inserted=int(inserted),
        updated=int(updated),
        unchanged=int(unchanged),
        rejects_by_reason=dict(reasons),
    )
