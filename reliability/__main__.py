"""``python -m reliability``: every fault, hostile-input and secrecy check that fits in minutes, one summary."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from glob import glob
from io import StringIO
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
SENDING_CRASH_TESTS = ("tests/notify/test_crash.py", "tests/flows/test_notify_crash*.py")


def _timed(label: str, work: Callable[[], T]) -> T:
    started = time.monotonic()
    print(f"… {label}", file=sys.stderr, flush=True)
    result = work()
    print(f"  done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return result


def _pytest_counts(paths: list[str], root: Path) -> tuple[int, int]:
    """(passed, tried) of the other parts' crash tests, read from their JUnit report."""
    if not paths:
        return 0, 0
    report = root / "junit.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *paths,
            f"--junitxml={report}",
        ],
        capture_output=True,
        check=False,
        timeout=1800,
    )
    if not report.exists():
        return 0, 0
    suites = ET.parse(report).getroot().iter("testsuite")  # noqa: S314
    tried = failed = 0
    for suite in suites:
        tried += int(suite.get("tests", 0)) - int(suite.get("skipped", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    return tried - failed, tried


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per crash point")
    parser.add_argument("--fuzz-seconds", type=float, default=60.0)
    parser.add_argument(
        "--quick", action="store_true", help="enumerate 10⁶ numbers around the planted ones only"
    )
    args = parser.parse_args(argv)

    from reliability.canary import PLANTED, WINDOW, run_canary
    from reliability.crashes import CASES, run_case
    from reliability.fuzz import fuzz
    from reliability.hostile import build_corpus
    from reliability.hostile.run import run_hostile, summarise
    from reliability.notify_race import run_notify_race
    from reliability.reversal import (
        FULL_RANGE,
        UNKEYED_PREFIXES,
        reverse_keyed,
        reverse_unkeyed,
        stored_phone_keys,
    )
    from reliability.sweep import hits

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="leakwatch-reliability-") as tmp:
        root = Path(tmp)
        crashes = _timed(
            "crash points",
            lambda: [
                run_case(point, seed, root / f"crash-{point}-{seed}")
                for point in CASES
                for seed in range(args.seeds)
            ],
        )
        sending = [p for pattern in SENDING_CRASH_TESTS for p in sorted(glob(pattern))]
        sent_ok, sent_tried = _timed("sending crash tests", lambda: _pytest_counts(sending, root))
        race = _timed("two senders at once", lambda: run_notify_race(root / "race"))

        from core.settings import Settings
        from flows.context import Runtime
        from matching.keyed_hash import Pepper

        hostile_root = root / "hostile"
        hostile_rt = Runtime(
            Settings(store=hostile_root / "store" / "s.duckdb", work_dir=hostile_root / "work"),
            Pepper.generate(),
        )
        outcomes = _timed(
            "hostile corpus",
            lambda: run_hostile(
                hostile_rt, build_corpus(hostile_root / "corpus"), hostile_root / "corpus"
            ),
        )

        log = StringIO()
        handler = logging.StreamHandler(log)
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.DEBUG)
        canary = _timed("canary run", lambda: run_canary(root / "canary"))
        logging.getLogger().removeHandler(handler)
        canary_hits = hits({**canary.haystacks, "logs": log.getvalue()}, canary.needles)

        keys = stored_phone_keys(canary.runtime.settings.store)
        ranges = WINDOW if args.quick else FULL_RANGE
        numbers = sum(r.size for r in ranges)
        reversed_ = _timed(
            f"enumeration without the key ({numbers:,} numbers × {len(UNKEYED_PREFIXES)})",
            lambda: reverse_unkeyed(keys, ranges),
        )
        t0 = time.monotonic()
        recovered = _timed(
            "enumeration with the key (control)",
            lambda: reverse_keyed(keys, canary.runtime.pepper, ranges),
        )
        keyed_s = time.monotonic() - t0
        report = _timed(
            f"fuzzing ({args.fuzz_seconds:g} s)",
            lambda: fuzz(args.fuzz_seconds, crash_dir=Path(".leakwatch/fuzz-crashes")),
        )

    survived = sum(c.survived for c in crashes)
    by_class = summarise(outcomes)
    held = sum(h for h, _ in by_class.values())
    tried = sum(t for _, t in by_class.values())
    planted_found = len(set(PLANTED) & recovered)
    lines = [
        f"leakwatch reliability — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{time.monotonic() - started:.0f} s",
        f"crash points survived / tried       {survived} / {len(crashes)}  "
        f"(ingest, match, report: {len(CASES)} points × {args.seeds} seeds, SIGKILL then re-run)",
        f"sending crash tests passed / tried   {sent_ok} / {sent_tried}  ({', '.join(sending) or 'none found'})",
        f"duplicate notices                   {race.duplicates}  (two `notify customers` at once, "
        f"{race.expected} notices, fake SendGrid)",
        f"missed notices                      {race.missed}",
        f"ambiguous sends left                {race.unresolved}",
        f"hostile inputs refused / tried      {held} / {tried}",
        *[f"  {cls:<34}{h} / {t}" for cls, (h, t) in by_class.items()],
        f"canary hits                         {len(canary_hits)}  ({len(canary.needles)} spellings "
        f"of a phone, an IBAN and the pepper in {len(canary.haystacks) + 1} places)",
        f"hashes reversed without the key     {len(reversed_)}  (of {len(keys)} stored phone keys; "
        f"{numbers:,} mobiles × {len(UNKEYED_PREFIXES)} unkeyed SHA-256 guesses)",
        f"control, with the key               {planted_found} / {len(PLANTED)} planted numbers "
        f"recovered ({numbers:,} HMACs in {keyed_s:.0f} s)",
        f"fuzzing                             {report.seconds:.0f} s, "
        f"{sum(report.inputs.values())} inputs, {len(report.crashes)} crashes",
        *[f"  {t}: {w.strip().splitlines()[-1]} ({p})" for t, w, p in report.crashes],
        *[f"  crash {c.point} seed {c.seed}: {c.detail}" for c in crashes if not c.survived],
        *[
            f"  hostile {o.case.cls} / {o.case.label}: {o.detail}"
            for o in outcomes
            if not o.refused
        ],
        *[f"  canary in {where}: {what}" for where, what in canary_hits],
    ]
    print("\n".join(lines))
    ok = (
        survived == len(crashes)
        and sent_ok == sent_tried
        and race.duplicates == race.missed == race.unresolved == 0
        and held == tried
        and not canary_hits
        and not reversed_
        and planted_found == len(PLANTED)
        and not report.crashes
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
