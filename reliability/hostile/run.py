"""Runs each hostile case through the real steps and checks its expected defence."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import duckdb

from core.errors import LeakwatchError
from flows import steps
from flows.context import Runtime
from reliability.hostile.corpus import HostileCase

__all__ = ["Outcome", "run_hostile", "summarise"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Outcome:
    case: HostileCase
    refused: bool  # the expected defence held
    detail: str


def _files(root: Path, skip: tuple[Path, ...]) -> set[Path]:
    return {
        p for p in root.rglob("*") if not p.is_dir() and not any(p.is_relative_to(s) for s in skip)
    }


def _reject_reasons(store: Path, breach_id: str) -> list[str]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        rows = con.execute(
            "SELECT r.reason FROM rejects r JOIN artifacts a USING (artifact_no) "
            "WHERE a.breach_id = $b",
            {"b": breach_id},
        ).fetchall()
        return [str(r[0]) for r in rows]
    finally:
        con.close()


def _tables(store: Path) -> list[str]:
    if not store.exists():
        return []
    con = duckdb.connect(str(store), read_only=True)
    try:
        return sorted(
            str(r[0]) for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        )
    finally:
        con.close()


def _check_leak(rt: Runtime, case: HostileCase, breach: str) -> str | None:
    tables_before = _tables(rt.settings.store)
    report = steps.ingest_source(rt, str(case.source), breach)
    errors = report.errors
    expect = case.expect
    if expect.kind == "refused":
        missing = [r for r in expect.reasons if not any(r in e for e in errors)]
        unnamed = [n for n in expect.names if not any(n in e for e in errors)]
        if not errors or missing or unnamed:
            return f"expected refusals {missing or ''} naming {unnamed or ''}; got {errors}"
        return None
    if errors:
        return f"unexpected refusal: {errors}"
    reasons = _reject_reasons(rt.settings.store, breach)
    if expect.kind == "rows":
        if report.rows_rejected < 1 or not any(r in x for r in expect.reasons for x in reasons):
            return f"no record refused with {expect.reasons}; rejects {Counter(reasons)}"
        return None
    if expect.kind == "values":
        if report.values_rejected < 1 or not all(
            any(r in x for x in reasons) for r in expect.reasons
        ):
            return f"no value refused with {expect.reasons}; rejects {Counter(reasons)}"
        return None
    # inert: read as data; the store's tables are all still there and nothing was hashed
    if tables_before and _tables(rt.settings.store) != tables_before:
        return "the store's tables changed"
    if report.keys:
        return f"{report.keys} keys from injection strings"
    return None


def _check_names(rt: Runtime, case: HostileCase, work: Path) -> str | None:
    steps.load_customer_file(rt, case.source)
    work.mkdir(parents=True, exist_ok=True)
    leak = work / "names-leak.csv"
    leak.write_text(
        "telephone,nom\n" + "".join(f"061111111{i},x\n" for i in range(1, 5)), encoding="utf-8"
    )
    breach = "hostile-names"
    steps.ingest_source(rt, str(leak), breach)
    if steps.match_breach(rt, breach) < 3:
        return "the hostile customers were not matched"
    exported = work / "exposures.csv"
    steps.export_exposures(rt, breach, exported, "csv")
    for line in exported.read_text(encoding="utf-8").splitlines()[1:]:
        first = line.split(",", 1)[0].lstrip('"')
        if first.startswith(_FORMULA_START):
            return f"a formula reached the exposures export: {first[:20]!r}"
    outbox = work / "outbox"
    steps.draft_notices(rt, breach, outbox)
    for eml in sorted(outbox.glob("*.eml")):
        msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        injected = [h for h in msg if h.lower() in ("bcc", "x-injected")]
        if injected or "victim@evil.example" in str(msg.get("To", "")):
            return f"header injected in {eml.name}: {injected}"
    return None


def run_hostile(rt: Runtime, cases: list[HostileCase], corpus_root: Path) -> list[Outcome]:
    """Each case in its own breach; checks that nothing is written outside the work folder."""
    skip = (rt.settings.work_dir, rt.settings.store.parent)
    watch = corpus_root.parent
    outcomes = []
    for number, case in enumerate(cases):
        before = _files(watch, skip)
        try:
            if case.customers:
                problem = _check_names(rt, case, rt.settings.work_dir / f"names-{number}")
            else:
                problem = _check_leak(rt, case, f"hostile-{number}-{case.cls}")
        except LeakwatchError as exc:  # our own error is a refusal, but not at the right level
            problem = f"stopped the run: {type(exc).__name__}: {exc}"
        created = sorted(str(p) for p in _files(watch, skip) - before)
        if created:
            problem = f"files written outside the work folder: {created}"
        escaped = [
            p for p in ("/abs/evil2.csv", str(watch.parent / "evil.csv")) if Path(p).exists()
        ]
        if escaped:
            problem = f"files written outside: {escaped}"
        outcomes.append(Outcome(case, problem is None, problem or "defence held"))
    return outcomes


def summarise(outcomes: list[Outcome]) -> dict[str, tuple[int, int]]:
    """{class: (refused, tried)}."""
    out: dict[str, tuple[int, int]] = {}
    for o in outcomes:
        held, tried = out.get(o.case.cls, (0, 0))
        out[o.case.cls] = (held + int(o.refused), tried + 1)
    return out
