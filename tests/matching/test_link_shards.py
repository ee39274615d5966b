"""Linking gives the same exposures, matched row counts included, whatever the shard count."""

from __future__ import annotations

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
def test_one_pass_equals_sharded(leakwatch_env: Path) -> None:
    from flows import steps
    from flows.context import open_store, runtime
    from synthetic import make_customers, make_leak, write_delimited

    customers = make_customers(1500, seed=3)
    leak = make_leak(customers, 1500, overlap=0.4, seed=4)
    customers.write_csv(leakwatch_env / "customers.csv")
    # the same rows twice in two files: rows matched through several keys and artifacts
    write_delimited(leak.frame, leakwatch_env / "a.csv", delimiter=";")
    write_delimited(leak.frame.head(700), leakwatch_env / "b.csv", delimiter=",")
    rt = runtime()
    steps.load_customer_file(rt, leakwatch_env / "customers.csv")
    steps.ingest_source(rt, str(leakwatch_env / "a.csv"), "b")
    steps.ingest_source(rt, str(leakwatch_env / "b.csv"), "b")
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
