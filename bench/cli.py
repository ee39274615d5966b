"""The bench run: inputs, then leakwatch, the peer, the limit, customer loading and notices."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from bench.data import BREACH_ID, Inputs, inputs_apart, size_name, truth

__all__ = ["RESULT_KEYS", "BenchResult", "main"]

RESULT_KEYS = (
    "rows",
    "leakwatch_s",
    "leakwatch_rows_per_s",
    "peak_rss_mb",
    "peer_s",
    "limit_s",
    "speedup_vs_peer",
    "ratio_to_limit",
    "customers_load_s",
    "notices_per_s",
    "peer_extrapolated",
    "customers",
)
PEER_SAMPLE_ROWS = 200_000
NOTICES_CAP = 20_000  # per-second is what counts; the outbox writes one file per notice
# Runs' outboxes are set aside here and never deleted by a run: see _set_aside.
OUTBOXES = "outboxes"
DEFAULT_OUT = Path("bench-output")  # make bench-clean deletes its outboxes


@dataclass(frozen=True)
class BenchResult:
    """The last line of the bench's output (RESULT_KEYS, in that order)."""

    rows: int
    leakwatch_s: float
    leakwatch_rows_per_s: float
    peak_rss_mb: float
    peer_s: float
    limit_s: float
    speedup_vs_peer: float
    ratio_to_limit: float
    customers_load_s: float
    notices_per_s: float
    peer_extrapolated: bool
    customers: int


class ExposuresMismatch(SystemExit):
    """leakwatch's exposures differ from the synthetic truth: the run measured nothing valid."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000, help="customers and leaked rows")
    p.add_argument(
        "--leak-rows",
        type=int,
        default=None,
        help="leaked rows, when not as many as --rows (the customers)",
    )
    p.add_argument(
        "--peer-max-rows",
        type=int,
        default=2_000_000,
        help="above this, the peer runs on a sample and is extrapolated (and says so)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--notices-cap", type=int, default=NOTICES_CAP, help="notices to render (0: skip)"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--keep", action="store_true", help="keep the run's store and outbox")
    return p


def _child(step: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run one measured step in a fresh interpreter; its last stdout line is its JSON report."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.child", *step],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench: step {step[0]!r} failed with status {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _check_exposures(store: Path, want: pl.DataFrame) -> int:
    """The number of exposures; raises ExposuresMismatch unless they equal the truth exactly."""
    from matching.exports import exposures_frame
    from matching.store import Store

    with Store(store, read_only=True) as s:
        got = exposures_frame(s, BREACH_ID).select("customer_id", "matched_on", "categories")
    want = want.sort("customer_id")
    got = got.sort("customer_id")
    if not got.equals(want):
        missing = want.join(got, on="customer_id", how="anti").height
        unexpected = got.join(want, on="customer_id", how="anti").height
        differing = (
            got.join(want, on="customer_id", suffix="_want")
            .filter(
                (pl.col("matched_on") != pl.col("matched_on_want"))
                | (pl.col("categories") != pl.col("categories_want"))
            )
            .height
        )
        raise ExposuresMismatch(
            f"bench: EXPOSURES DIFFER FROM THE SYNTHETIC TRUTH: {got.height} found, "
            f"{want.height} expected; {missing} missed, {unexpected} unexpected, "
            f"{differing} with other keys or categories"
        )
    return got.height


def _env(run: Path, pepper: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LEAKWATCH_STORE=str(run / "store" / "leakwatch.duckdb"),
        LEAKWATCH_WORK_DIR=str(run / "work"),
        LEAKWATCH_PEPPER=pepper,
        LEAKWATCH_PEPPER_KEY_ID="bench",
        # A snapshot copies the whole store before each step: an operational safeguard the
        # operator may turn off, measured apart from the pipeline (README, bench table).
        LEAKWATCH_SNAPSHOT_KEEP=os.environ.get("LEAKWATCH_SNAPSHOT_KEEP", "0"),
    )
    return env


def _from_disk(*paths: Path) -> None:
    """Drop the files' pages from the page cache, so that the next step reads them from disk.

    Every measured step starts so: the leak as a file just received, the customer base as a
    store loaded long before. Without it, what a step found cached depended on what ran just
    before it and on the kernel (this machine drops idle file pages after about 30 s), and the
    bare limit read the leak file that leakwatch had just read.
    """
    for path in paths:
        if not path.is_file():
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages stay cached: write them first
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _line(label: str, value: str, note: str = "") -> str:
    return f"  {label:<38} {value:>14}  {note}"


def measure(args: argparse.Namespace) -> tuple[BenchResult, list[str]]:
    """Run every measurement; returns the result and the table's lines."""
    from bench.limit import run_limit
    from bench.notices import NoticesResult
    from bench.peer import run_peer
    from matching.keyed_hash import Pepper

    out: Path = args.out.resolve()
    run = out / "run"
    leak_rows: int = args.rows if args.leak_rows is None else args.leak_rows
    _set_aside(run / "outbox", out / OUTBOXES / _kept_name(args.rows, leak_rows))  # a kept run's
    shutil.rmtree(run, ignore_errors=True)
    data: Inputs = inputs_apart(out / "cache", args.rows, args.seed, leak_rows)
    run.mkdir(parents=True)
    pepper = Pepper.generate("bench")
    env = _env(run, pepper.to_text())
    load1 = os.getloadavg()[0]

    store = Path(env["LEAKWATCH_STORE"])
    _from_disk(data.customers)
    loaded = _child(["load", str(data.customers)], env)
    _from_disk(data.leak, store, store.with_name(store.name + ".wal"))
    ran = _child(["run", str(data.leak), BREACH_ID], env)
    exposed = _check_exposures(store, truth(data))

    limit = run_limit(data.leak, store, before=lambda: _from_disk(data.leak))

    extrapolated = max(args.rows, leak_rows) > args.peer_max_rows
    sample = min(args.rows, leak_rows, PEER_SAMPLE_ROWS) if extrapolated else None
    _from_disk(data.customers, data.leak)
    peer = run_peer(data.customers, data.leak, pepper.secret, nrows=sample)
    peer_s = peer.leak_s * leak_rows / peer.rows if extrapolated else peer.leak_s

    notices = None
    if args.notices_cap > 0:
        _child(["plan"], env)
        drafted = _child(["notices", str(run / "outbox"), str(args.notices_cap)], env)
        notices = NoticesResult(int(drafted["notices"]), float(drafted["notices_s"]))
    load2 = os.getloadavg()[0]

    leak_s = float(ran["total_s"])
    result = BenchResult(
        rows=leak_rows,
        leakwatch_s=round(leak_s, 3),
        leakwatch_rows_per_s=round(leak_rows / leak_s),
        peak_rss_mb=round(float(ran["peak_rss_mb"]), 1),
        peer_s=round(peer_s, 3),
        limit_s=round(limit.total_s, 3),
        speedup_vs_peer=round(peer_s / leak_s, 2),
        ratio_to_limit=round(leak_s / limit.total_s, 2),
        customers_load_s=round(float(loaded["load_s"]), 3),
        notices_per_s=round(notices.per_s) if notices else 0.0,
        peer_extrapolated=extrapolated,
        customers=args.rows,
    )
    generated = (
        f"generated in {data.generated_s:.1f} s" if data.generated_s is not None else "cached"
    )
    peer_note = (
        f"EXTRAPOLATED from a {peer.rows:,}-row sample ({peer.leak_s:.2f} s)"
        if extrapolated
        else f"{peer.exposed:,} exposed (its own rules)"
    )
    table = [
        f"leakwatch bench: {args.rows:,} customers x {leak_rows:,} leaked rows "
        f"(seed {args.seed}, inputs {generated}: {data.folder})",
        f"  load average {load1:.2f} at start, {load2:.2f} at end, {os.cpu_count()} CPUs",
        _line(
            "(a) leakwatch: leak file -> exposures",
            f"{leak_s:.2f} s",
            f"{result.leakwatch_rows_per_s:,} rows/s, {ran['cpu_s']:.2f} s of CPU",
        ),
        _line(
            "      ingest (read, normalise, hash)",
            f"{ran['ingest_s']:.2f} s",
            f"{ran['keys']:,} keys, {ran['values_rejected']:,} values refused",
        ),
        _line(
            "      match (link, exposures)",
            f"{ran['match_s']:.2f} s",
            f"{exposed:,} exposed = synthetic truth: OK",
        ),
        _line(
            "      peak RSS of the process",
            f"{ran['peak_rss_mb']:.0f} MB",
            f"(interpreter + imports: {ran['rss_before_mb']:.0f} MB; "
            f"DuckDB's limit {ran['duckdb_memory_limit']})",
        ),
        _line("(b) naive peer: leak file -> exposures", f"{peer_s:.2f} s", peer_note),
        _line(
            "      its customer side (not counted)",
            f"{peer.customers_s:.2f} s",
            f"on {peer.rows:,} rows",
        ),
        _line(
            "(c) bare limit",
            f"{limit.total_s:.2f} s",
            f"read {limit.read_s:.2f} s + join {limit.join_s:.2f} s",
        ),
        _line(
            "(d) customer loading",
            f"{loaded['load_s']:.2f} s",
            f"peak RSS {loaded['peak_rss_mb']:.0f} MB",
        ),
        _line(
            "(e) notices rendered into the outbox",
            f"{notices.per_s:,.0f} /s",
            f"{notices.notices:,} notices in {notices.seconds:.2f} s",
        )
        if notices
        else _line("(e) notices rendered into the outbox", "skipped", "--notices-cap 0"),
        _line(
            "speed-up vs peer",
            f"{result.speedup_vs_peer:.1f} x",
            "extrapolated" if extrapolated else "",
        ),
        _line("ratio to the bare limit", f"{result.ratio_to_limit:.2f} x"),
    ]
    if not args.keep:
        _set_aside(run / "outbox", out / OUTBOXES / _kept_name(args.rows, leak_rows))
        shutil.rmtree(run, ignore_errors=True)
    return result, table


def _kept_name(rows: int, leak_rows: int) -> str:
    """A name for an outbox set aside: when, at which size, by which run (one per run)."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{size_name(rows, leak_rows)}-{os.getpid()}"


def _set_aside(outbox: Path, kept: Path) -> None:
    """Keep the run's outbox as ``kept`` instead of deleting it now.

    On ext4 without a journal (this machine's root), the kernel's inode allocator skips and
    reads every inode of the block group freed in the last minute, or in the last six while
    its table block is dirty, which new files next to it make it: files created within minutes
    of many being deleted cost several times the kernel time. 20 000 notices deleted at the
    end of a run made the next one, started right after, draft at 3 900-9 400/s instead of
    15 500/s. Old outboxes deleted at a run's start still slowed its drafting 100 s later
    (12 782/s at 1 M), and 60 000 files deleted, synced and left 70 s took a drafting of
    20 000 notices from 22 671/s to 13 577/s (its kernel time 0.68 s to 1.91 s, a fifth of it
    in ``recently_deleted``). So no run deletes an outbox: each sets its own aside when it
    ends (a run kept with ``--keep``: when the next starts), and ``make bench-clean`` deletes
    them, at a moment of the user's choosing.
    """
    if outbox.is_dir():
        kept.parent.mkdir(parents=True, exist_ok=True)
        outbox.rename(kept)


def _kept_outboxes(outboxes: Path) -> tuple[int, int]:
    """How many outboxes are set aside, and their bytes on disk."""
    count = size = 0
    if outboxes.is_dir():
        for kept in outboxes.iterdir():
            if not kept.is_dir():
                continue
            count += 1
            with os.scandir(kept) as files:
                size += sum(f.stat(follow_symlinks=False).st_blocks * 512 for f in files)
    return count, size


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if (
        args.rows < 1
        or args.peer_max_rows < 1
        or (args.leak_rows is not None and args.leak_rows < 1)
    ):
        raise SystemExit("bench: --rows, --leak-rows and --peer-max-rows must be positive")
    started = time.perf_counter()
    result, table = measure(args)
    print("\n".join(table))
    print(f"  (whole bench: {time.perf_counter() - started:.0f} s)")
    outboxes = args.out / OUTBOXES
    kept, size = _kept_outboxes(outboxes.resolve())
    if kept:
        how = "make bench-clean deletes them" if outboxes == DEFAULT_OUT / OUTBOXES else "delete it"
        print(f"  (outboxes set aside: {kept}, {size / 1e6:,.0f} MB in {outboxes}; {how})")
    print(json.dumps(asdict(result)), flush=True)
    return 0
