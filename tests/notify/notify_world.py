"""A confirmed breach with exposed customers in a private store, built through the real steps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from core.settings import Settings
from flows import steps
from flows.context import Runtime, load_pepper, open_store
from matching.breaches import confirm_breach
from synthetic import make_customers, make_leak, write_delimited

BREACH = "2024-10-test"


@dataclass(frozen=True)
class World:
    settings: Settings
    breach_id: str
    with_email: int  # exposed customers with an e-mail address: one notice each
    without_email: int
    ibans: tuple[str, ...]  # every customer IBAN, compact


def build_world(
    tmp_path: Path, *, confirm: bool = True, n: int = 160, seed: int = 7, shuffled: bool = False
) -> World:
    """``shuffled``: the customer file in no order of customer id (loaded in that order)."""
    settings = Settings()
    rt = Runtime(settings=settings, pepper=load_pepper(settings))
    customers = make_customers(n, seed=seed)
    if shuffled:
        customers = customers.sample(fraction=1.0, shuffle=True, seed=seed)
    leak = make_leak(customers, n, overlap=0.6, seed=seed + 1)
    customers.write_csv(tmp_path / "customers.csv")
    write_delimited(leak.frame, tmp_path / "leak.csv")
    steps.load_customer_file(rt, tmp_path / "customers.csv")
    steps.ingest_source(rt, str(tmp_path / "leak.csv"), BREACH)
    steps.match_breach(rt, BREACH)
    if confirm:
        with open_store(settings) as store:
            confirm_breach(store, BREACH)
    con = duckdb.connect(str(settings.store), read_only=True)
    try:
        with_email, without = con.execute(
            "SELECT count(*) FILTER (WHERE c.email IS NOT NULL), count(*) FILTER (WHERE c.email IS NULL) "
            "FROM exposures e JOIN customers c USING (customer_id) WHERE e.breach_id = $b",
            {"b": BREACH},
        ).fetchone() or (0, 0)
    finally:
        con.close()
    ibans = tuple(i.replace(" ", "").upper() for i in customers["iban"].drop_nulls().to_list() if i)
    return World(settings, BREACH, int(with_email), int(without), ibans)


def ledger(
    settings: Settings, sql: str = "SELECT notice_id, state FROM notices"
) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(settings.store), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
