"""Test-wide set-up: offline Prefect, no analytics, a fresh pepper per session."""

from __future__ import annotations

import os

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server and database for the whole test session (~20 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def leakwatch_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private store, work folder and pepper for one test, through the environment."""
    from matching.keyed_hash import Pepper

    monkeypatch.setenv("LEAKWATCH_STORE", str(tmp_path / "store" / "leakwatch.duckdb"))
    monkeypatch.setenv("LEAKWATCH_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("LEAKWATCH_PEPPER", Pepper.generate().to_text())
    monkeypatch.setenv("LEAKWATCH_BATCH_ROWS", "1000")
    return tmp_path


@pytest.fixture
def two_file_breach(leakwatch_env: Path) -> Callable[..., None]:
    """Build breach "b": a customer base and its leak twice, in two files of different shapes.

    The same rows in two artifacts give customers matched through several keys and rows.
    """

    def build(customers: int = 800, repeated: int = 300, seed: int = 11) -> None:
        from flows import steps
        from flows.context import runtime
        from synthetic import make_customers, make_leak, write_delimited

        base = make_customers(customers, seed=seed)
        leak = make_leak(base, customers, overlap=0.4, seed=seed + 1)
        base.write_csv(leakwatch_env / "customers.csv")
        write_delimited(leak.frame, leakwatch_env / "a.csv", delimiter=";")
        write_delimited(leak.frame.head(repeated), leakwatch_env / "b.csv", delimiter=",")
        rt = runtime()
        steps.load_customer_file(rt, leakwatch_env / "customers.csv")
        steps.ingest_source(rt, str(leakwatch_env / "a.csv"), "b")
        steps.ingest_source(rt, str(leakwatch_env / "b.csv"), "b")

    return build
