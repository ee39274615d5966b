"""One writer: two real ``leakwatch`` processes on one store wait for each other; nothing is lost or doubled."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.settings import Settings
from flows import steps
from flows.context import Runtime, open_store, runtime
from matching.breaches import confirm_breach
from notify.fake_sendgrid import FakeSendGrid
from reliability.storecheck import store_state
from synthetic import make_customers, make_leak, write_delimited, write_jsonl

LEAKWATCH = str(Path(sys.executable).parent / "leakwatch")
BREACH = "one-writer"


class _Holder:
    """Another process holding the store's write lock until released."""

    def __init__(self, store: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True);"
                " sys.stdin.read(); c.close()",
                str(store),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [LEAKWATCH, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _sources(tmp_path: Path) -> tuple[Path, list[str]]:
    customers = make_customers(400, seed=51)
    customers.write_csv(tmp_path / "customers.csv")
    leak = make_leak(customers, 2_400, overlap=0.5, seed=52).frame
    write_delimited(leak.head(1_400), tmp_path / "a.csv", delimiter=";")
    write_jsonl(leak.slice(1_400), tmp_path / "b.jsonl")
    return tmp_path / "customers.csv", [str(tmp_path / "a.csv"), str(tmp_path / "b.jsonl")]


@pytest.mark.slow
def test_two_ingests_at_once_wait_and_equal_a_serial_run(
    leakwatch_env: Path, tmp_path: Path
) -> None:
    customers, sources = _sources(tmp_path)
    rt = runtime(Settings())
    steps.load_customer_file(rt, customers)

    serial = Runtime(
        settings=Settings(store=tmp_path / "serial" / "s.duckdb", work_dir=tmp_path / "sw"),
        pepper=rt.pepper,
    )
    steps.load_customer_file(serial, customers)
    for source in [*sources, *sources]:
        steps.ingest_source(serial, source, BREACH)

    holder = _Holder(rt.settings.store)  # both start while the store is taken: both must wait
    env = {**os.environ, "LEAKWATCH_STORE_WAIT_S": "120"}
    first = _start(env, "ingest", *sources, "--breach", BREACH)
    second = _start(env, "ingest", *reversed(sources), "--breach", BREACH)
    time.sleep(1.0)  # not an assertion: gives both a chance to hit the lock
    holder.release()
    for proc in (first, second):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err

    got, want = store_state(rt.settings.store), store_state(serial.settings.store)
    assert got["counts"] == want["counts"]
    assert got["leak_keys"] == want["leak_keys"]
    assert got["counts"]["artifacts_done"] == 2  # each file once, whoever came second skipped it


def test_a_busy_store_stops_with_a_clear_message(leakwatch_env: Path, tmp_path: Path) -> None:
    customers, sources = _sources(tmp_path)
    steps.load_customer_file(runtime(Settings()), customers)
    holder = _Holder(Settings().store)
    try:
        done = subprocess.run(
            [LEAKWATCH, "ingest", sources[0], "--breach", BREACH],
            env={**os.environ, "LEAKWATCH_STORE_WAIT_S": "0.5"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        holder.release()
    assert done.returncode == 1
    assert "in use by another leakwatch process" in done.stderr
    assert "gave up after waiting 0.5 s" in done.stderr


@pytest.mark.slow
def test_two_senders_at_once_notify_each_customer_once(leakwatch_env: Path, tmp_path: Path) -> None:
    customers, sources = _sources(tmp_path)
    rt = runtime(Settings())
    steps.load_customer_file(rt, customers)
    steps.ingest_source(rt, sources[0], BREACH)
    exposed = steps.match_breach(rt, BREACH)
    with open_store(rt.settings) as store:
        confirm_breach(store, BREACH)
    with FakeSendGrid() as fake:
        env = {
            **os.environ,
            "LEAKWATCH_STORE_WAIT_S": "120",
            "LEAKWATCH_SENDGRID_API_KEY": fake.api_key,
            "LEAKWATCH_SENDGRID_HOST": fake.url,
        }
        holder = _Holder(rt.settings.store)
        procs = [_start(env, "notify", "customers", "--breach", BREACH) for _ in range(2)]
        time.sleep(1.0)
        holder.release()
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
        per_notice = fake.sends_per_notice()
    assert per_notice and set(per_notice.values()) == {1}
    assert len(per_notice) <= exposed
