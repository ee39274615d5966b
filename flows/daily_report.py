"""The daily report flow: a run report for every breach in the store, and the breach register."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from core.settings import Settings
from flows.artifacts import RunProgress, publish_summary

__all__ = ["daily_report", "safe_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(breach_id: str) -> str:
    """A breach id as one file-name component (no separator, no '..')."""
    name = _UNSAFE.sub("_", breach_id).strip("._") or "breach"
    return name[:120]


@task(name="open-breaches", persist_result=False, cache_policy=NONE)
def breaches_task() -> list[str]:
    """Every breach of the store (there is no closed state: every breach stays open)."""
    from flows.context import open_store
    from matching.register import breach_ids

    with open_store(Settings(), read_only=True) as store:
        return breach_ids(store)


@task(name="breach-report", persist_result=False, cache_policy=NONE, retries=1)
def report_task(breach_id: str, folder: str, name: str) -> dict[str, int]:
    """One breach's report into its own folder; counts back."""
    from flows.report_steps import write_report_file

    _, summary = write_report_file(Settings(), breach_id, Path(folder), name=name)
    return {"exposed": summary.exposed_total, "former_exposed": summary.former_exposed}


@task(name="breach-register", persist_result=False, cache_policy=NONE)
def register_task(output_dir: str) -> dict[str, int]:
    """Refresh the register and export it as CSV."""
    from flows.report_steps import export_register

    result = export_register(Settings(), "csv", Path(output_dir) / "breach-register.csv")
    return {"breaches": result.breaches, "not_notified": result.not_notified}


@flow(name="daily-report", persist_result=False, log_prints=False)
def daily_report(output_dir: str = "leakwatch-reports") -> dict[str, Any]:
    """Reports the DPO finds each morning: OUTPUT_DIR/<breach>/report-<date>.html and the register."""
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    breaches = breaches_task()
    progress = RunProgress("daily-report-progress", len(breaches) + 1, "breach reports written")
    exposed = 0
    for breach_id in breaches:
        folder = Path(output_dir) / safe_name(breach_id)
        counts = report_task.with_options(name=f"breach-report-{safe_name(breach_id)}")(
            breach_id, str(folder), f"report-{day}.html"
        )
        exposed += counts["exposed"]
        progress.step()
    register = register_task(output_dir)
    progress.finish()
    summary: dict[str, Any] = {
        "breaches": len(breaches),
        "exposed_customers": exposed,
        "not_notified_to_cnil": register["not_notified"],
        "output_dir": output_dir,
    }
    get_run_logger().info("daily report: %d breach reports in %s", len(breaches), output_dir)
    publish_summary("daily-report", f"Daily report {day}", summary)
    return summary
