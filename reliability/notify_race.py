"""Two ``leakwatch notify customers`` at once against the fake SendGrid: sends counted per notice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from core.settings import Settings
from flows import steps
from flows.context import Runtime, open_store
from matching.breaches import confirm_breach
from matching.keyed_hash import Pepper
from notify.fake_sendgrid import FakeSendGrid
from synthetic import make_customers, make_leak, write_delimited

__all__ = ["RaceResult", "run_notify_race"]

BREACH = "race"
LEAKWATCH = str(Path(sys.executable).parent / "leakwatch")


@dataclass(frozen=True)
class RaceResult:
    expected: int  # exposed customers with an e-mail address
    duplicates: int  # sends beyond the first, summed over notices
    missed: int  # expected notices never sent
    unresolved: int  # e-mail notices left planned, sending or ambiguous
    exit_codes: tuple[int, ...]


def _scalar(store: Path, sql: str) -> int:
    con = duckdb.connect(str(store), read_only=True)
    try:
        row = con.execute(sql).fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def run_notify_race(root: Path, *, senders: int = 2) -> RaceResult:
    root.mkdir(parents=True, exist_ok=True)
    settings = Settings(store=root / "store" / "s.duckdb", work_dir=root / "work", batch_rows=1_000)
    pepper = Pepper.generate()
    rt = Runtime(settings=settings, pepper=pepper)
    customers = make_customers(300, seed=71)
    customers.write_csv(root / "customers.csv")
    write_delimited(make_leak(customers, 300, overlap=0.6, seed=72).frame, root / "leak.csv")
    steps.load_customer_file(rt, root / "customers.csv")
    steps.ingest_source(rt, str(root / "leak.csv"), BREACH)
    steps.match_breach(rt, BREACH)
    with open_store(settings) as store:
        confirm_breach(store, BREACH)
    expected = _scalar(
        settings.store,
        "SELECT count(*) FROM exposures e JOIN customers c USING (customer_id) "
        "WHERE e.breach_id = 'race' AND c.email IS NOT NULL",
    )
    with FakeSendGrid() as fake:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")},
            "LEAKWATCH_STORE": str(settings.store),
            "LEAKWATCH_WORK_DIR": str(settings.work_dir),
            "LEAKWATCH_PEPPER": pepper.to_text(),
            "LEAKWATCH_STORE_WAIT_S": "300",
            "LEAKWATCH_SENDGRID_API_KEY": fake.api_key,
            "LEAKWATCH_SENDGRID_HOST": fake.url,
            "LEAKWATCH_NOTIFY_BATCH_SIZE": "10",
        }
        procs = []
        for _ in range(senders):
            procs.append(
                subprocess.Popen(
                    [LEAKWATCH, "notify", "customers", "--breach", BREACH],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            time.sleep(0.2)  # staggered a little so both are contending, not one after the other
        codes = tuple(p.wait(timeout=600) for p in procs)
        per_notice = fake.sends_per_notice()
    unresolved = _scalar(
        settings.store,
        "SELECT count(*) FROM notices WHERE channel = 'email' "
        "AND state IN ('planned', 'sending', 'ambiguous')",
    )
    return RaceResult(
        expected=expected,
        duplicates=sum(n - 1 for n in per_notice.values()),
        missed=max(0, expected - len(per_notice)),
        unresolved=unresolved,
        exit_codes=codes,
    )
