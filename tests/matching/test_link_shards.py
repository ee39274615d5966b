"""Linking gives the same exposures, matched row counts included, whatever the shard count
and the plan: the leak keys that hit the customer filter, every leak key, or the customer keys
narrowed to the breach first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from matching.link import link
from matching.store import Store

_EXPOSURES = (
    "SELECT customer_id, matched_on, categories, category_mask, risk, reasons, matched_rows "
    "FROM exposures WHERE breach_id = 'b' ORDER BY customer_id"
)


@pytest.mark.slow
def test_one_pass_equals_sharded(two_file_breach: Callable[..., None]) -> None:
    from flows.context import open_store, runtime

    two_file_breach(customers=1500, repeated=700, seed=3)
    rt = runtime()
    results: list[pl.DataFrame] = []
    plans: list[str] = []
    with open_store(rt.settings) as store:
        for shards in (1, 3, 1):  # the leak keys that hit the customer filter (the default)
            plans.append(link(store, "b", shards=shards).plan)
            results.append(_frame(store))
        for shards in (1, 3):  # every leak key
            plans.append(link(store, "b", shards=shards, use_hints=False).plan)
            results.append(_frame(store))
        # the customer keys narrowed to the breach first (a plan choice for large leaks)
        for shards in (1, 3):
            plans.append(link(store, "b", shards=shards, narrow_above=0, use_hints=False).plan)
            results.append(_frame(store))
        temp_tables = store.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'link_customer_keys'"
        ).fetchone()
    assert plans == ["hinted"] * 3 + ["all"] * 2 + ["narrowed"] * 2
    assert results[0].height > 300
    for other in results[1:]:
        assert results[0].equals(other)
    assert results[0]["matched_rows"].max() > 1
    assert temp_tables == (0,)  # dropped with the link's other temporary tables


def _frame(store: Store) -> pl.DataFrame:
    return store.con.sql(_EXPOSURES).pl()


def test_shard_arithmetic_stays_64_bit(tmp_path: Path) -> None:
    """The shard of a key is taken on its UBIGINT: with the count as an INTEGER parameter,
    DuckDB widened every key to HUGEINT (a one-store shard at 20 M: 12.3 s against 2.7 s)."""
    from matching import link as linking
    from matching import shards

    with Store(tmp_path / "s.duckdb") as store:
        store.run(linking._BEGIN, {"breach_id": "b"})
        plans = []
        for plan in ("hinted", "all"):
            sql = linking._LINKS[plan][1].text
            select = sql[sql.index("SELECT") :]
            plans.append(_explained(store, select, {"shards": 3, "shard": 1}))
        shard = shards._SHARD.removesuffix(" AS shard")
        where = f"SELECT 1 FROM customer_keys WHERE {shard} = 1"
        plans.append(_explained(store, where, {"shards": 3}))
    for text in plans:
        assert "%" in text and "HUGEINT" not in text


def _explained(store: Store, sql: str, params: dict[str, int]) -> str:
    return "\n".join(str(row[1]) for row in store.con.execute("EXPLAIN " + sql, params).fetchall())


def test_a_kind_is_its_bit_in_sql_as_in_python(tmp_path: Path) -> None:
    """kind_bit, which the one-store link and the sharded match both use, gives each kind the
    bit that the risk decision reads back (link._KIND_BITS)."""
    from matching import link as linking

    with Store(tmp_path / "s.duckdb") as store:
        for kind, bit in linking._KIND_BITS.items():
            got = store.con.execute(
                f"SELECT {linking.kind_bit()} FROM (SELECT $k::key_kind AS kind)", {"k": kind.value}
            ).fetchone()
            assert got == (bit,), kind
