"""The scheduled flows under the test server: daily reports for every breach, events sync."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from synthetic import make_customers, make_leak, write_delimited

pytestmark = pytest.mark.prefect


async def _artifact_types(flow_run_id: object) -> set[tuple[str, str | None]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {(str(a.type), a.key) for a in found}


def test_daily_report_and_events_sync(
    prefect_harness: None, leakwatch_env: Path, tmp_path: Path
) -> None:
    from flows import steps
    from flows.context import runtime
    from flows.daily_report import daily_report, safe_name
    from flows.events_sync import events_sync

    rt = runtime()
    customers = make_customers(300, seed=51)
    customers.write_csv(tmp_path / "customers.csv")
    steps.load_customer_file(rt, tmp_path / "customers.csv")
    (tmp_path / "leak").mkdir()
    write_delimited(make_leak(customers, 200, seed=52).frame, tmp_path / "leak" / "a.csv")
    for breach in ("b-1", "../b/2"):
        steps.ingest_source(rt, str(tmp_path / "leak"), breach)
        steps.match_breach(rt, breach)

    state = daily_report(output_dir=str(tmp_path / "reports"), return_state=True)
    assert state.is_completed()
    summary = state.result()
    assert summary["breaches"] == 2 and summary["not_notified_to_cnil"] == 2
    reports = sorted(
        p.relative_to(tmp_path / "reports") for p in (tmp_path / "reports").rglob("*.html")
    )
    assert [p.parent.name for p in reports] == sorted([safe_name("b-1"), safe_name("../b/2")])
    assert (tmp_path / "reports" / "breach-register.csv").exists()
    kinds = asyncio.run(_artifact_types(state.state_details.flow_run_id))
    assert {("markdown", "daily-report-summary"), ("table", "daily-report-counts")} <= kinds
    assert ("progress", "daily-report-progress") in kinds

    drop = tmp_path / "events"
    drop.mkdir()
    (drop / "batch.json").write_text("[]")
    synced = events_sync(drop_dir=str(drop), return_state=True)
    assert synced.is_completed() and synced.result()["files"] == 1
    assert (drop / "imported" / "batch.json").exists()
