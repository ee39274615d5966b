"""The breach-response flow: load customers, ingest sources, match, draft notices, report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import Task, flow, get_run_logger, task
from prefect.cache_policies import NONE

from core.errors import TransientError
from flows import steps
from flows.artifacts import RunProgress, publish_summary
from flows.context import runtime

__all__ = ["breach_response"]

P = ParamSpec("P")
R = TypeVar("R")


def _transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a task only when it failed with a transient error (network, busy store)."""
    try:
        state.result()
    except TransientError:
        return True
    except Exception:
        return False
    return False


# Tasks see personal data in memory: results are never persisted, inputs are never cached,
# and they return counts only. Each builds its own runtime (pepper from the environment or
# a Secret block), so no secret is ever a task input.
def _task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    return task(
        name=name,
        persist_result=False,
        cache_policy=NONE,
        retries=2,
        retry_delay_seconds=[5, 30],
        retry_condition_fn=_transient_only,
    )


@_task("load-customers")
def load_customers_task(path: str) -> dict[str, int]:
    """Load or refresh the customer base."""
    report = steps.load_customer_file(runtime(), Path(path))
    return {
        "rows_read": report.rows_read,
        "rows_rejected": report.rows_rejected,
        "inserted": report.inserted,
        "updated": report.updated,
        "unchanged": report.unchanged,
    }


@_task("ingest-source")
def ingest_task(source: str, breach_id: str, column_map: dict[str, str]) -> dict[str, int]:
    """Acquire, parse, normalise and hash one source."""
    report = steps.ingest_source(runtime(), source, breach_id, column_map)
    logger = get_run_logger()
    for error in report.errors:
        logger.warning("refused: %s", error)
    return {
        "artifacts": report.artifacts,
        "skipped_known": report.skipped_known,
        "rows_read": report.rows_read,
        "rows_rejected": report.rows_rejected,
        "values_rejected": report.values_rejected,
        "refused": len(report.errors),
    }


@_task("match")
def match_task(breach_id: str) -> int:
    """Link leak keys to customer keys; exposures per customer."""
    return steps.match_breach(runtime(), breach_id)


@_task("draft-notices")
def draft_task(breach_id: str, outbox: str) -> dict[str, int]:
    """Plan one notice per exposed customer and draft the e-mail ones into the outbox."""
    report = steps.draft_notices(runtime(), breach_id, Path(outbox))
    return {
        "planned": report.planned,
        "drafted": report.drafted,
        "without_email": report.without_email,
    }


@_task("report")
def report_task(breach_id: str, output_dir: str) -> str:
    """Write the run report and the exposures export."""
    rt = runtime()
    out = Path(output_dir)
    steps.export_exposures(rt, breach_id, out / "exposures.csv", "csv")
    return str(steps.write_run_report(rt, breach_id, out / "report.html"))


@flow(name="breach-response", persist_result=False, log_prints=False)
def breach_response(
    breach_id: str,
    sources: list[str],
    customers: str | None = None,
    column_map: dict[str, str] | None = None,
    output_dir: str = "leakwatch-output",
) -> dict[str, Any]:
    """Everything a privacy officer needs within hours of a leak: who is exposed, to what, how badly."""
    logger = get_run_logger()
    progress = RunProgress(
        "breach-response-progress", len(sources) + 4, "steps of the breach response done"
    )
    loaded = load_customers_task(customers) if customers else None
    progress.step()
    ingested = []
    for source in sources:
        ingested.append(ingest_task(source, breach_id, column_map or {}))
        progress.step()
    exposed = match_task(breach_id)
    progress.step()
    drafted = draft_task(breach_id, str(Path(output_dir) / "outbox"))
    progress.step()
    report = report_task(breach_id, output_dir)
    progress.finish()
    summary: dict[str, Any] = {
        "breach_id": breach_id,
        "customers": loaded,
        "sources": len(sources),
        "rows_read": sum(i["rows_read"] for i in ingested),
        "rows_rejected": sum(i["rows_rejected"] for i in ingested),
        "values_rejected": sum(i["values_rejected"] for i in ingested),
        "refused_artifacts": sum(i["refused"] for i in ingested),
        "exposed": exposed,
        "notices": drafted,
        "report": report,
    }
    logger.info(
        "breach %s: %d rows read, %d exposed customers, %d notices drafted",
        breach_id,
        summary["rows_read"],
        exposed,
        drafted["drafted"],
    )
    _publish(summary)
    return summary


def _publish(summary: dict[str, Any]) -> None:
    """Counts as Prefect artifacts: what a privacy officer sees in the UI."""
    notices = summary["notices"]
    figures: dict[str, int | str] = {
        k: v for k, v in summary.items() if isinstance(v, int) and not isinstance(v, bool)
    }
    figures.update({f"notices {k}": v for k, v in notices.items() if isinstance(v, int)})
    figures["report"] = summary["report"]
    publish_summary("breach-response", f"Breach {summary['breach_id']}", figures)
