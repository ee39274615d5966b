"""The sharded match over Parquet files gives exactly the exposures of the one-store link."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from matching.link import link
from matching.shards import combine, export_shards, link_shard
from matching.store import Store
from synthetic import make_customers

_EXPOSURES = (
    "SELECT customer_id, matched_on, categories, category_mask, risk, reasons, matched_rows "
    "FROM exposures WHERE breach_id = 'b' ORDER BY customer_id"
)


def _frame(store: Store) -> pl.DataFrame:
    return store.con.sql(_EXPOSURES).pl()


def _files(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(folder / "*.parquet", hive_partitioning=False)


@pytest.mark.slow
@pytest.mark.parametrize("shards", [1, 5])
def test_files_equal_link(
    leakwatch_env: Path, two_file_breach: Callable[..., None], shards: int
) -> None:
    from flows.context import open_store, runtime

    two_file_breach(seed=11)
    folder = leakwatch_env / "shards"
    with open_store(runtime().settings) as store:
        link(store, "b")
        expected = _frame(store)
        hinted, every = store.con.execute(
            "SELECT count(*) FILTER (WHERE customer_hint), count(*) FROM leak_keys"
        ).fetchall()[0]
        export = export_shards(store, "b", folder, shards)
        paths = export.paths
        # Customer numbers leave the store, not customer ids: the store maps them back.
        assert _files(paths[0].customers).schema == {
            "customer_no": pl.UInt32,
            "k1": pl.UInt64,
            "k2": pl.UInt64,
        }
        # The leak was ingested against the customer filter of these customers: only the
        # keys that hit it leave, each in its shard once.
        assert export.plan == "hinted" and 0 < hinted < every
        leaks = [_files(p.leaks) for p in paths]
        assert sum(f.height for f in leaks) == hinted
        for keys, path in zip(leaks, paths, strict=True):
            assert ((keys["k1"] // (1 << 48)) % shards == path.shard).all()
        customers = store.con.execute("SELECT count(*) FROM customer_keys").fetchone()
        assert (sum(_files(p.customers).height for p in paths),) == customers
        partials = [link_shard(p, folder / f"partial-{p.shard}.parquet") for p in paths]
        report = combine(store, "b", partials, plan=export.plan)
        got = _frame(store)
    assert expected.height > 150
    assert expected["matched_rows"].max() > 1
    assert report.exposed == expected.height
    assert report.shards == shards and report.plan == "hinted"
    assert got.equals(expected)
    assert sorted(f.name for f in folder.iterdir() if f.is_file()) == sorted(
        p.name for p in partials
    )


def test_shards_no_key_fell_in_are_read_like_the_others(
    leakwatch_env: Path, two_file_breach: Callable[..., None]
) -> None:
    from flows.context import open_store, runtime

    two_file_breach(customers=40, repeated=10, seed=13)
    folder = leakwatch_env / "shards"
    with open_store(runtime().settings) as store:
        link(store, "b")
        expected = _frame(store)
        export = export_shards(store, "b", folder, 64)
        empty = [p.shard for p in export.paths if _files(p.leaks).height == 0]
        assert 0 < len(empty) < 64
        assert all((p.leaks / "empty.parquet").exists() for p in export.paths if p.shard in empty)
        partials = [link_shard(p, folder / f"partial-{p.shard}.parquet") for p in export.paths]
        combine(store, "b", partials, plan=export.plan)
        assert _frame(store).equals(expected)
    assert expected.height > 5


@pytest.mark.slow
def test_a_leak_ingested_before_the_customers_changed_exports_every_key(
    leakwatch_env: Path, two_file_breach: Callable[..., None]
) -> None:
    """The hints name the customer keys of their time: after another load, every leak key
    goes to the shards, and the exposures are still the link's."""
    from flows import steps
    from flows.context import open_store, runtime

    two_file_breach(seed=12)
    more = make_customers(50, seed=99).with_columns(
        pl.format("NEW{}", pl.col("customer_id")).alias("customer_id")
    )
    more.write_csv(leakwatch_env / "more.csv")
    steps.load_customer_file(runtime(), leakwatch_env / "more.csv")
    folder = leakwatch_env / "shards"
    with open_store(runtime().settings) as store:
        assert link(store, "b").plan == "all"
        expected = _frame(store)
        export = export_shards(store, "b", folder, 3)
        assert export.plan == "all"
        every = store.con.execute("SELECT count(*) FROM leak_keys").fetchone()
        assert (sum(_files(p.leaks).height for p in export.paths),) == every
        partials = [link_shard(p, folder / f"partial-{p.shard}.parquet") for p in export.paths]
        combine(store, "b", partials, plan=export.plan)
        assert _frame(store).equals(expected)


def test_shard_count_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shards"):
        export_shards(None, "b", tmp_path, 0)  # type: ignore[arg-type]
