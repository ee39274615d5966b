"""Snapshots before each run that changes the store, the last N kept, and a restore that waits for nobody."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from core.settings import Settings
from flows import steps
from flows.context import runtime
from matching.snapshot import snapshots
from synthetic import make_customers, make_leak, write_delimited

LEAKWATCH = str(Path(sys.executable).parent / "leakwatch")


def _count(path: Path, sql: str) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute(sql).fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def test_snapshots_are_taken_kept_and_restored(
    leakwatch_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAKWATCH_SNAPSHOT_KEEP", "3")
    rt = runtime(Settings())
    customers = make_customers(300, seed=41)
    customers.write_csv(tmp_path / "customers.csv")
    write_delimited(make_leak(customers, 200, overlap=0.5, seed=42).frame, tmp_path / "leak.csv")
    steps.load_customer_file(rt, tmp_path / "customers.csv")
    steps.ingest_source(rt, str(tmp_path / "leak.csv"), "S")
    exposed = steps.match_breach(rt, "S")
    assert exposed > 0
    store = rt.settings.store
    taken = snapshots(store)
    assert [s.step for s in taken] == ["customers-load", "ingest", "match"]
    # The snapshot before matching holds the leak but no exposures yet.
    before_match = taken[-1].path
    assert _count(before_match, "SELECT count(*) FROM leak_keys") > 0
    assert _count(before_match, "SELECT count(*) FROM exposures") == 0

    steps.match_breach(rt, "S")
    assert [s.step for s in snapshots(store)] == ["ingest", "match", "match"]  # last 3 kept

    done = subprocess.run(
        [LEAKWATCH, "store", "restore", str(before_match)],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert _count(store, "SELECT count(*) FROM exposures") == 0
    assert steps.match_breach(rt, "S") == exposed  # the restored store works


def test_restore_is_refused_while_another_process_holds_the_store(
    leakwatch_env: Path, tmp_path: Path
) -> None:
    rt = runtime(Settings())
    customers = make_customers(50, seed=43)
    customers.write_csv(tmp_path / "customers.csv")
    steps.load_customer_file(rt, tmp_path / "customers.csv")
    steps.load_customer_file(rt, tmp_path / "customers.csv")
    snap = snapshots(rt.settings.store)[-1].path
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
            "sys.stdin.read()",
            str(rt.settings.store),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        done = subprocess.run(
            [LEAKWATCH, "store", "restore", str(snap)],
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    assert done.returncode == 1
    assert "restore refused" in done.stderr and "in use by another leakwatch process" in done.stderr
    assert _count(rt.settings.store, "SELECT count(*) FROM customer_loads") == 2  # untouched
