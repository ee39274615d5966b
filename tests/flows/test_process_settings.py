"""Process-wide settings taken when the flows are imported, before any library reads them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_PROBE = (
    "import os, flows.cli, numpy; "
    "print(os.environ['OPENBLAS_NUM_THREADS'], len(os.listdir('/proc/self/task')))"
)


def _probe(**env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    value, threads = done.stdout.split()
    return value, int(threads)


def test_openblas_runs_one_thread_unless_told_otherwise() -> None:
    value, threads = _probe()
    assert value == "1"
    told, more_threads = _probe(OPENBLAS_NUM_THREADS="2")
    assert told == "2"  # a value already set is kept, and OpenBLAS obeys it
    assert more_threads == threads + 1
