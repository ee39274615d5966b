"""Pepper rotation: re-key customers and leaks under a new pepper, then drop every old-key hash.

Clear identifiers are never stored, so the new keys come from the customer file and the leaked
sources read again. They are staged in temporary tables; one transaction then swaps them in and
deletes every row hashed with an old key id. Nothing changes unless every stored customer and
every ingested artifact of every breach was re-keyed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import polars as pl

from core.errors import ConfigError
from matching.customer_filter import refresh_filter
from matching.customers import prepare_customer_batch
from matching.keyed_hash import Pepper
from matching.leaks import prepare_leak_batch
from matching.sql import Statement
from matching.store import Store
from schemas.vocab import Category

__all__ = [
    "ArtifactRef",
    "RotationReport",
    "artifacts_to_rekey",
    "begin_rotation",
    "commit_rotation",
    "key_ids_in_use",
    "last_customer_file",
    "stage_customers",
    "stage_leak_table",
    "stored_breaches",
]

_BREACHES = Statement(
    "breaches with ingested artifacts",
    "SELECT DISTINCT breach_id FROM artifacts WHERE state = 'done' ORDER BY breach_id",
)
_KEY_IDS = Statement(
    "key ids in use",
    """
    SELECT key_id FROM customer_keys
    UNION SELECT a.key_id FROM artifacts a SEMI JOIN leak_keys k USING (artifact_no)
    UNION SELECT key_id FROM customers ORDER BY 1
    """,
)
_LAST_LOAD = Statement(
    "last customer file", "SELECT sha256 FROM customer_loads ORDER BY load_no DESC LIMIT 1"
)
_DONE_ARTIFACTS = Statement(
    "ingested artifacts of a breach",
    """
    SELECT artifact_no, sha256, coalesce(inner_path, ''), source FROM artifacts
    WHERE breach_id = $breach_id AND state = 'done' ORDER BY artifact_no
    """,
)
_TABLE_ROLES = Statement(
    "roles of an artifact's tables",
    "SELECT table_no, roles FROM leak_tables WHERE artifact_no = $no ORDER BY table_no",
)
_BEGIN = Statement(
    "stage a rotation",
    """
    CREATE OR REPLACE TEMP TABLE rot_customers (row BIGINT, customer_id VARCHAR, fingerprint BLOB);
    CREATE OR REPLACE TEMP TABLE rot_customer_keys (row BIGINT, kind key_kind, k1 UBIGINT,
        k2 UBIGINT);
    CREATE OR REPLACE TEMP TABLE rot_leak_keys (artifact_no INTEGER, table_no INTEGER, row UBIGINT,
        kind key_kind, k1 UBIGINT, k2 UBIGINT, categories USMALLINT);
    """,
)
_STAGE_CUSTOMERS = Statement(
    "stage re-keyed customers",
    """
    INSERT INTO rot_customers SELECT row, customer_id, fingerprint FROM batch_customers;
    INSERT INTO rot_customer_keys SELECT row, kind, k1, k2 FROM batch_keys;
    """,
)
_STAGE_LEAK = Statement(
    "stage re-keyed leak keys",
    """
    INSERT INTO rot_leak_keys
        SELECT $no, $table_no, row, kind, k1, k2, categories FROM batch_keys
    """,
)
# The loader keeps the first row of a duplicated customer_id: so does the rotation.
_FIRST_ROWS = Statement(
    "first row of each staged customer",
    """
    CREATE OR REPLACE TEMP TABLE rot_first AS
        SELECT customer_id, min(row) AS row FROM rot_customers GROUP BY customer_id
    """,
)
_MISSING_CUSTOMERS = Statement(
    "stored customers missing from the file",
    "SELECT count(*) FROM customers ANTI JOIN rot_first USING (customer_id)",
)
_COUNTS = Statement(
    "old and new key counts",
    """
    SELECT (SELECT count(*) FROM customer_keys),
           (SELECT count(*) FROM rot_customer_keys k JOIN rot_first f USING (row)
                SEMI JOIN customers c USING (customer_id)),
           (SELECT count(*) FROM leak_keys l SEMI JOIN artifacts a
                ON a.artifact_no = l.artifact_no AND a.state = 'done'),
           (SELECT count(*) FROM rot_leak_keys)
    """,
)
_CUSTOMERS = Statement("count customers", "SELECT count(*) FROM customers")
# Customers keep their numbers: only their fingerprint and key id change.
_SWAP = Statement(
    "swap in the new keys and delete every old-key hash",
    """
    UPDATE customers SET fingerprint = r.fingerprint, key_id = $key_id
        FROM rot_customers r JOIN rot_first f USING (customer_id, row)
        WHERE customers.customer_id = r.customer_id;
    DELETE FROM customer_keys;
    INSERT INTO customer_keys
        SELECT c.customer_no, k.kind, k.k1, k.k2, $key_id FROM rot_customer_keys k
        JOIN rot_first f USING (row) JOIN customers c USING (customer_id);
    DELETE FROM leak_keys;
    INSERT INTO leak_keys
        SELECT artifact_no, table_no, row, kind, k1, k2, categories,
               k1 IN (SELECT k1 FROM customer_keys)
        FROM rot_leak_keys;
    UPDATE artifacts SET key_id = $key_id WHERE key_id IS NOT NULL;
    DROP TABLE rot_customers;
    DROP TABLE rot_customer_keys;
    DROP TABLE rot_leak_keys;
    DROP TABLE rot_first;
    """,
)

_HINTED_BY = Statement(
    "name the filter the re-keyed leak keys were hinted against",
    "UPDATE artifacts SET hint_keys = $keys, hint_xor = $key_xor WHERE key_id IS NOT NULL",
)


@dataclass(frozen=True)
class ArtifactRef:
    """An ingested artifact to re-key, found again by its content and place in its archive."""

    artifact_no: int
    sha256: str
    inner_path: str
    source: str


@dataclass(frozen=True)
class RotationReport:
    new_key_id: str
    customers: int
    customer_keys: int
    leak_keys: int
    artifacts: int


def stored_breaches(store: Store) -> list[str]:
    return [str(r[0]) for r in store.rows(_BREACHES)]


def key_ids_in_use(store: Store) -> list[str]:
    return [str(r[0]) for r in store.rows(_KEY_IDS)]


def last_customer_file(store: Store) -> str | None:
    """SHA-256 of the customer file loaded last, or None when none was."""
    value = store.scalar(_LAST_LOAD)
    return str(value) if value is not None else None


def artifacts_to_rekey(store: Store, breach_id: str) -> list[ArtifactRef]:
    return [
        ArtifactRef(int(no), str(sha), str(inner), str(src))
        for no, sha, inner, src in store.rows(_DONE_ARTIFACTS, {"breach_id": breach_id})
    ]


def table_roles(store: Store, artifact_no: int) -> dict[int, dict[str, Category | None]]:
    """The column roles each table was ingested with (overrides included), by table number."""
    out: dict[int, dict[str, Category | None]] = {}
    for table_no, roles in store.rows(_TABLE_ROLES, {"no": artifact_no}):
        decoded = json.loads(roles) if isinstance(roles, str) else roles
        out[int(table_no)] = {
            column: Category(info["category"]) if info.get("category") else None
            for column, info in decoded.items()
        }
    return out


def begin_rotation(store: Store, new_pepper: Pepper) -> None:
    """Refuse a key id already used, then create the staging tables."""
    if new_pepper.key_id in key_ids_in_use(store):
        raise ConfigError(f"key id {new_pepper.key_id!r} is already in the store: choose a new one")
    store.run(_BEGIN)


def stage_customers(
    store: Store, batches: Iterable[pl.DataFrame], new_pepper: Pepper, *, default_region: str
) -> int:
    rows = 0
    for batch in batches:
        prepared = prepare_customer_batch(batch, new_pepper, default_region=default_region)
        rows += prepared.customers.height
        with (
            store.registered("batch_customers", prepared.customers),
            store.registered("batch_keys", prepared.keys),
        ):
            store.run(_STAGE_CUSTOMERS)
    return rows


def stage_leak_table(
    store: Store,
    artifact_no: int,
    table_no: int,
    batches: Iterable[pl.DataFrame],
    roles: Mapping[str, Category | None],
    new_pepper: Pepper,
    *,
    default_region: str,
) -> int:
    keys = 0
    for batch in batches:
        _, key_frame, _ = prepare_leak_batch(
            batch, roles, new_pepper, default_region=default_region
        )
        keys += key_frame.height
        with store.registered("batch_keys", key_frame):
            store.run(_STAGE_LEAK, {"no": artifact_no, "table_no": table_no})
    return keys


def commit_rotation(
    store: Store, new_pepper: Pepper, *, expected: Iterable[ArtifactRef], rekeyed: set[int]
) -> RotationReport:
    """Check that everything was re-keyed, then swap keys in one transaction; else change nothing."""
    expected = list(expected)
    missing = [a for a in expected if a.artifact_no not in rekeyed]
    if missing:
        names = "; ".join(
            f"{a.source}{'!' + a.inner_path if a.inner_path else ''}" for a in missing
        )
        raise ConfigError(
            f"{len(missing)} ingested file(s) were not found in the sources given: {names}. "
            "Give every source of every breach; nothing was changed"
        )
    store.run(_FIRST_ROWS)
    absent = int(store.scalar(_MISSING_CUSTOMERS))
    if absent:
        raise ConfigError(
            f"{absent} stored customer(s) are not in the customer file given: give the full "
            "customer base; nothing was changed"
        )
    old_customer_keys, new_customer_keys, old_leak_keys, new_leak_keys = store.rows(_COUNTS)[0]
    if (old_customer_keys, old_leak_keys) != (new_customer_keys, new_leak_keys):
        raise ConfigError(
            "re-keying did not reproduce the stored keys one for one (customer keys "
            f"{old_customer_keys} -> {new_customer_keys}, leak keys {old_leak_keys} -> "
            f"{new_leak_keys}): were the files changed since they were loaded? nothing was changed"
        )
    customers = int(store.scalar(_CUSTOMERS))
    with store.transaction():
        store.run(_SWAP, {"key_id": new_pepper.key_id})
        # New keys, a new filter. Each re-keyed leak key's hint says whether it is among the
        # new customer keys, which is what a hit on their filter promises (and exact).
        built = refresh_filter(store)
        store.run(_HINTED_BY, {"keys": built.id.keys, "key_xor": built.id.key_xor})
    return RotationReport(
        new_key_id=new_pepper.key_id,
        customers=customers,
        customer_keys=int(new_customer_keys),
        leak_keys=int(new_leak_keys),
        artifacts=len(expected),
    )
