"""Linking gives the same exposures, matched row counts included, whatever the shard count."""

from __future__ import annotations

from collections.abc import Callable

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
    with open_store(rt.settings) as store:
        for shards in (1, 3, 1):
            link(store, "b", shards=shards)
            results.append(_frame(store))
    assert results[0].height > 300
    assert results[0].equals(results[1])
    assert results[0].equals(results[2])
    assert results[0]["matched_rows"].max() > 1


def _frame(store: Store) -> pl.DataFrame:
    return store.con.sql(_EXPOSURES).pl()
