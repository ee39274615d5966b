"""Real Prefect operations: a server on loopback, a process work pool, `prefect deploy --all`,
a breach response launched with `prefect deployment run` and executed by a worker."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from synthetic import make_customers, make_leak, write_delimited

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")
STARTUP_S = 180  # a safety limit for a cold server on a busy CI machine, not an assertion


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`prefect server start` on a free loopback port with its own PREFECT_HOME."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        # Only the run launched below: scheduled deployments must not add runs of their own.
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert proc.poll() is None, (home / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the Prefect server did not start"
            time.sleep(0.5)
        yield {**env, "PREFECT_API_URL": api}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _prefect(env: dict[str, str], *args: str, timeout: int = 300) -> str:
    done = subprocess.run(
        [PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_deploy_launch_and_run_with_a_worker(
    server: dict[str, str], leakwatch_env: Path, tmp_path: Path
) -> None:
    customers = make_customers(300, seed=41)
    customers.write_csv(tmp_path / "customers.csv")
    (tmp_path / "leak").mkdir()
    write_delimited(
        make_leak(customers, 200, overlap=0.5, seed=42).frame, tmp_path / "leak" / "a.csv"
    )
    out = tmp_path / "out"
    env = {
        **server,
        "LEAKWATCH_HOME": str(ROOT),  # the deployments' pull step: the worker runs flows here
        "LEAKWATCH_STORE": os.environ["LEAKWATCH_STORE"],
        "LEAKWATCH_WORK_DIR": os.environ["LEAKWATCH_WORK_DIR"],
        "LEAKWATCH_PEPPER": os.environ["LEAKWATCH_PEPPER"],
        "LEAKWATCH_BATCH_ROWS": "1000",
    }

    _prefect(env, "work-pool", "create", "leakwatch", "--type", "process")
    deployed = _prefect(env, "--no-prompt", "deploy", "--all")
    for name in ("breach-response", "watch-sources", "events-sync", "daily-report"):
        assert name in deployed
    launched = _prefect(
        env,
        "deployment",
        "run",
        "breach-response/breach-response",
        "--param",
        "breach_id=deployed-breach",
        "--param",
        f"sources={json.dumps([str(tmp_path / 'leak')])}",
        "--param",
        f"customers={tmp_path / 'customers.csv'}",
        "--param",
        f"output_dir={out}",
    )
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", launched)
    assert match, launched
    run_id = match.group(1)
    _prefect(env, "worker", "start", "--pool", "leakwatch", "--type", "process", "--run-once")

    api = server["PREFECT_API_URL"]
    deadline = time.monotonic() + STARTUP_S
    while True:  # the worker has returned; the API records the final state just after
        run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        assert time.monotonic() < deadline, run["state"]
        time.sleep(1)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert set(run["parameters"]) == {"breach_id", "sources", "customers", "output_dir"}

    assert (out / "report.html").stat().st_size > 0
    assert (out / "exposures.csv").read_text().startswith("customer_id,")
    assert list((out / "outbox").glob("*.eml"))

    artifacts = httpx.post(
        f"{api}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [run_id]}}},
        timeout=10,
    ).json()
    by_type = {(a["type"], a.get("key")) for a in artifacts}
    assert ("markdown", "breach-response-summary") in by_type
    assert ("table", "breach-response-counts") in by_type
    progress = [a for a in artifacts if a["type"] == "progress"]
    assert progress and float(progress[0]["data"]) == 100.0
    # Counts only: no customer identifier in what Prefect keeps.
    kept = json.dumps(artifacts) + json.dumps(run)
    for cid, email in customers.select("customer_id", "email").iter_rows():
        assert cid not in kept and (not email or email not in kept)
