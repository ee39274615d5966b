"""The delivery-events sync flow: import SendGrid event exports dropped in a folder, once each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from core.settings import Settings
from flows.artifacts import RunProgress, publish_summary

__all__ = ["events_sync"]

_PATTERNS = ("*.json", "*.jsonl")


@task(name="import-events", persist_result=False, cache_policy=NONE)
def import_task(path: str) -> dict[str, int]:
    """One export file into the ledger; moved to ``imported/`` once stored."""
    from flows.notify_steps import import_events

    source = Path(path)
    counts, ignored = import_events(Settings(), source)
    done = source.parent / "imported"
    done.mkdir(exist_ok=True)
    source.replace(done / source.name)
    return {**counts, "ignored": sum(ignored.values())}


@flow(name="events-sync", persist_result=False, log_prints=False)
def events_sync(drop_dir: str = "leakwatch-events") -> dict[str, Any]:
    """Fold every delivery-event export in ``drop_dir`` into the notices' states."""
    folder = Path(drop_dir)
    files = (
        sorted({p for pattern in _PATTERNS for p in folder.glob(pattern)})
        if folder.is_dir()
        else []
    )
    progress = RunProgress("events-sync-progress", len(files), "event files imported")
    totals = {"files": len(files), "received": 0, "stored": 0, "changed": 0, "ignored": 0}
    for path in files:
        counts = import_task(str(path))
        for name in ("received", "stored", "changed", "ignored"):
            totals[name] += counts[name]
        progress.step()
    progress.finish()
    get_run_logger().info("%d event files, %d new events", totals["files"], totals["stored"])
    publish_summary("events-sync", "Delivery events imported", totals)
    return dict(totals)
