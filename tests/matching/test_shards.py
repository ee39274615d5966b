"""The sharded match over Parquet files gives exactly the exposures of the one-store link."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from matching.link import link
from matching.shards import combine, export_shards, link_shard
from matching.store import Store

_EXPOSURES = (
    "SELECT customer_id, matched_on, categories, category_mask, risk, reasons, matched_rows "
    "FROM exposures WHERE breach_id = 'b' ORDER BY customer_id"
)


def _frame(store: Store) -> pl.DataFrame:
    return store.con.sql(_EXPOSURES).pl()


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
        paths = export_shards(store, "b", folder, shards)
        # Customer numbers leave the store, not customer ids: the store maps them back.
        assert pl.read_parquet_schema(paths[0].customers) == {
            "customer_no": pl.UInt32,
            "kind": pl.String,
            "k1": pl.UInt64,
            "k2": pl.UInt64,
        }
        partials = [link_shard(p, folder / f"partial-{p.shard}.parquet") for p in paths]
        report = combine(store, "b", partials)
        got = _frame(store)
    assert expected.height > 150
    assert expected["matched_rows"].max() > 1
    assert report.exposed == expected.height
    assert report.shards == shards
    assert got.equals(expected)
    assert sorted(f.name for f in folder.iterdir() if f.suffix != ".parquet") == []


def test_shard_count_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shards"):
        export_shards(None, "b", tmp_path, 0)  # type: ignore[arg-type]
