"""The regulator (CNIL) dossier: the officer's description, building, validating and rendering it."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import yaml

from core.errors import ConfigError, InputError, TerminalError
from core.settings import Settings
from notify.deadlines import Deadline, OnTime, Phase, Regime, ScheduledDeadline, parse_moment
from notify.plan import breach_facts
from notify.render import NoticeRenderer, RenderedNotice, build_environment, notice_plan, wording
from schemas.dossier import (
    CNIL_CATEGORIES,
    CNIL_LABELS,
    DESCRIPTION_SCHEMA,
    DOSSIER_SCHEMA,
    load_schema,
)
from schemas.models import NoticeContext
from schemas.vocab import CATEGORY_BITS, Category, KeyKind, Risk, categories_from_mask

__all__ = [
    "COMPLEMENTARY_FIELDS",
    "OPEN_STATES",
    "DossierInputs",
    "DossierInvalidError",
    "NoticeCounts",
    "build_dossier",
    "description_template",
    "exposed_categories",
    "generic_notice",
    "missing_for_complementary",
    "notice_counts",
    "parse_description",
    "render_dossier_html",
    "require_description",
    "validate_dossier",
    "write_dossier",
]

# Ledger states (matching/migrations/0002_ledger.sql): an e-mail notice in one of OPEN_STATES
# has not been accepted by the sender yet ("drafted" is the local outbox: written, not sent;
# "failed" was refused before sending). Every other state counts as notified.
OPEN_STATES: tuple[str, ...] = ("planned", "drafted", "sending", "ambiguous", "failed")

# Annex I section 2 ("further information"): may follow in the complementary notification
# (Reg. 611/2013 art. 2(3); GDPR art. 33(4)), but the complementary one must carry them.
COMPLEMENTARY_FIELDS: tuple[str, ...] = (
    "where_media",
    "technical_measures",
    "likely_consequences",
    "cross_border.involved",
)
_OPTIONAL_FIELDS: tuple[str, ...] = (
    "incident_started_at",
    "measures_proposed",
    "other_providers",
)
_MOMENT_FIELDS = ("incident_started_at", "incident_ended_at")

_CHANNEL_LABELS = {"email": "courrier électronique", "post": "courrier postal", "sms": "SMS"}


class DossierInvalidError(TerminalError):
    """A dossier that does not satisfy ``schemas/dossier.schema.json`` is never written."""


# -- the officer's description ------------------------------------------------------------------


def _yaml_scalar(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(value, ensure_ascii=False)


@cache
def _environment() -> jinja2.Environment:
    env = build_environment()
    env.filters["yaml"] = _yaml_scalar
    return env


def description_template(
    settings: Settings, breach_id: str, detected_at: datetime, current: Mapping[str, Any]
) -> str:
    """The YAML the officer fills in; the stored description when there is one."""
    facts = breach_facts(settings, breach_id, detected_at)
    text = (
        _environment()
        .get_template("breach_description.yaml.j2")
        .render(
            breach_id=breach_id,
            dpo_contact=settings.dpo_contact,
            support_contact=settings.support_contact,
            default_summary_fr=facts.summary_fr,
            default_measures_fr=facts.measures_fr,
        )
    )
    if not current:
        return text
    body = str(
        yaml.dump(dict(current), Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)
    )
    return (
        f"# Description of breach {breach_id} as stored. Edit it, then load it back:\n"
        f"#   leakwatch breach describe {breach_id} --from THIS_FILE\n"
        "# Times: ISO 8601 with their UTC offset, in quotes. No personal data.\n\n" + body
    )


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]  # no types-PyYAML installed
    """Writes multi-line text as literal blocks, as the officer typed it."""


def _text_block(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text_block)


def _plain(value: Any) -> Any:
    """YAML's own types back to JSON's: times to text (offset kept), blank text to null."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _field(path: Sequence[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _reason(error: jsonschema.ValidationError) -> tuple[str, str]:
    """Where and why, worded without the offending value (it may hold anything)."""
    path = list(error.absolute_path)
    kind = error.validator
    if kind == "required":
        given = error.instance if isinstance(error.instance, Mapping) else {}
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [name for name in required if name not in given]
        return _field([*path, missing[0] if missing else "?"]), "is missing"
    where = _field(path)
    if kind == "additionalProperties":
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        known = set((schema.get("properties") or {}).keys())
        given = error.instance if isinstance(error.instance, Mapping) else {}
        extra = sorted(str(k) for k in given if k not in known)
        return where, f"is not a known field (unknown: {', '.join(extra)})"
    if kind == "minLength" or (kind in ("type", "$ref") and error.instance is None):
        return where, "must be filled in"
    if kind == "enum":
        choices = error.validator_value if isinstance(error.validator_value, list) else []
        return where, "must be one of " + ", ".join(map(str, choices))
    if kind == "pattern":
        if "[0-9]{4}-" in str(error.validator_value):
            return where, "must be an ISO 8601 time with its UTC offset, in quotes"
        return where, "has the wrong form"
    if kind == "type":
        return where, f"must be of type {error.validator_value}"
    if kind == "const":
        return where, f"must be {error.validator_value!r}"
    return where, f"is invalid ({kind})"


def parse_description(text: str, *, source: str) -> dict[str, Any]:
    """The officer's filled-in template, validated; times normalised to UTC.

    Refused with an ``InputError`` naming ``source`` and every faulty field.
    """
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = mark.line + 1 if mark is not None else None
        raise InputError("not valid YAML or JSON", file=source, row=row) from None
    if not isinstance(loaded, Mapping):
        raise InputError("expected a mapping of fields (the describe template)", file=source)
    description = _plain(loaded)
    validator = jsonschema.Draft202012Validator(load_schema(DESCRIPTION_SCHEMA))
    problems = sorted({_reason(e) for e in validator.iter_errors(description)})
    if problems:
        listed = "; ".join(f"field {where!r} {why}" for where, why in problems)
        raise InputError(listed, file=source)
    for name in _MOMENT_FIELDS:
        if description.get(name):
            description[name] = _iso(parse_moment(description[name], what=f"field {name!r}"))
    for i, item in enumerate(description.get("other_authorities") or []):
        if item.get("notified_at"):
            item["notified_at"] = _iso(
                parse_moment(item["notified_at"], what=f"field 'other_authorities.{i}'")
            )
    return dict(description)


def _lookup(description: Mapping[str, Any], dotted: str) -> Any:
    value: Any = description
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def missing_for_complementary(description: Mapping[str, Any]) -> list[str]:
    """Fields the complementary notification must carry and the description leaves empty."""
    return [f for f in COMPLEMENTARY_FIELDS if _lookup(description, f) in (None, "", [])]


# -- figures to dossier ------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeCounts:
    """Customer notices from the ledger, by outcome (Annex I: number of subscribers notified)."""

    planned: int
    drafted: int
    notified: int
    delivered: int
    bounced: int
    dropped: int
    pending: int
    fallback: int
    means: tuple[str, ...]
    by_channel_state: tuple[tuple[str, str, int], ...]


def notice_counts(
    by_channel_state: Mapping[tuple[str, str], int], delivery: Mapping[str, int]
) -> NoticeCounts:
    """The ledger's counts (``matching.ledger.delivery_counts``) as the dossier gives them."""
    planned = sum(by_channel_state.values())
    means = sorted(
        {ch for (ch, state), n in by_channel_state.items() if n and state not in OPEN_STATES}
    )
    return NoticeCounts(
        planned=planned,
        drafted=delivery.get("drafted", 0),
        notified=delivery.get("notified", 0),
        delivered=delivery.get("delivered", 0),
        bounced=delivery.get("bounced", 0),
        dropped=delivery.get("dropped", 0),
        pending=planned - delivery.get("notified", 0),
        fallback=delivery.get("fallback", 0),
        means=tuple(means),
        by_channel_state=tuple((ch, st, n) for (ch, st), n in sorted(by_channel_state.items())),
    )


def _sum_masks(by_mask: Mapping[int, int], wanted: int) -> int:
    return sum(n for mask, n in by_mask.items() if mask & wanted)


def generic_notice(
    settings: Settings,
    breach_id: str,
    detected_at: datetime,
    description: Mapping[str, Any],
    categories: Sequence[Category],
    keys: Sequence[KeyKind],
) -> RenderedNotice:
    """The French customer notice for a customer exposed in every category of the breach,
    rendered by the real templates with no name, no hint and a sample reference."""
    facts = breach_facts(
        settings,
        breach_id,
        detected_at,
        {k: str(v) for k, v in description.items() if isinstance(v, str)},
    )
    ctx = NoticeContext(
        notice_id="EXEMPLE",
        customer_id="exemple",
        language="fr",
        first_name=None,
        last_name=None,
        email=None,
        matched_on=tuple(keys),
        categories=tuple(categories),
        risk=Risk.HIGH,
        breach=facts,
    )
    return NoticeRenderer().render(ctx)


@dataclass(frozen=True)
class DossierInputs:
    """Everything a dossier is built from; counts and the officer's text, nothing personal."""

    breach_id: str
    regime: Regime
    phase: Phase
    generated_at: datetime
    operator_name: str
    dpo_contact: str
    support_contact: str
    aware_at: datetime
    aware_from: str  # "officer" or "first_ingestion"
    confirmed_at: datetime | None
    description: Mapping[str, Any]
    persons_total: int
    persons_former: int
    persons_by_mask: Mapping[int, int]
    persons_by_key: Mapping[str, int]
    persons_by_risk: Mapping[str, int]
    records_total: int
    records_by_mask: Mapping[int, int]
    records_by_key: Mapping[str, int]
    rows_read: int
    rows_rejected: int
    sources: Sequence[Mapping[str, Any]]
    notices: NoticeCounts
    notice_subject_fr: str
    notice_text_fr: str
    deadline: Deadline
    evaluation: OnTime
    schedule: Sequence[ScheduledDeadline]
    initial_dossier_sha256: str | None


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def exposed_categories(by_mask: Mapping[int, int]) -> list[Category]:
    """The categories present in any counted mask."""
    mask = 0
    for m, n in by_mask.items():
        if n:
            mask |= m
    return categories_from_mask(mask)


def build_dossier(inputs: DossierInputs) -> dict[str, Any]:
    """The dossier as JSON-ready data: every GDPR 33(3) and Reg. 611/2013 Annex I field."""
    d = inputs.description

    def text(name: str) -> Any:
        return d.get(name) or None

    present = exposed_categories(inputs.persons_by_mask) or exposed_categories(
        inputs.records_by_mask
    )
    field_rows = []
    for category in Category:
        bit = CATEGORY_BITS[category]
        persons = _sum_masks(inputs.persons_by_mask, bit)
        records = _sum_masks(inputs.records_by_mask, bit)
        if persons or records:
            field_rows.append({"category": str(category), "persons": persons, "records": records})
    cnil_rows = []
    for key, fields in CNIL_CATEGORIES.items():
        mask = sum(CATEGORY_BITS[c] for c in fields)
        persons = _sum_masks(inputs.persons_by_mask, mask)
        records = _sum_masks(inputs.records_by_mask, mask)
        if persons or records:
            cnil_rows.append(
                {
                    "key": key,
                    "label": CNIL_LABELS[key],
                    "fields": [str(c) for c in fields if c in present],
                    "persons": persons,
                    "records": records,
                }
            )
    plan = notice_plan(tuple(present), tuple(KeyKind(k) for k in inputs.persons_by_key))
    words = wording("fr")
    pending = [f for f in (*COMPLEMENTARY_FIELDS, *_OPTIONAL_FIELDS) if _lookup(d, f) in (None, "")]
    cross = d.get("cross_border") or {}
    n = inputs.notices
    labels = {"initial": "Notification initiale", "complementary": "Notification complémentaire"}
    return {
        "schema_version": 1,
        "breach_id": inputs.breach_id,
        "generated_at": _iso(inputs.generated_at),
        "regime": inputs.regime,
        "notification": {
            "phase": inputs.phase,
            "label": labels[inputs.phase],
            "due_at": _iso(inputs.deadline.due_at),
            "on_time": inputs.evaluation.on_time,
            "late_reason": inputs.evaluation.late_reason,
            "legal_basis": inputs.deadline.legal_basis,
            "initial_dossier_sha256": inputs.initial_dossier_sha256,
        },
        "provider": {
            "name": inputs.operator_name,
            "dpo_contact": text("dpo_contact") or inputs.dpo_contact,
            "support_contact": text("support_contact") or inputs.support_contact,
        },
        "timeline": {
            "incident_started_at": text("incident_started_at"),
            "incident_ended_at": text("incident_ended_at"),
            "incident_time_estimated": bool(d.get("incident_time_estimated")),
            "detected_at": _iso(inputs.aware_at),
            "detected_from": inputs.aware_from,
            "confirmed_at": _iso(inputs.confirmed_at),
            "first_ingested_at": _iso(
                min((s["acquired_at"] for s in inputs.sources), default=None)
            ),
            "last_ingested_at": _iso(max((s["acquired_at"] for s in inputs.sources), default=None)),
        },
        "deadlines": [
            {
                "key": s.deadline.key,
                "label": s.deadline.label,
                "due_at": _iso(s.deadline.due_at),
                "starts_from": s.deadline.starts_from,
                "legal_basis": s.deadline.legal_basis,
                "binding": s.deadline.binding,
                "provisional": s.deadline.provisional,
                "state": s.state,
            }
            for s in inputs.schedule
        ],
        "breach": {
            "nature": d["nature"],
            "types": list(d.get("breach_types") or []),
            "circumstances": d["circumstances"],
            "circumstances_detail": text("circumstances_detail"),
            "where_media": text("where_media"),
        },
        "data": {
            "persons_total": inputs.persons_total,
            "persons_former": inputs.persons_former,
            "records_total": inputs.records_total,
            "rows_read": inputs.rows_read,
            "rows_rejected": inputs.rows_rejected,
            "cnil_categories": cnil_rows,
            "field_categories": field_rows,
            "persons_by_key": dict(sorted(inputs.persons_by_key.items())),
            "records_by_key": dict(sorted(inputs.records_by_key.items())),
            "persons_by_risk": dict(inputs.persons_by_risk),
        },
        "subscribers_concerned": inputs.persons_total,
        "sources": [{**s, "acquired_at": _iso(s["acquired_at"])} for s in inputs.sources],
        "consequences": {
            "likely": text("likely_consequences"),
            "from_categories": [words.consequences[k] for k in plan.consequences],
        },
        "measures": {
            "technical_measures": text("technical_measures"),
            "taken": d["measures_taken"],
            "proposed": text("measures_proposed"),
        },
        "other_providers": text("other_providers"),
        "subscriber_notification": {
            "content_subject_fr": inputs.notice_subject_fr,
            "content_fr": inputs.notice_text_fr,
            "variant_note": (
                "Modèle rendu pour un abonné exposé dans toutes les catégories de la violation ; "
                "chaque abonné reçoit la variante qui ne cite que ses propres données."
            ),
            "means": [_CHANNEL_LABELS.get(ch, ch) for ch in n.means],
            "planned": n.planned,
            "drafted": n.drafted,
            "notified": n.notified,
            "delivered": n.delivered,
            "bounced": n.bounced,
            "dropped": n.dropped,
            "pending": n.pending,
            "fallback": n.fallback,
            "by_channel_state": [
                {"channel": ch, "state": st, "count": c} for ch, st, c in n.by_channel_state
            ],
        },
        "cross_border": {
            "involved": cross.get("involved"),
            "member_states": list(cross.get("member_states") or []),
            "detail": cross.get("detail") or None,
        },
        "other_authorities": [
            {
                "authority": a["authority"],
                "reference": a.get("reference") or None,
                "notified_at": a.get("notified_at") or None,
            }
            for a in d.get("other_authorities") or []
        ],
        "pending_fields": pending if inputs.phase == "initial" else [],
    }


def validate_dossier(dossier: Mapping[str, Any]) -> None:
    """Refuse a dossier that breaks the schema, naming each faulty field (never its value)."""
    validator = jsonschema.Draft202012Validator(load_schema(DOSSIER_SCHEMA))
    problems = sorted({_reason(e) for e in validator.iter_errors(dossier)})
    if problems:
        raise DossierInvalidError(
            "the dossier does not satisfy schemas/dossier.schema.json: "
            + "; ".join(f"{where} {why}" for where, why in problems)
        )


# -- output ------------------------------------------------------------------------------------


def _fr_time(value: str | None) -> str:
    if not value:
        return "non connue"
    moment = datetime.fromisoformat(value)
    try:
        from zoneinfo import ZoneInfo

        local = moment.astimezone(ZoneInfo("Europe/Paris"))
        return f"{local:%d/%m/%Y à %H:%M} (heure de Paris) — {moment:%Y-%m-%d %H:%M} UTC"
    except Exception:  # pragma: no cover - no tz database
        return f"{moment:%Y-%m-%d %H:%M} UTC"


def render_dossier_html(dossier: Mapping[str, Any]) -> str:
    """The dossier as one self-contained HTML page, sectioned like the CNIL's online form."""
    env = _environment()
    env.filters["fr_time"] = _fr_time
    return env.get_template("dossier.html.j2").render(d=dossier, labels=CNIL_LABELS)


def _atomic_write(data: bytes, path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_dossier(
    dossier: Mapping[str, Any],
    directory: Path,
    write: Callable[[bytes, Path], Path] | None = None,
) -> tuple[Path, Path, str]:
    """Validate, then write ``dossier.json`` and ``dossier.html``; returns both and the JSON's SHA-256.

    ``write(data, path)``, when given, writes each file instead and returns the path it wrote
    (an encrypted hand-over writes ``path.asc``); the SHA-256 is always the clear JSON's.
    """
    put = write or _atomic_write
    validate_dossier(dossier)
    data = (json.dumps(dossier, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    page = render_dossier_html(dossier).encode("utf-8")
    directory.mkdir(parents=True, exist_ok=True)
    json_path = put(data, directory / "dossier.json")
    html_path = put(page, directory / "dossier.html")
    return json_path, html_path, hashlib.sha256(data).hexdigest()


def require_description(description: Mapping[str, Any], breach_id: str) -> None:
    if not description:
        raise ConfigError(
            f"breach {breach_id!r} has no description yet: run `leakwatch breach describe "
            f"{breach_id} --output description.yaml`, fill it in, then load it with "
            f"`leakwatch breach describe {breach_id} --from description.yaml`"
        )
