"""Crash points of ingestion, matching and reports: SIGKILL a real ``leakwatch``, re-run, compare.

Each case builds the same synthetic operator and leak twice: a fault-free reference store (the
steps run in this process) and a store where one ``leakwatch`` command is killed at a named
point (``LEAKWATCH_CRASH_AT``) and then run again. The recovered store must open and hold the
same counts, artifact rows (times left out), leak keys and exposures as the reference.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings
from flows import steps
from flows.context import Runtime
from matching.keyed_hash import Pepper
from reliability.storecheck import store_state
from synthetic import make_customers, make_leak, write_delimited, write_jsonl

__all__ = ["CASES", "CaseResult", "run_case"]

BREACH = "crash-test"
BATCH_ROWS = 1_000
LEAKWATCH = str(Path(sys.executable).parent / "leakwatch")


@dataclass(frozen=True)
class CaseResult:
    point: str
    seed: int
    survived: bool
    detail: str


@dataclass(frozen=True)
class _World:
    root: Path
    pepper: Pepper
    customers: Path
    leak: Path


def _world(root: Path, seed: int) -> _World:
    customers = make_customers(400, seed=seed)
    leak = make_leak(customers, 2_900, overlap=0.5, seed=seed + 1).frame
    folder = root / "leak"
    folder.mkdir(parents=True)
    write_delimited(leak.head(2_500), folder / "a.csv", delimiter=";")  # three batches
    write_jsonl(leak.slice(2_500, 250), folder / "b.jsonl")
    write_delimited(leak.slice(2_750), folder / "c.csv")
    customers.write_csv(root / "customers.csv")
    return _World(root, Pepper.generate(), root / "customers.csv", folder)


def _settings(world: _World, name: str) -> Settings:
    return Settings(
        store=world.root / name / "leakwatch.duckdb",
        work_dir=world.root / name / "work",
        batch_rows=BATCH_ROWS,
        snapshot_keep=1,
        store_wait_s=0,
    )


def _runtime(world: _World, name: str) -> Runtime:
    return Runtime(settings=_settings(world, name), pepper=world.pepper)


def _env(world: _World, name: str) -> dict[str, str]:
    settings = _settings(world, name)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")},
        "LEAKWATCH_STORE": str(settings.store),
        "LEAKWATCH_WORK_DIR": str(settings.work_dir),
        "LEAKWATCH_PEPPER": world.pepper.to_text(),
        "LEAKWATCH_BATCH_ROWS": str(BATCH_ROWS),
        "LEAKWATCH_SNAPSHOT_KEEP": "1",
    }


def _leakwatch(env: dict[str, str], *args: str, crash: str | None = None) -> int:
    run_env = {**env, "LEAKWATCH_CRASH_AT": crash} if crash else env
    done = subprocess.run(
        [LEAKWATCH, *args], env=run_env, capture_output=True, text=True, timeout=300, check=False
    )
    return done.returncode


def _reference(world: _World) -> dict[str, object]:
    rt = _runtime(world, "reference")
    steps.load_customer_file(rt, world.customers)
    steps.ingest_source(rt, str(world.leak), BREACH)
    steps.match_breach(rt, BREACH)
    return store_state(rt.settings.store)


def _ingest_case(world: _World, point: str) -> str | None:
    rt = _runtime(world, "faulted")
    steps.load_customer_file(rt, world.customers)
    env = _env(world, "faulted")
    ingest = ("ingest", str(world.leak), "--breach", BREACH)
    if (rc := _leakwatch(env, *ingest, crash=point)) != -signal.SIGKILL:
        return f"not killed (exit {rc})"
    if (rc := _leakwatch(env, *ingest)) != 0:
        return f"re-run failed (exit {rc})"
    steps.match_breach(rt, BREACH)
    return None


def _match_case(world: _World, point: str) -> str | None:
    rt = _runtime(world, "faulted")
    steps.load_customer_file(rt, world.customers)
    steps.ingest_source(rt, str(world.leak), BREACH)
    steps.match_breach(rt, BREACH)  # a first match, so a crash mid-link has something to lose
    env = _env(world, "faulted")
    if (rc := _leakwatch(env, "match", "--breach", BREACH, crash=point)) != -signal.SIGKILL:
        return f"not killed (exit {rc})"
    if (rc := _leakwatch(env, "match", "--breach", BREACH)) != 0:
        return f"re-run failed (exit {rc})"
    return None


def _report_case(world: _World, point: str) -> str | None:
    rt = _runtime(world, "faulted")
    steps.load_customer_file(rt, world.customers)
    steps.ingest_source(rt, str(world.leak), BREACH)
    steps.match_breach(rt, BREACH)
    env = _env(world, "faulted")
    out = world.root / "report"
    report = ("report", "--breach", BREACH, "--output", str(out))
    if (rc := _leakwatch(env, *report, crash=point)) != -signal.SIGKILL:
        return f"not killed (exit {rc})"
    if (out / "report.html").exists():
        return "a report file appeared although the write was killed before its rename"
    if (rc := _leakwatch(env, *report)) != 0:
        return f"re-run failed (exit {rc})"
    page = (out / "report.html").read_text(encoding="utf-8")
    if not page.rstrip().endswith("</html>"):
        return "the report written on re-run is incomplete"
    return None


# point → (how to run it, which hit to kill at for a seed)
CASES = {
    "ingest-after-download": (_ingest_case, 3),  # three files in the leak folder
    "ingest-mid-batch-commit": (_ingest_case, 3),  # a.csv has three batches
    "match-mid-link": (_match_case, 1),
    "report-mid-write": (_report_case, 1),
}


def run_case(point: str, seed: int, root: Path) -> CaseResult:
    """Kill at ``point`` (the hit chosen by the seed), re-run, compare with a fault-free run."""
    case, hits = CASES[point]
    nth = 1 + seed % hits
    target = f"{point}:{nth}"
    root.mkdir(parents=True, exist_ok=True)
    world = _world(root, seed)
    try:
        expected = _reference(world)
        problem = case(world, target)
        if problem is None:
            got = store_state(_settings(world, "faulted").store)  # the store opens
            diff = [k for k in expected if expected[k] != got[k]]
            problem = f"differs from the fault-free run in {', '.join(diff)}" if diff else None
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return CaseResult(point, seed, problem is None, problem or f"killed at {target}, recovered")
