"""The watch flow under a real (test) Prefect server: the second run in a row ingests nothing."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from synthetic import make_customers, make_leak, write_delimited

pytestmark = pytest.mark.prefect


def test_second_run_ingests_nothing(
    prefect_harness: None, tmp_path: Path, leakwatch_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.settings import Settings
    from flows import steps
    from flows.context import runtime
    from flows.watch import watch

    customers = make_customers(1_000, seed=61)
    leak = make_leak(customers, 800, overlap=0.3, seed=62)
    customers.write_csv(tmp_path / "customers.csv")
    steps.load_customer_file(runtime(Settings()), tmp_path / "customers.csv")
    folder = tmp_path / "drop"
    folder.mkdir()
    write_delimited(leak.frame, folder / "part1.csv")
    config = tmp_path / "watch.json"
    config.write_text(json.dumps([{"source": str(folder), "breach_id": "b-watch"}]))
    monkeypatch.setenv("LEAKWATCH_WATCH_CONFIG", str(config))

    first = watch()
    assert first["new_artifacts"] == 1 and first["failed"] == 0
    assert first["matched_breaches"] == ["b-watch"]
    assert first["exposed"]["b-watch"] == leak.truth.height

    (folder / "same-content-renamed.csv").write_bytes((folder / "part1.csv").read_bytes())
    second = watch()
    assert second["new_artifacts"] == 0 and second["known_artifacts"] == 2
    assert second["matched_breaches"] == []

    steps.export_exposures(runtime(Settings()), "b-watch", tmp_path / "e.csv", "csv")
    got = pl.read_csv(tmp_path / "e.csv", infer_schema=False)
    assert sorted(got["customer_id"]) == sorted(leak.truth["customer_id"])
