"""The DPO's view as plain steps: run reports and the breach register, optionally handed over encrypted."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.settings import Settings
from flows.context import open_store
from flows.handover import hand_over
from matching.breaches import get_breach
from matching.register import breach_ids, latest_entries, record_entry
from matching.summary import run_summary
from notify.register import (
    RegisterEntry,
    RegisterFormat,
    register_csv,
    register_entry,
    register_json,
)
from notify.report import render_report
from schemas.models import RunSummary

__all__ = [
    "RegisterExport",
    "export_register",
    "refresh_register",
    "summary_of",
    "write_report_file",
]

Progress = Callable[[str], None]


def _noop(_: str) -> None:
    return None


def summary_of(settings: Settings, breach_id: str) -> RunSummary:
    """The breach's counts, read from the store without writing to it."""
    with open_store(settings, read_only=True) as store:
        get_breach(store, breach_id)  # a clear error for an unknown breach
        return run_summary(store, breach_id)


def write_report_file(
    settings: Settings,
    breach_id: str,
    output_dir: Path,
    *,
    encrypt_to: Sequence[Path] = (),
    progress: Progress = _noop,
    name: str = "report.html",
) -> tuple[Path, RunSummary]:
    """``report.html`` in ``output_dir`` (or ``report.html.asc`` for the recipients)."""
    progress("reading the store's counts")
    summary = summary_of(settings, breach_id)
    progress("rendering the page")
    page = render_report(summary).encode("utf-8")
    progress("encrypting and signing" if encrypt_to else "writing")
    return hand_over(settings, page, output_dir / name, encrypt_to), summary


def refresh_register(
    settings: Settings, *, progress: Progress = _noop
) -> list[tuple[int, datetime, RegisterEntry]]:
    """Bring every breach's register entry up to date (a new revision when it changed)."""
    with open_store(settings) as store:
        for breach_id in breach_ids(store):
            progress(breach_id)
            entry = register_entry(
                run_summary(store, breach_id), get_breach(store, breach_id).description
            )
            record_entry(
                store,
                breach_id,
                facts=entry.facts,
                effects=entry.effects,
                decisions=entry.decisions,
                remedial_actions=entry.remedial_actions,
                content_sha256=entry.content_sha256,
            )
        return [
            (
                e.revision,
                e.recorded_at,
                RegisterEntry(e.breach_id, e.facts, e.effects, e.decisions, e.remedial_actions),
            )
            for e in latest_entries(store)
        ]


@dataclass(frozen=True)
class RegisterExport:
    path: Path
    breaches: int
    not_notified: int  # breaches where the CNIL decision is not "yes"


def export_register(
    settings: Settings,
    fmt: RegisterFormat,
    output: Path,
    *,
    encrypt_to: Sequence[Path] = (),
    progress: Progress = _noop,
) -> RegisterExport:
    """Refresh the register, then export its latest entries (CSV cells neutralised)."""
    entries = refresh_register(settings, progress=progress)
    data = register_csv(entries) if fmt == "csv" else register_json(entries)
    path = hand_over(settings, data, output, encrypt_to)
    not_notified = sum(1 for _, _, e in entries if e.decisions["notify_cnil"]["value"] != "yes")
    return RegisterExport(path=path, breaches=len(entries), not_notified=not_notified)
