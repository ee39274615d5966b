"""Linking leak keys to customer keys, and the exposure of each customer, sharded by key hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import polars as pl

from core import crash
from matching.customer_filter import FilterId, current_id
from matching.risk import assess
from matching.sql import Statement
from matching.store import Store
from schemas.vocab import KeyKind, categories_from_mask

__all__ = [
    "COMBINE_PAIRS",
    "NARROW_ABOVE",
    "LinkReport",
    "Plan",
    "hinted_by",
    "kind_bit",
    "leaked_row",
    "link",
    "shard_of",
    "write_result",
]

_KIND_BITS = {KeyKind.EMAIL: 1, KeyKind.IBAN: 2, KeyKind.PHONE: 4}

# Joins and groups run on the customer's number (a UINTEGER, schema 7), and exposures are
# stored by number and shape (schema 8): the view `exposures` looks the customer_id up for
# its readers. Grouping the join rows by a VARCHAR id spilled past DuckDB's 2 GB cap at
# 20 M x 20 M (12.5 M join rows): 13.5-19 s for the query, against 10.2 s grouping by the
# number plus 1.1 s to look the ids up, which the link no longer does.
#
# The joins below compare (k1, k2) only, not the kind: the kind is inside the hashed message
# ("iban:FR76..."), so keys of two kinds are equal only if 128 bits of HMAC collide, the
# same odds every key comparison already accepts. A third join column cost about 40 % more
# join time (measured at 10 M x 10 M).


def leaked_row(table: str = "") -> str:
    """The number a leaked row is counted by (artifact, table, row), from leak key columns
    (``table``: their qualifier, such as ``"lk."``). The same in every path that counts rows."""
    return f"({table}artifact_no::UBIGINT << 48) | ({table}table_no::UBIGINT << 40) | {table}row"


def kind_bit(table: str = "") -> str:
    """A leak key's kind as its bit in ``kinds`` (``_KIND_BITS``), from its ``kind`` column
    (``table``: its qualifier). The same in the one-store link and the sharded match."""
    bits = list(_KIND_BITS.items())
    whens = " ".join(f"WHEN '{kind.value}' THEN {bit}" for kind, bit in bits[:-1])
    return f"CASE {table}kind {whens} ELSE {bits[-1][1]} END"  # the last kind: no comparison


def shard_of(k1: str = "k1") -> str:
    """A key's shard among ``$shards``, from its first word: its first two bytes (keyed hashes
    are uniform in every byte), the same in every process and version. The modulus is a
    UBIGINT: against an INTEGER parameter DuckDB widens the key to HUGEINT, and a one-store
    shard of the 20 M bench store took 12.3 s instead of 2.7 s (the 53 M customer keys' scan
    16.9 s of thread time instead of 0.9 s; the sharded export 6.6-6.9 s against 4.1-4.2 s)."""
    return f"(({k1} >> 48) % $shards::UBIGINT)::UINTEGER"


_BEGIN = Statement(
    "begin a link",
    """
    CREATE OR REPLACE TEMP TABLE breach_artifacts AS
        SELECT artifact_no FROM artifacts WHERE breach_id = $breach_id AND state = 'done';
    """,
)
# The plan, one of three, each giving the same exposures:
# - "hinted": every artifact of the breach with rows was ingested against one customer filter,
#   which still names the customer keys (matching/customer_filter.py; checked after the join,
#   which is then done again another way if not; an artifact without rows has no key, and no
#   hint recorded): only the leak keys that hit it are joined, about a third at 30 % overlap,
#   and the join builds on them. At 20 M x 20 M the link query took
#   5.3-6.2 s instead of 10-10.9 s for the narrowing and the join below.
# - "narrowed": above NARROW_ABOVE leak keys, the customer keys are first narrowed to those
#   whose first word occurs among the breach's leak keys: a semi-join whose hash table holds
#   the leak side's k1 only. The joins below then build on these (about a quarter of the
#   customer keys at 30 % overlap) instead of on every leak key with its payload, which spills
#   past DuckDB's 2 GB at 20 M x 20 M (40 M leak keys). The link query, measured twice each way
#   on the bench's stores: 20 M x 20 M 8.1-8.4 s narrowed against 8.5-9.1 s, and 2.1 GB of
#   peak RSS against 2.35; 10 M x 10 M (20 M leak keys, no spill) 3.2-3.4 s narrowed against
#   2.3-2.6 s, hence the threshold, for the default 2 GB memory limit.
# - "all": every leak key against every customer key.
NARROW_ABOVE = 30_000_000
Plan = Literal["hinted", "narrowed", "all"]
_LEAK_KEY_COUNT = Statement(
    "count the breach's leak keys",
    "SELECT count(*) FROM leak_keys WHERE artifact_no IN (SELECT artifact_no FROM breach_artifacts)",
)
_HINT_FILTERS = Statement(
    "the customer filters the breach's artifacts were probed against",
    """
    SELECT DISTINCT hint_keys, hint_xor FROM artifacts
    WHERE breach_id = $breach_id AND state = 'done' AND rows_read > 0
    """,
)
_NARROW = Statement(
    "narrow the customer keys to the breach",
    """
    CREATE OR REPLACE TEMP TABLE link_customer_keys AS
    SELECT k1, k2, customer_no FROM customer_keys
    WHERE k1 IN (SELECT k1 FROM leak_keys
                 WHERE artifact_no IN (SELECT artifact_no FROM breach_artifacts))
    """,
)
# One shard: keys whose hash falls in it, each giving its (customer, leaked row) pairs. A
# row matched through keys of two shards (its e-mail in one, its IBAN in another) is one
# pair again once combined, so the result does not depend on the shard count.
_PAIRS = Statement(
    "link pairs",
    """
    CREATE OR REPLACE TEMP TABLE link_pairs (
        customer_no UINTEGER, leaked_row UBIGINT, kinds UTINYINT, categories USMALLINT)
    """,
)
_LINK_SHARD = """
    INSERT INTO link_pairs
    SELECT ck.customer_no, {leaked_row} AS leaked_row,
           bit_or({kind_bit})::UTINYINT,
           bit_or(lk.categories)
    FROM leak_keys lk
    JOIN {customer_keys} ck ON ck.k1 = lk.k1 AND ck.k2 = lk.k2
    WHERE lk.artifact_no IN (SELECT artifact_no FROM breach_artifacts){hinted}
      AND {shard} = $shard
    GROUP BY ck.customer_no, leaked_row
"""
# Shards' pairs into one row per customer, from a table or the sharded match's files
# (matching/shards.py). Pairs rather than per-customer lists of rows: on the 20 M bench
# store, the sharded match's 4 shards joined in 5.2 s on two processes against 6.1-7.1 s,
# and combined in 1.4 s against 3.0 s.
COMBINE_PAIRS = """
    CREATE OR REPLACE TEMP TABLE link_result AS
    SELECT customer_no::UINTEGER AS customer_no, bit_or(kinds)::UTINYINT AS kinds,
           bit_or(categories)::USMALLINT AS categories, count(*) AS matched_rows
    FROM (
        SELECT customer_no, leaked_row, bit_or(kinds) AS kinds, bit_or(categories) AS categories
        FROM {pairs} GROUP BY customer_no, leaked_row
    )
    GROUP BY customer_no
"""
_COMBINE = Statement("combine link pairs", COMBINE_PAIRS.format(pairs="link_pairs"))
# One shard (the default): no pairs to keep and combine, so each customer's rows are counted
# as the join's groups are made. Grouping first by (customer, leaked row) and then counting
# those groups per customer gives count(DISTINCT row) for about 20 % less time than
# count(DISTINCT ...) itself (measured at 1 M x 1 M).
_LINK_SINGLE = """
    CREATE OR REPLACE TEMP TABLE link_result AS
    SELECT customer_no, bit_or(kinds)::UTINYINT AS kinds, bit_or(categories) AS categories,
           count(*) AS matched_rows
    FROM (
        SELECT ck.customer_no,
               {leaked_row} AS leaked_row,
               bit_or({kind_bit}) AS kinds,
               bit_or(lk.categories) AS categories
        FROM leak_keys lk
        JOIN {customer_keys} ck ON ck.k1 = lk.k1 AND ck.k2 = lk.k2
        WHERE lk.artifact_no IN (SELECT artifact_no FROM breach_artifacts){hinted}
        GROUP BY ck.customer_no, leaked_row
    )
    GROUP BY customer_no
"""
# Each join per plan: on the leak keys that hit the filter, on the narrowed customer keys, or
# on everything.
_HINTED = "\n          AND lk.customer_hint"


def _plan_links(customer_keys: str, hinted: str) -> tuple[Statement, Statement]:
    """A plan's two joins, one pass and one shard, from the same fragments (str.format leaves
    the fragments a template does not use alone)."""
    fragments = {
        "customer_keys": customer_keys,
        "hinted": hinted,
        "leaked_row": leaked_row("lk."),
        "kind_bit": kind_bit("lk."),
        "shard": shard_of("lk.k1"),
    }
    return (
        Statement("link in one pass", _LINK_SINGLE.format(**fragments)),
        Statement("link one shard", _LINK_SHARD.format(**fragments)),
    )


_LINKS = {
    plan: _plan_links(table, hinted)
    for plan, table, hinted in (
        ("hinted", "customer_keys", _HINTED),
        ("narrowed", "link_customer_keys", ""),
        ("all", "customer_keys", ""),
    )
}
_COMBOS = Statement(
    "distinct exposure shapes", "SELECT DISTINCT kinds, categories FROM link_result"
)
_WRITE = Statement(
    "write exposures",
    """
    DELETE FROM exposure_rows WHERE breach_id = $breach_id;
    DELETE FROM exposure_shapes WHERE breach_id = $breach_id;
    INSERT INTO exposure_shapes
    SELECT $breach_id, kinds, categories, matched_on, category_names, risk, reasons
    FROM decisions;
    INSERT INTO exposure_rows
    SELECT $breach_id, customer_no, kinds, categories, matched_rows, $now FROM link_result;
    DROP TABLE IF EXISTS link_pairs;
    DROP TABLE link_result;
    DROP TABLE IF EXISTS link_customer_keys;
    """,
)
_COUNT = Statement(
    "count exposures", "SELECT count(*) FROM exposure_rows WHERE breach_id = $breach_id"
)


@dataclass(frozen=True)
class LinkReport:
    breach_id: str
    exposed: int
    shards: int
    plan: Plan


def _decisions(combos: pl.DataFrame) -> pl.DataFrame:
    """Risk and labels for each distinct (kinds, categories) shape: a handful, decided in Python."""
    rows = []
    for kinds, mask in combos.iter_rows():
        matched = {k for k, bit in _KIND_BITS.items() if kinds & bit}
        cats = set(categories_from_mask(mask))
        decision = assess(matched, cats)
        rows.append(
            {
                "kinds": kinds,
                "categories": mask,
                "matched_on": ";".join(sorted(k.value for k in matched)),
                "category_names": ";".join(sorted(c.value for c in cats)),
                "risk": decision.risk.value,
                "reasons": "; ".join(decision.reasons),
            }
        )
    schema = {
        "kinds": pl.UInt8,
        "categories": pl.UInt16,
        "matched_on": pl.String,
        "category_names": pl.String,
        "risk": pl.String,
        "reasons": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def link(
    store: Store,
    breach_id: str,
    *,
    shards: int = 1,
    narrow_above: int = NARROW_ABOVE,
    use_hints: bool = True,
) -> LinkReport:
    """Recompute the breach's exposures from scratch; the same inputs always give the same rows.

    ``use_hints``: whether the leak keys' hints may be used when valid; ``narrow_above``: the
    leak key count above which the customer keys are narrowed first otherwise. Plan choices
    only: the exposures are the same whichever plan runs (:attr:`LinkReport.plan` says which).
    """
    if shards < 1:
        raise ValueError("shards must be at least 1")
    store.run(_BEGIN, {"breach_id": breach_id})
    hinted = hinted_by(store, breach_id) if use_hints else None
    plan: Plan = "hinted" if hinted is not None else _unhinted_plan(store, narrow_above)
    _join(store, plan, shards)
    # Whether that filter still names the customer keys is checked after the join, which has
    # just read them: the check then reads them from memory (0.66 s before the join at 20 M,
    # from disk). One writer at a time: nothing changed them in between.
    if plan == "hinted" and current_id(store) != hinted:
        store.run(_BEGIN, {"breach_id": breach_id})
        plan = _unhinted_plan(store, narrow_above)
        _join(store, plan, shards)
    exposed = write_result(store, breach_id)
    return LinkReport(breach_id=breach_id, exposed=exposed, shards=shards, plan=plan)


def hinted_by(store: Store, breach_id: str) -> FilterId | None:
    """The one filter every artifact of the breach with rows was probed against, if any (an
    artifact without rows has no key, and no hint recorded). Its hints hold only while it
    still names the customer keys (:func:`matching.customer_filter.current_id`)."""
    found = store.rows(_HINT_FILTERS, {"breach_id": breach_id})
    if len(found) != 1 or None in found[0]:
        return None
    return FilterId(int(found[0][0]), int(found[0][1]))


def _unhinted_plan(store: Store, narrow_above: int) -> Plan:
    return "narrowed" if int(store.scalar(_LEAK_KEY_COUNT)) > narrow_above else "all"


def _join(store: Store, plan: Plan, shards: int) -> None:
    """Fill ``link_result`` (one pass) or ``link_pairs`` and then ``link_result`` (sharded)."""
    if plan == "narrowed":
        store.run(_NARROW)
    single, one_shard = _LINKS[plan]
    if shards == 1:
        store.run(single)
        return
    store.run(_PAIRS)
    for shard in range(shards):
        store.run(one_shard, {"shards": shards, "shard": shard})
    store.run(_COMBINE)


def write_result(store: Store, breach_id: str) -> int:
    """Decide risk per shape of the temp table ``link_result`` (one row per customer:
    ``customer_no``, ``kinds``, ``categories``, ``matched_rows``; the link's, or one the
    sharded match filled) and replace the breach's exposures in one go; returns the count."""
    decisions = _decisions(store.frame(_COMBOS))
    with store.transaction(), store.registered("decisions", decisions):
        store.run(_WRITE, {"breach_id": breach_id, "now": datetime.now(UTC)})
        crash.point("match-mid-link")  # exposures replaced, not yet committed
    return int(store.scalar(_COUNT, {"breach_id": breach_id}))
