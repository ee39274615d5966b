"""The canary scenario: plant identifiers in every kind of input, run every step, sweep everywhere."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from core.settings import Settings
from flows import steps
from flows.context import Runtime, open_store
from flows.notify_steps import build_sender, send_customer_notices
from matching.breaches import confirm_breach
from matching.keyed_hash import Pepper
from notify.fake_sendgrid import FakeSendGrid
from reliability.reversal import MobileRange
from reliability.sweep import (
    folder_haystacks,
    iban_spellings,
    pepper_spellings,
    phone_spellings,
    store_haystacks,
)
from synthetic import make_customers, make_leak, write_delimited, write_jsonl

__all__ = ["PLANTED", "WINDOW", "CanaryRun", "run_canary"]

CANARY_PHONE = "+33612345678"
CANARY_IBAN = "FR7630006000019876543210949"  # mod-97 and RIB key valid
# Planted numbers inside the reduced enumeration window (+33 6 12 xx xx xx).
PLANTED = (CANARY_PHONE, "+33612000001", "+33612999999", "+33612500000", "+33612071234")
WINDOW = [MobileRange(6, 12_000_000, 13_000_000)]
BREACH = "canary"


def _customers() -> pl.DataFrame:
    base = make_customers(300, seed=61)
    rows: list[dict[str, Any]] = []
    for i, phone in enumerate(PLANTED):
        row: dict[str, Any] = dict.fromkeys(base.columns)
        row.update(
            customer_id=f"CANARY-{i}",
            email=f"canary{i}@example.test",
            phone="0" + phone[3:],
            iban=CANARY_IBAN if i == 0 else None,
            first_name="Canari",
            last_name="Jaune",
            language="fr",
            status="active",
        )
        rows.append(row)
    return pl.concat([base, pl.DataFrame(rows, schema=base.schema)])


def _leak(customers: pl.DataFrame, folder: Path) -> None:
    frame = make_leak(customers, 400, overlap=0.4, seed=62).frame
    planted: list[dict[str, Any]] = []
    for i, phone in enumerate(PLANTED):
        row: dict[str, Any] = dict.fromkeys(frame.columns)
        national = "0" + phone[3:]
        row["telephone"] = " ".join(national[j : j + 2] for j in range(0, 10, 2))
        row["iban"] = "fr76 3000 6000 0198 7654 3210 949" if i == 0 else None
        row["nom"] = "Jaune"
        planted.append(row)
    frame = pl.concat([frame, pl.DataFrame(planted, schema=frame.schema)])
    folder.mkdir()
    write_delimited(frame.head(200), folder / "a.csv", delimiter=";", encoding="cp1252")
    write_jsonl(frame.slice(200, 150), folder / "b.jsonl")
    values = ",".join(
        "('" + (r["telephone"] or "") + "','" + (r["iban"] or "") + "')"
        for r in frame.slice(350).iter_rows(named=True)
    )
    (folder / "c.sql").write_text(
        "CREATE TABLE `t` (`telephone` varchar(20), `iban` varchar(40));\n"
        f"INSERT INTO `t` VALUES {values};\n",
        encoding="utf-8",
    )
    with zipfile.ZipFile(folder / "d.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inner/e.csv", frame.tail(20).write_csv())


@dataclass(frozen=True)
class CanaryRun:
    runtime: Runtime
    haystacks: dict[str, str | bytes]
    needles: list[str | bytes]
    exposed_canaries: int
    artifacts: int
    refusals: list[str]


def run_canary(root: Path, pepper: Pepper | None = None) -> CanaryRun:
    """Load, ingest (CSV, JSON lines, SQL dump, zip), match, export, draft, report, send."""
    root.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        store=root / "store" / "leakwatch.duckdb", work_dir=root / "work", batch_rows=1_000
    )
    rt = Runtime(settings=settings, pepper=pepper or Pepper.generate())
    customers = _customers()
    customers.write_csv(root / "customers.csv")
    _leak(customers, root / "leak")
    steps.load_customer_file(rt, root / "customers.csv")
    report = steps.ingest_source(rt, str(root / "leak"), BREACH)
    steps.match_breach(rt, BREACH)
    out = root / "out"
    steps.export_exposures(rt, BREACH, out / "exposures.csv", "csv")
    exposed = pl.read_csv(out / "exposures.csv", infer_schema=False)
    canaries = exposed.filter(pl.col("customer_id").str.starts_with("CANARY-")).height
    steps.draft_notices(rt, BREACH, out / "outbox")
    steps.write_run_report(rt, BREACH, out / "report.html")
    with open_store(settings) as store:
        confirm_breach(store, BREACH)
    with FakeSendGrid() as fake:
        send_customer_notices(
            settings, BREACH, build_sender(settings, outbox=out / "sent", fake=fake)
        )
        requests = {f"sendgrid request {i}": r.body for i, r in enumerate(fake.requests)}
    haystacks: dict[str, str | bytes] = {
        **store_haystacks(settings.store),
        **folder_haystacks(settings.store.parent, "store folder (snapshots, WAL)"),
        **folder_haystacks(settings.work_dir, "work folder"),
        **folder_haystacks(out, "outputs"),
        **requests,
    }
    needles: list[str | bytes] = [
        *phone_spellings(CANARY_PHONE),
        *iban_spellings(CANARY_IBAN),
        *pepper_spellings(rt.pepper),
    ]
    return CanaryRun(rt, haystacks, needles, canaries, report.artifacts, report.errors)
