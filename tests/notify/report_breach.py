"""A real breach in a real store, for the report tests: two breaches so they overlap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from synthetic import make_customers, make_leak, write_delimited, write_jsonl

BREACH = "2026-03-report"
EARLIER = "2025-11-earlier"


@dataclass(frozen=True)
class BuiltBreach:
    customers: pl.DataFrame
    store: Path
    report: Path


def build_breach(tmp_path: Path, *, n_customers: int = 1_500) -> BuiltBreach:
    """Customers, an earlier breach and the one reported on, matched and with notices drafted."""
    from flows import steps
    from flows.context import open_store, runtime
    from matching.breaches import confirm_breach

    rt = runtime()
    customers = make_customers(n_customers, seed=31)
    customers.write_csv(tmp_path / "customers.csv")
    steps.load_customer_file(rt, tmp_path / "customers.csv")

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    write_delimited(make_leak(customers, 500, overlap=0.5, seed=32).frame, earlier / "old.csv")
    steps.ingest_source(rt, str(earlier), EARLIER)
    steps.match_breach(rt, EARLIER)

    leak = make_leak(customers, 1_200, overlap=0.4, seed=33).frame
    current = tmp_path / "leak"
    current.mkdir()
    write_delimited(leak.head(700), current / "a.csv", delimiter=";", encoding="cp1252")
    write_jsonl(leak.slice(700), current / "b.jsonl")
    (current / "broken.jsonl").write_text('{"email": "x@y.example"}\nnot json at all\n')
    steps.ingest_source(rt, str(current), BREACH)
    with open_store(rt.settings) as store:
        confirm_breach(store, BREACH, aware_at=datetime(2026, 3, 2, 8, 30, tzinfo=UTC))
    steps.match_breach(rt, BREACH)
    steps.draft_notices(rt, BREACH, tmp_path / "outbox")
    report = steps.write_run_report(rt, BREACH, tmp_path / "out" / "report.html")
    return BuiltBreach(customers=customers, store=rt.settings.store, report=report)
