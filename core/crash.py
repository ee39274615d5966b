"""Named crash points for SIGKILL tests: ``LEAKWATCH_CRASH_AT=<point>[:<n>]`` kills the process there.

A test hook, not a feature: it reads the environment itself so that no code path has to carry
it. ``after-api-answer:3`` kills the process the third time that point is reached.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

__all__ = ["CRASH_ENV", "POINTS", "point"]

CRASH_ENV = "LEAKWATCH_CRASH_AT"
POINTS = (
    "after-mark-sending",
    "after-api-answer",
    "after-mark-accepted",
    "ingest-after-download",
    "ingest-mid-batch-commit",
    "match-mid-link",
    "report-mid-write",
)

_hits: Counter[str] = Counter()
_lock = threading.Lock()


def point(name: str) -> None:
    """Kill this process with SIGKILL if ``LEAKWATCH_CRASH_AT`` names this point (and hit)."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    target, _, nth = wanted.partition(":")
    if target != name:
        return
    with _lock:
        _hits[name] += 1
        hit = _hits[name]
    if hit >= (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
