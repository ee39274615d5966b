"""The watch flow: ingest what is new in every watched source, then match the breaches that grew."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from core.settings import Settings
from flows.breach_response import ingest_task, match_task
from flows.evidence_steps import load_watch_list

__all__ = ["watch"]


@task(name="watch-list", persist_result=False, cache_policy=NONE)
def watch_list_task(sources: list[str] | None) -> list[tuple[str, str]]:
    """The configured (source, breach id) pairs, or the requested subset of them."""
    return [(w.source, w.breach_id) for w in load_watch_list(Settings(), sources)]


@flow(name="watch-sources", persist_result=False, log_prints=False)
def watch(sources: list[str] | None = None) -> dict[str, Any]:
    """Ingest artifacts never seen before (by SHA-256) from the watched sources; match what grew.

    Content already ingested into a breach is recognised by its hash before it is parsed, so a
    source that has not changed costs one read. A source that fails (a download that keeps
    failing) is logged and counted; the others go on.
    """
    logger = get_run_logger()
    watched = watch_list_task(sources)
    rows: list[dict[str, Any]] = []
    grown: list[str] = []
    for number, (source, breach_id) in enumerate(watched, start=1):
        state = ingest_task(source, breach_id, {}, return_state=True)
        if not state.is_completed():
            logger.warning(
                "watched source %d (breach %s) failed: %s", number, breach_id, state.name
            )
            rows.append({"source_no": number, "breach_id": breach_id, "failed": 1})
            continue
        counts: dict[str, int] = state.result()
        rows.append({"source_no": number, "breach_id": breach_id, "failed": 0, **counts})
        if counts["artifacts"] and breach_id not in grown:
            grown.append(breach_id)
    exposed = {breach_id: match_task(breach_id) for breach_id in grown}
    summary: dict[str, Any] = {
        "sources": len(watched),
        "failed": sum(r["failed"] for r in rows),
        "new_artifacts": sum(r.get("artifacts", 0) for r in rows),
        "known_artifacts": sum(r.get("skipped_known", 0) for r in rows),
        "refused": sum(r.get("refused", 0) for r in rows),
        "matched_breaches": sorted(exposed),
        "exposed": exposed,
    }
    logger.info(
        "watched %d sources: %d new artifacts, %d already known, %d breaches matched",
        summary["sources"],
        summary["new_artifacts"],
        summary["known_artifacts"],
        len(exposed),
    )
    create_table_artifact(key="watch-sources", table=rows, description="Counts only.")
    return summary
