"""The breach-response flow under a real (test) Prefect server, and a canary sweep for clear data."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from synthetic import make_customers, make_leak, write_delimited, write_jsonl

pytestmark = pytest.mark.prefect

# Canary identifiers: a real-looking customer whose phone and IBAN must never appear in clear.
CANARY_PHONE_NATIONAL = "0698765432"
CANARY_PHONE_E164 = "+33698765432"
CANARY_IBAN = "FR7630006000019876543210949"  # mod-97 and RIB key valid


def _canary_spellings() -> list[str]:
    return [
        CANARY_PHONE_NATIONAL,
        CANARY_PHONE_E164,
        "698765432",
        CANARY_IBAN,
        CANARY_IBAN[4:],  # the BBAN alone
        "30006000019876543210",
    ]


def _with_canary(customers: pl.DataFrame) -> pl.DataFrame:
    row = {c: None for c in customers.columns}
    row.update(
        customer_id="CANARY-1",
        email="canary@example.test",
        phone=CANARY_PHONE_NATIONAL,
        iban=CANARY_IBAN,
        first_name="Canari",
        last_name="Jaune",
        language="fr",
        status="active",
    )
    return pl.concat([customers, pl.DataFrame([row], schema=customers.schema)])


def _leak_with_canary(leak: pl.DataFrame) -> pl.DataFrame:
    row: dict[str, Any] = {c: None for c in leak.columns}
    phone_col = next(c for c in leak.columns if "tel" in c.lower() or "phone" in c.lower())
    iban_col = next(c for c in leak.columns if "iban" in c.lower())
    row[phone_col] = "+33 6 98 76 54 32"
    row[iban_col] = "fr76 3000 6000 0198 7654 3210 949"
    return pl.concat([leak, pl.DataFrame([row], schema=leak.schema)])


def _store_text(path: Path) -> str:
    """Every value of every table, as text: clear data would show here even if compressed on disk."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        parts = []
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            value = con.execute(f"SELECT string_agg(t::VARCHAR, '|') FROM \"{table}\" t").fetchone()
            parts.append(str(value[0] if value else ""))
        return "\n".join(parts)
    finally:
        con.close()


async def _prefect_records(flow_run_id: Any) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        tasks = await client.read_task_runs()
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
        artifacts = await client.read_artifacts()
    blobs = [run.model_dump_json()]
    blobs += [t.model_dump_json() for t in tasks]
    blobs += [log.model_dump_json() for log in logs]
    blobs += [a.model_dump_json() for a in artifacts]
    return "\n".join(blobs)


def test_flow_runs_and_no_clear_identifier_escapes(
    prefect_harness: None,
    leakwatch_env: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from prefect.settings import get_current_settings

    from flows.breach_response import breach_response

    customers = _with_canary(make_customers(1_500, seed=21))
    leak = make_leak(customers, 1_000, overlap=0.3, seed=22)
    customers.write_csv(tmp_path / "customers.csv")
    leak_dir = tmp_path / "leak"
    leak_dir.mkdir()
    frame = _leak_with_canary(leak.frame)
    write_delimited(frame.head(600), leak_dir / "a.csv", delimiter=";", encoding="cp1252")
    write_jsonl(frame.slice(600), leak_dir / "b.jsonl")

    caplog.set_level(logging.DEBUG)
    state = breach_response(
        breach_id="canary-breach",
        sources=[str(leak_dir)],
        customers=str(tmp_path / "customers.csv"),
        output_dir=str(tmp_path / "out"),
        return_state=True,
    )
    assert state.is_completed()
    summary = state.result()
    assert summary["rows_read"] == frame.height
    exposures = pl.read_csv(tmp_path / "out" / "exposures.csv", infer_schema=False)
    canary = exposures.filter(pl.col("customer_id") == "CANARY-1")
    assert canary["matched_on"].to_list() == ["iban;phone"]
    assert summary["exposed"] == exposures.height
    assert (tmp_path / "out" / "report.html").exists()
    assert len(list((tmp_path / "out" / "outbox").glob("*.eml"))) == summary["notices"]["drafted"]

    # The sweep: store values, store bytes, logs, Prefect's records and its database file.
    store_path = tmp_path / "store" / "leakwatch.duckdb"
    haystacks = {
        "store values": _store_text(store_path),
        "store bytes": store_path.read_bytes().decode("latin-1"),
        "logs": caplog.text + "".join(capfd.readouterr()),
        "prefect records": asyncio.run(_prefect_records(state.state_details.flow_run_id)),
    }
    db_url = get_current_settings().server.database.connection_url
    if db_url and "sqlite" in db_url.get_secret_value():
        db_file = Path(db_url.get_secret_value().split("///", 1)[1])
        haystacks["prefect database"] = db_file.read_bytes().decode("latin-1")
    for where, text in haystacks.items():
        for needle in _canary_spellings():
            assert needle not in text, f"canary found in {where}"
    # The pepper likewise (hex, base64, raw bytes): shared sweep helpers in reliability.sweep.
    from matching.keyed_hash import Pepper
    from reliability.sweep import hits, pepper_spellings

    pepper = Pepper.from_text(os.environ["LEAKWATCH_PEPPER"], "k1")
    assert hits(haystacks, pepper_spellings(pepper)) == []
    # And the outbox holds the masked IBAN hint only.
    eml = "".join(p.read_text() for p in (tmp_path / "out" / "outbox").glob("*.eml"))
    assert CANARY_IBAN not in eml and CANARY_IBAN[4:] not in eml
    json.dumps(summary)  # the flow's result is plain counts
