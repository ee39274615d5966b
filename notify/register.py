"""The breach register (GDPR art. 33(5)): decisions with reasons, entries, CSV and JSON exports."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from core import crash
from matching.exports import neutralise_cell
from notify.timeline import moment
from schemas.models import RunSummary

__all__ = [
    "REGISTER_COLUMNS",
    "Decision",
    "RegisterEntry",
    "RegisterFormat",
    "customer_decision",
    "register_csv",
    "register_entry",
    "register_json",
    "regulator_decision",
    "write_atomically",
]

RegisterFormat = Literal["csv", "json"]
DecisionValue = Literal["yes", "no", "pending"]


@dataclass(frozen=True)
class Decision:
    """Notify or not, and why: what the register keeps and the CNIL may audit."""

    value: DecisionValue
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "reasons": list(self.reasons)}


_NOT_CONFIRMED = (
    "the DPO has not confirmed the breach yet (leakwatch breach confirm): the decision waits "
    "for confirmation"
)
_NO_MATCH = (
    "no leaked record matches a customer of the operator: no breach of its subscribers' personal "
    "data is established; the breach stays in the register and under review"
)


def regulator_decision(
    status: str, regime: str, exposed: int, by_risk: Mapping[str, int]
) -> Decision:
    """Notify the CNIL or not, from the breach's status, regime and figures."""
    if status != "confirmed":
        return Decision("pending", (_NOT_CONFIRMED,))
    if exposed == 0:
        return Decision("no", (_NO_MATCH,))
    if regime == "telecom":
        return Decision(
            "yes",
            (
                "Reg. (EU) 611/2013 art. 2(1) and LIL art. 85: a provider of electronic "
                "communications notifies every personal data breach to the CNIL, whatever the "
                f"risk; {exposed:,} subscribers are exposed",
            ),
        )
    risky = by_risk.get("high", 0) + by_risk.get("medium", 0)
    if risky == 0:
        return Decision(
            "no",
            (
                f"GDPR art. 33(1): the {exposed:,} exposures are all low risk (e-mail address "
                "only): the breach is unlikely to result in a risk to their rights and freedoms",
            ),
        )
    return Decision(
        "yes",
        (
            f"GDPR art. 33(1): likely to result in a risk: {by_risk.get('high', 0):,} high-risk "
            f"and {by_risk.get('medium', 0):,} medium-risk exposures",
        ),
    )


def customer_decision(
    status: str, regime: str, exposed: int, by_risk: Mapping[str, int]
) -> Decision:
    """Notify the exposed customers or not, from the breach's status, regime and figures."""
    if status != "confirmed":
        return Decision("pending", (_NOT_CONFIRMED,))
    if exposed == 0:
        return Decision("no", ("no customer is exposed: nobody to notify",))
    high, medium = by_risk.get("high", 0), by_risk.get("medium", 0)
    reasons: list[str] = []
    if high:
        reasons.append(
            f"GDPR art. 34(1): high risk for {high:,} customers (IBAN or identity data with "
            "contact data: fraudulent direct debits, convincing phishing)"
        )
    if regime == "telecom" and medium:
        reasons.append(
            "Reg. (EU) 611/2013 art. 3(1): likely to adversely affect the personal data or "
            f"privacy of {medium:,} subscribers (phone numbers: SMS and call phishing, SIM swap)"
        )
    if reasons:
        reasons.append(
            f"every one of the {exposed:,} exposed customers is told what of theirs leaked"
        )
        return Decision("yes", tuple(reasons))
    return Decision(
        "no",
        (
            "GDPR art. 34(1): the exposures are not likely to result in a high risk "
            f"({medium:,} medium, {by_risk.get('low', 0):,} low); the decision is reviewed if "
            "new sources raise it",
        ),
    )


@dataclass(frozen=True)
class RegisterEntry:
    """One breach's entry: facts, effects, decisions with reasons, remedial actions. Counts only."""

    breach_id: str
    facts: dict[str, Any]
    effects: dict[str, Any]
    decisions: dict[str, Any]
    remedial_actions: list[str]

    @property
    def content_sha256(self) -> str:
        payload = json.dumps(
            [self.facts, self.effects, self.decisions, self.remedial_actions], sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _text(description: Mapping[str, Any], key: str) -> str | None:
    value = description.get(key)
    return str(value) if isinstance(value, str) and value.strip() else None


def register_entry(summary: RunSummary, description: Mapping[str, Any]) -> RegisterEntry:
    """The register entry of a breach, from its figures and the officer's description (pure)."""
    s, t = summary, summary.times
    regulator = regulator_decision(s.status, s.regime, s.exposed_total, s.by_risk)
    customers = customer_decision(s.status, s.regime, s.exposed_total, s.by_risk)
    kept_over_a_year = sum(
        n
        for bucket, n in s.former_by_time_since_end.items()
        if bucket in ("1 to 3 years", "3 to 5 years", "5 years or more")
    )
    actions = [
        a
        for a in (_text(description, "measures_taken"), _text(description, "measures_proposed"))
        if a
    ]
    actions.append(
        f"exposed customers identified by keyed-hash matching: {s.exposed_total:,} "
        f"of {s.customers_total:,} customers"
    )
    if s.notices_by_state:
        notices = ", ".join(f"{k} {v:,}" for k, v in s.notices_by_state.items())
        actions.append(f"customer notices: {notices}")
    if t.regulator_initial_at is not None:
        actions.append(f"CNIL notified (initial notice) at {moment(t.regulator_initial_at)}")
    if s.former_exposed:
        actions.append(
            f"review the retention of former subscribers' data: {s.former_exposed:,} exposed, "
            f"{kept_over_a_year:,} of them more than a year after their contract ended"
        )
    return RegisterEntry(
        breach_id=s.breach_id,
        facts={
            "status": s.status,
            "regime": s.regime,
            "opened_at": _iso(t.created_at),
            "aware_at": _iso(t.aware_at),
            "aware_at_recorded": t.aware_recorded,
            "confirmed_at": _iso(t.confirmed_at),
            "nature": _text(description, "nature"),
            "circumstances": _text(description, "circumstances"),
            "sources": len(s.sources),
            "rows_read": s.rows_read,
            "rows_rejected": s.rows_rejected,
        },
        effects={
            "customers_in_base": s.customers_total,
            "exposed": s.exposed_total,
            "by_risk": dict(s.by_risk),
            "by_key": dict(s.by_key),
            "by_category": dict(s.by_category),
            "former_exposed": s.former_exposed,
            "former_by_time_since_end": dict(s.former_by_time_since_end),
            "also_exposed_in_other_breaches": s.overlap_total,
            "likely_consequences": _text(description, "likely_consequences"),
        },
        decisions={
            "notify_cnil": regulator.as_dict(),
            "notify_customers": customers.as_dict(),
            "cnil_notified_at": _iso(t.regulator_initial_at),
            "customers_notices": dict(s.notices_by_state),
        },
        remedial_actions=actions,
    )


REGISTER_COLUMNS = (
    "breach_id",
    "revision",
    "recorded_at",
    "status",
    "regime",
    "opened_at",
    "aware_at",
    "confirmed_at",
    "nature",
    "circumstances",
    "sources",
    "rows_read",
    "rows_rejected",
    "customers_in_base",
    "exposed",
    "risk_high",
    "risk_medium",
    "risk_low",
    "categories",
    "former_exposed",
    "also_exposed_in_other_breaches",
    "notify_cnil",
    "notify_cnil_reasons",
    "cnil_notified_at",
    "notify_customers",
    "notify_customers_reasons",
    "customer_notices",
    "remedial_actions",
)


def _pairs(data: Mapping[str, Any]) -> str:
    return "; ".join(f"{k}={v}" for k, v in data.items())


def _row(revision: int, recorded_at: datetime, e: RegisterEntry) -> list[Any]:
    f, x, d = e.facts, e.effects, e.decisions
    risk = x.get("by_risk", {})
    return [
        e.breach_id,
        revision,
        recorded_at.isoformat(),
        f.get("status"),
        f.get("regime"),
        f.get("opened_at"),
        f.get("aware_at"),
        f.get("confirmed_at"),
        f.get("nature"),
        f.get("circumstances"),
        f.get("sources"),
        f.get("rows_read"),
        f.get("rows_rejected"),
        x.get("customers_in_base"),
        x.get("exposed"),
        risk.get("high", 0),
        risk.get("medium", 0),
        risk.get("low", 0),
        _pairs(x.get("by_category", {})),
        x.get("former_exposed"),
        x.get("also_exposed_in_other_breaches"),
        d["notify_cnil"]["value"],
        " | ".join(d["notify_cnil"]["reasons"]),
        d.get("cnil_notified_at"),
        d["notify_customers"]["value"],
        " | ".join(d["notify_customers"]["reasons"]),
        _pairs(d.get("customers_notices", {})),
        " | ".join(e.remedial_actions),
    ]


def register_csv(entries: Sequence[tuple[int, datetime, RegisterEntry]]) -> bytes:
    """One row per breach; every text cell neutralised against spreadsheet formulas."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(REGISTER_COLUMNS)
    for revision, recorded_at, entry in entries:
        writer.writerow(
            neutralise_cell(v) if isinstance(v, str) else ("" if v is None else v)
            for v in _row(revision, recorded_at, entry)
        )
    return buffer.getvalue().encode("utf-8")


def register_json(entries: Sequence[tuple[int, datetime, RegisterEntry]]) -> bytes:
    """The entries with their structure (facts, effects, decisions, remedial actions)."""
    data = [
        {
            "breach_id": e.breach_id,
            "revision": revision,
            "recorded_at": recorded_at.isoformat(),
            "facts": e.facts,
            "effects": e.effects,
            "decisions": e.decisions,
            "remedial_actions": e.remedial_actions,
        }
        for revision, recorded_at, e in entries
    ]
    return (json.dumps(data, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def write_atomically(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    crash.point("report-mid-write")  # written, not yet renamed into place
    os.replace(tmp, path)
    return path
