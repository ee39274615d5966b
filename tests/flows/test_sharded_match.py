"""The sharded match on a local Dask cluster of two worker processes equals the one-store link."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

# The export leaves out the matched row counts: compare those straight from the store.
_MATCHED_ROWS = (
    "SELECT customer_id, category_mask, reasons, matched_rows FROM exposures "
    "WHERE breach_id = 'b' ORDER BY customer_id"
)


def _exposures(env: Path, name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    from flows import steps
    from flows.context import open_store, runtime

    rt = runtime()
    path = env / f"{name}.parquet"
    steps.export_exposures(rt, "b", path, "parquet")
    with open_store(rt.settings, read_only=True) as store:
        counts = store.con.sql(_MATCHED_ROWS).pl()
    return pl.read_parquet(path), counts


@pytest.mark.slow
@pytest.mark.prefect
def test_dask_equals_one_machine(
    prefect_harness: None, leakwatch_env: Path, two_file_breach: Callable[..., None]
) -> None:
    from flows import steps
    from flows.context import runtime
    from flows.sharded_match import sharded_match

    two_file_breach(seed=21)
    steps.match_breach(runtime(), "b")
    expected, expected_counts = _exposures(leakwatch_env, "one")

    exposed = sharded_match("b", shards=4, workers=2)

    got, got_counts = _exposures(leakwatch_env, "dask")
    assert expected.height > 150
    assert expected_counts["matched_rows"].max() > 1
    assert exposed == expected.height
    assert got.equals(expected)
    assert got_counts.equals(expected_counts)
    assert list((leakwatch_env / "work" / "shards").iterdir()) == []
