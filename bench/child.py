"""The measured leakwatch steps, each in a fresh process so its peak memory is its own.

``python -m bench.child load CUSTOMERS``, ``run LEAK BREACH``, ``plan`` (the bench breach's
notices) or ``notices OUTBOX CAP``; settings (store, work folder, pepper, batch size…) come
from ``LEAKWATCH_*`` like any leakwatch command.
Prints one JSON line: the step's seconds, its counts, and the process's peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _peak_rss_mb() -> float:
    """This process's peak resident set (MB).

    VmHWM belongs to this process's own memory map. ru_maxrss does not: Linux carries the
    peak of the parent's map over fork and exec, so a bench that had just generated its
    inputs (10 GB at 10 M rows) reported that as the child's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> dict[str, Any]:
    imported = time.perf_counter()
    from flows import steps
    from flows.context import runtime

    rt = runtime()
    ready = time.perf_counter()
    cpu = _cpu_s()
    out: dict[str, Any] = {
        "import_s": ready - imported,
        "rss_before_mb": _peak_rss_mb(),
        "duckdb_memory_limit": rt.settings.duckdb_memory_limit,
    }
    if argv[0] == "load":
        report = steps.load_customer_file(rt, Path(argv[1]))
        out["load_s"] = time.perf_counter() - ready
        out["inserted"] = report.inserted
        out["rows_rejected"] = report.rows_rejected
    elif argv[0] == "run":
        ingest = steps.ingest_source(rt, argv[1], argv[2])
        ingested = time.perf_counter()
        exposed = steps.match_breach(rt, argv[2])
        done = time.perf_counter()
        if ingest.errors:
            raise SystemExit(f"ingestion failed: {ingest.errors}")
        out.update(
            ingest_s=ingested - ready,
            match_s=done - ingested,
            total_s=done - ready,
            rows_read=ingest.rows_read,
            rows_rejected=ingest.rows_rejected,
            values_rejected=ingest.values_rejected,
            keys=ingest.keys,
            exposed=exposed,
        )
    elif argv[0] == "plan":
        from bench.notices import plan

        out["planned"] = plan(rt.settings)
        out["plan_s"] = time.perf_counter() - ready
    elif argv[0] == "notices":
        from bench.notices import render_notices

        drafted = render_notices(rt.settings, Path(argv[1]), int(argv[2]))
        out["notices"] = drafted.notices
        out["notices_s"] = drafted.seconds
    else:
        raise SystemExit(f"unknown step {argv[0]!r}")
    out["cpu_s"] = _cpu_s() - cpu  # every thread of the process, DuckDB's and polars' included
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
