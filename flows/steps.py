"""The breach response's steps as plain functions: each wires connectors, matching and notify.

Prefect tasks and CLI commands both call these; they open the store, do one step, close it,
and return counts only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from pathlib import Path

import polars as pl

from connectors import (
    ROW,
    Artifact,
    Table,
    acquire_path,
    detect_roles,
    parse_artifact,
    read_customers,
)
from connectors.acquire import AcquireOptions, Refusal, acquire
from core import crash
from core.errors import InputError
from core.settings import Settings
from flows.context import Runtime, open_store
from matching import customers as customer_store
from matching import fastscan, leaks
from matching.customer_filter import CustomerFilter, filter_for_ingest
from matching.exports import ExportFormat, exposures_frame, write_exposures
from matching.link import link
from matching.snapshot import take_snapshot
from matching.store import Store
from matching.summary import run_summary
from notify.plan import DraftReport
from notify.report import write_report

__all__ = [
    "IngestReport",
    "draft_notices",
    "export_exposures",
    "ingest_source",
    "link_threads",
    "load_customer_file",
    "match_breach",
    "write_run_report",
]

ROLE_SAMPLE_ROWS = 2_000


@dataclass
class IngestReport:
    source: str
    artifacts: int = 0
    skipped_known: int = 0
    rows_read: int = 0
    rows_rejected: int = 0
    values_rejected: int = 0
    keys: int = 0
    errors: list[str] = field(default_factory=list)


def _acquire(rt: Runtime, source: str, password: str | None) -> Iterator[Artifact | Refusal]:
    """Artifacts lazily, archives expanded: an extracted member's file lives until the next one."""
    options = AcquireOptions(work_dir=rt.settings.work_dir, settings=rt.settings, password=password)
    return acquire(source, options)


def load_customer_file(rt: Runtime, path: Path) -> customer_store.CustomerLoadReport:
    table = read_customers(path, batch_rows=rt.settings.batch_rows, work_dir=rt.settings.work_dir)
    artifact = next(acquire_path(path))
    with open_store(rt.settings) as store:
        take_snapshot(store, "customers-load", keep=rt.settings.snapshot_keep)
        return customer_store.load_customers(
            store,
            table.batches(),
            rt.pepper,
            file=str(path),
            sha256=artifact.sha256,
            default_region=rt.settings.default_region,
        )


def _record_rejects(table: Table) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "row": [r.row for r in table.rejects],
            "column": [r.column for r in table.rejects],
            "reason": [r.reason for r in table.rejects],
        },
        schema={"row": pl.UInt64, "column": pl.String, "reason": pl.String},
    )


def _ingest_table(
    rt: Runtime,
    store: Store,
    artifact_no: int,
    table_no: int,
    table: Table,
    overrides: Mapping[str, str],
    customer_filter: Future[CustomerFilter | None],
) -> leaks.TableCounts:
    layout = table.layout
    native = (
        rt.settings.native_scan
        and layout is not None
        and table.head is not None
        and fastscan.can_scan(layout.encoding, layout.dialect)
    )
    batches: Iterator[pl.DataFrame] = iter(())
    if native:
        assert table.head is not None
        # the rows the other path samples: its first batch's first ROLE_SAMPLE_ROWS
        sample: pl.DataFrame | None = table.head(min(ROLE_SAMPLE_ROWS, rt.settings.batch_rows))
    else:
        batches = table.batches()
        first = next(batches, None)
        sample = first.head(ROLE_SAMPLE_ROWS) if first is not None else None
        if first is not None:
            batches = chain([first], batches)
    decisions = detect_roles(
        table.columns,
        sample.drop(ROW) if sample is not None else pl.DataFrame(),
        has_header=table.has_header,
        overrides=overrides,
    )
    roles = {d.column: d.category for d in decisions}
    if native:
        assert layout is not None
        counts = leaks.ingest_normalised(
            store,
            artifact_no,
            table_no,
            fastscan.scan_normalised(
                layout.path,
                encoding=layout.encoding,
                dialect=layout.dialect,
                roles=roles,
                default_region=rt.settings.default_region,
                batch_rows=rt.settings.batch_rows,
                table=table,
                pepper=rt.pepper,
            ),
            rt.pepper,
            customer_filter,
        )
    else:
        counts = leaks.ingest_batches(
            store,
            artifact_no,
            table_no,
            batches,
            roles,
            rt.pepper,
            default_region=rt.settings.default_region,
            customer_filter=customer_filter,
        )
    leaks.record_table(
        store,
        artifact_no,
        table_no,
        name=table.name,
        parser=table.parser,
        encoding=table.encoding,
        has_header=table.has_header,
        roles={
            d.column: {
                "category": d.category.value if d.category else None,
                "source": d.source,
                "confidence": round(d.confidence, 3),
            }
            for d in decisions
        },
        rows_read=table.rows_read,
        record_rejects=_record_rejects(table),
    )
    return counts


def ingest_source(
    rt: Runtime,
    source: str,
    breach_id: str,
    overrides: Mapping[str, str] | None = None,
    password: str | None = None,
) -> IngestReport:
    """Acquire every artifact of a source and store it; a refused artifact does not stop the rest."""
    report = IngestReport(source=source)
    if rt.settings.native_scan:
        fastscan.warm_up()  # while the first file is sniffed
    with open_store(rt.settings) as store, ExitStack() as stack:
        take_snapshot(store, "ingest", keep=rt.settings.snapshot_keep)
        leaks.ensure_breach(store, breach_id, regime=rt.settings.regime)
        filter_reader = ThreadPoolExecutor(1, thread_name_prefix="leakwatch-filter")
        stack.callback(filter_reader.shutdown)
        customer_filter = filter_for_ingest(store, filter_reader)
        for artifact in _acquire(rt, source, password):
            crash.point("ingest-after-download")
            if isinstance(artifact, Refusal):
                leaks.record_refusal(
                    store, breach_id, artifact.source, artifact.inner_path, artifact.reason
                )
                report.errors.append(f"{artifact.display}: {artifact.reason}")
                continue
            # A file being hashed whose size the breach has never held is new content: it is
            # ingested while it is hashed. Otherwise the digest is waited for (or known), to
            # skip content already ingested.
            unhashed = artifact.digest.background and not leaks.may_hold(
                store, breach_id, artifact.size
            )
            try:
                sha256_now = "" if unhashed else artifact.sha256
            except InputError as exc:  # the file could not be hashed
                leaks.record_refusal(
                    store, breach_id, artifact.source, artifact.inner_path, exc.reason
                )
                report.errors.append(str(exc))
                continue
            facts = _facts(breach_id, artifact, sha256_now)
            if unhashed:
                number = leaks.begin_unhashed(store, facts)
            else:
                begun = leaks.begin_artifact(store, facts)
                if begun is None:
                    report.skipped_known += 1
                    continue
                number = begun
            report.artifacts += 1
            parser: str | None = None
            rows_read = rows_rejected = 0
            try:
                for table_no, table in enumerate(
                    parse_artifact(
                        artifact,
                        batch_rows=rt.settings.batch_rows,
                        work_dir=rt.settings.work_dir,
                    )
                ):
                    parser = table.parser
                    counts = _ingest_table(
                        rt, store, number, table_no, table, overrides or {}, customer_filter
                    )
                    rows_read += table.rows_read
                    rows_rejected += len(table.rejects)
                    report.values_rejected += counts.values_rejected
                    report.keys += counts.keys
                sha256 = artifact.sha256 if unhashed else None
            except InputError as exc:
                leaks.fail_artifact(
                    store, number, error=str(exc), parser=parser, sha256=_digest_if_any(artifact)
                )
                report.errors.append(str(exc))
                continue
            leaks.finish_artifact(
                store,
                number,
                parser=parser or "none",
                rows_read=rows_read,
                rows_rejected=rows_rejected,
                sha256=sha256,
            )
            report.rows_read += rows_read
            report.rows_rejected += rows_rejected
    return report


def _facts(breach_id: str, artifact: Artifact, sha256: str) -> leaks.ArtifactFacts:
    return leaks.ArtifactFacts(
        breach_id=breach_id,
        source=artifact.source,
        sha256=sha256,
        size=artifact.size,
        media_type=artifact.media_type,
        acquired_at=artifact.acquired_at,
        inner_path=artifact.inner_path,
        telegram=artifact.telegram,
    )


def _digest_if_any(artifact: Artifact) -> str | None:
    """The artifact's SHA-256 for a failed artifact's record; None if it could not be read."""
    try:
        return artifact.sha256
    except InputError:
        return None


def match_breach(rt: Runtime, breach_id: str) -> int:
    with open_store(rt.settings) as store:
        take_snapshot(store, "match", keep=rt.settings.snapshot_keep)
        with store.threads(link_threads(rt.settings, store)):
            return link(store, breach_id, shards=rt.settings.shards).exposed


def link_threads(settings: Settings, store: Store) -> int:
    """DuckDB's threads for the link: ``duckdb_link_threads``, else one more than the store's.

    With one thread more than the cores, DuckDB's join and grouping do less work in a process
    that has not run a query of that size before, such as ``leakwatch match``: on the 20 M
    bench store (2 cores), in fresh processes, the link took 4.1-4.5 s against 5.3-5.8 s, and
    8.3-9.0 s of CPU against 10.2-11.3 s (5 pairs, interleaved). After the ingest, in the same
    process (the bench's run, the breach-response flow), no gain: the match 4.1-4.6 s either
    way (medians 4.33 and 4.31 s, 5 pairs), and medians 4.63 against 4.48 s in 7 pairs on a
    noisier machine. The ingest is not given more: with three threads it took 0.3-0.7 s
    longer, DuckDB's insert competing with the scanner and the hashing.
    """
    return settings.duckdb_link_threads or store.thread_count() + 1


def export_exposures(rt: Runtime, breach_id: str, path: Path, fmt: ExportFormat) -> int:
    with open_store(rt.settings, read_only=True) as store:
        frame = exposures_frame(store, breach_id)
    write_exposures(frame, path, fmt)
    return frame.height


def draft_notices(
    rt: Runtime, breach_id: str, outbox: Path, *, detected_at: datetime | None = None
) -> DraftReport:
    """Plan a notice per exposed customer and write each e-mail one to the outbox as ``.eml``."""
    from flows.notify_steps import draft_to_outbox  # one send loop for drafting and sending

    return draft_to_outbox(rt.settings, breach_id, outbox, detected_at=detected_at)


def write_run_report(rt: Runtime, breach_id: str, path: Path) -> Path:
    with open_store(rt.settings, read_only=True) as store:
        summary = run_summary(store, breach_id)
    return write_report(summary, path)
