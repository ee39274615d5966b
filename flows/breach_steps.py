"""Breach status, deadlines, the officer's description and the regulator dossier, as plain steps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from core.errors import ConfigError, InputError
from core.settings import Settings
from flows.context import open_store
from flows.handover import prepare
from matching.breaches import (
    BreachRecord,
    confirm_breach,
    describe_breach,
    get_breach,
    require_confirmed,
)
from matching.dossier_figures import (
    DossierFigures,
    RegulatorNoticeRecord,
    dossier_figures,
    record_regulator_notice,
    regulator_notices,
)
from matching.store import Store
from notify.deadlines import (
    Phase,
    Regime,
    ScheduledDeadline,
    evaluate_notice,
    regulator_deadline,
    schedule,
)
from notify.dossier import (
    OPEN_STATES,
    DossierInputs,
    build_dossier,
    description_template,
    exposed_categories,
    generic_notice,
    missing_for_complementary,
    notice_counts,
    parse_description,
    require_description,
    write_dossier,
)
from schemas.vocab import KeyKind

__all__ = [
    "BreachStatus",
    "RegulatorResult",
    "breach_status",
    "confirm",
    "load_description",
    "regulator_dossier",
    "write_description_template",
]


@dataclass(frozen=True)
class BreachStatus:
    """What ``breach status`` shows: no personal data, counts and times only."""

    breach_id: str
    status: str
    regime: str
    aware_at: datetime | None
    aware_from: str | None  # "officer", "first_ingestion" or None (nothing to start the clock)
    confirmed_at: datetime | None
    described: bool
    deadlines: tuple[ScheduledDeadline, ...]
    regulator_notices: tuple[RegulatorNoticeRecord, ...]


@dataclass(frozen=True)
class RegulatorResult:
    json_path: Path  # dossier.json, or dossier.json.asc when handed over encrypted
    html_path: Path
    sha256: str  # of the clear dossier.json, encrypted or not
    phase: Phase
    due_at: datetime | None
    on_time: bool
    pending_fields: tuple[str, ...]


def _regime(record: BreachRecord) -> Regime:
    if record.regime not in get_args(Regime):
        raise ConfigError(f"breach {record.breach_id!r}: unknown regime {record.regime!r}")
    regime: Regime = record.regime  # type: ignore[assignment]
    return regime


def _aware(record: BreachRecord) -> tuple[datetime | None, str | None]:
    if record.aware_at is not None:
        return record.aware_at, "officer"
    if record.first_ingested_at is not None:
        return record.first_ingested_at, "first_ingestion"
    return None, None


def _first(notices: list[RegulatorNoticeRecord], phase: str) -> RegulatorNoticeRecord | None:
    return next((n for n in notices if n.phase == phase), None)


def _customers_done_at(figures: DossierFigures) -> datetime | None:
    emails = sum(n for (channel, _), n in figures.notices.items() if channel == "email")
    return figures.notices_closed_last_at if emails and figures.notices_open == 0 else None


def _schedule(
    record: BreachRecord,
    aware_at: datetime,
    notices: list[RegulatorNoticeRecord],
    figures: DossierFigures,
    now: datetime,
    extra: RegulatorNoticeRecord | None = None,
) -> tuple[ScheduledDeadline, ...]:
    made = [*notices, *([extra] if extra else [])]
    initial = _first(made, "initial")
    complementary = _first(made, "complementary")
    return schedule(
        _regime(record),
        aware_at,
        now=now,
        confirmed_at=record.confirmed_at,
        initial_at=initial.generated_at if initial else None,
        complementary_at=complementary.generated_at if complementary else None,
        customers_done_at=_customers_done_at(figures),
    )


def _status(store: Store, record: BreachRecord, now: datetime) -> BreachStatus:
    aware_at, aware_from = _aware(record)
    notices = regulator_notices(store, record.breach_id)
    deadlines: tuple[ScheduledDeadline, ...] = ()
    if aware_at is not None:
        figures = dossier_figures(store, record.breach_id, open_states=OPEN_STATES)
        deadlines = _schedule(record, aware_at, notices, figures, now)
    return BreachStatus(
        breach_id=record.breach_id,
        status=record.status,
        regime=record.regime,
        aware_at=aware_at,
        aware_from=aware_from,
        confirmed_at=record.confirmed_at,
        described=bool(record.description),
        deadlines=deadlines,
        regulator_notices=tuple(notices),
    )


def confirm(
    settings: Settings,
    breach_id: str,
    *,
    aware_at: datetime | None = None,
    regime: Regime | None = None,
    now: datetime | None = None,
) -> BreachStatus:
    """The DPO confirms the breach, optionally recording the awareness time and the regime."""
    with open_store(settings) as store:
        record = confirm_breach(store, breach_id, aware_at=aware_at, regime=regime)
        return _status(store, record, now or datetime.now(UTC))


def breach_status(settings: Settings, breach_id: str, now: datetime | None = None) -> BreachStatus:
    with open_store(settings) as store:
        return _status(store, get_breach(store, breach_id), now or datetime.now(UTC))


def write_description_template(settings: Settings, breach_id: str, path: Path) -> Path:
    """Write the description template (or the stored description) for the officer to fill in."""
    with open_store(settings) as store:
        record = get_breach(store, breach_id)
    aware_at, _ = _aware(record)
    text = description_template(
        settings, breach_id, aware_at or datetime.now(UTC), record.description
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_description(settings: Settings, breach_id: str, path: Path) -> list[str]:
    """Validate the officer's filled-in file and store it; returns the fields still empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read the description ({type(exc).__name__})", file=str(path)
        ) from None
    description = parse_description(text, source=str(path))
    with open_store(settings) as store:
        describe_breach(store, breach_id, description)
    return missing_for_complementary(description)


def regulator_dossier(
    settings: Settings,
    breach_id: str,
    *,
    phase: Phase,
    output_dir: Path,
    late_reason: str | None = None,
    encrypt_to: Sequence[Path] = (),
    now: datetime | None = None,
) -> RegulatorResult:
    """Build, validate, write and record the CNIL dossier of a confirmed, described breach.

    The dossier's generation time is taken as the notification time: a late one without a
    reason is refused before anything is written (GDPR art. 33(1)). With recipients
    (``encrypt_to``) each file is written only as a signed OpenPGP message (``.asc``); their keys
    are checked first, so a refused key leaves neither a file nor a record.
    """
    made_at = now or datetime.now(UTC)
    handover = prepare(settings, encrypt_to)
    with open_store(settings) as store:
        record = require_confirmed(store, breach_id)
        regime = _regime(record)
        aware_at, aware_from = _aware(record)
        if aware_at is None or aware_from is None:
            raise ConfigError(
                f"breach {breach_id!r} has no awareness time: record it with "
                f"`leakwatch breach confirm {breach_id} --aware-at ISO8601`"
            )
        require_description(record.description, breach_id)
        notices = regulator_notices(store, breach_id)
        initial = _first(notices, "initial")
        if phase == "complementary":
            if initial is None:
                raise ConfigError(
                    f"breach {breach_id!r}: no initial notification recorded yet; "
                    "generate it first (--phase initial)"
                )
            if missing := missing_for_complementary(record.description):
                raise ConfigError(
                    "the complementary notification must carry every field; fill in "
                    + ", ".join(missing)
                    + f" and load the description again (leakwatch breach describe {breach_id} "
                    "--from FILE)"
                )
        deadline = regulator_deadline(
            regime, phase, aware_at, initial.generated_at if initial else None
        )
        evaluation = evaluate_notice(deadline, made_at, late_reason)
        figures = dossier_figures(store, breach_id, open_states=OPEN_STATES)
        this = RegulatorNoticeRecord(
            phase=phase,
            generated_at=made_at,
            due_at=deadline.due_at,
            on_time=evaluation.on_time,
            late_reason=evaluation.late_reason,
            dossier_sha256="",
            path="",
        )
        scheduled = _schedule(record, aware_at, notices, figures, made_at, this)
        categories = exposed_categories(figures.persons_by_mask)
        keys = [KeyKind(k) for k in sorted(figures.persons_by_key)]
        notice = generic_notice(settings, breach_id, aware_at, record.description, categories, keys)
        sources: list[dict[str, Any]] = [
            {
                "display": s.display,
                "sha256": s.sha256,
                "size": s.size,
                "media_type": s.media_type,
                "acquired_at": s.acquired_at,
                "rows_read": s.rows_read,
                "rows_rejected": s.rows_rejected,
                "refused": s.refused,
            }
            for s in figures.sources
        ]
        dossier = build_dossier(
            DossierInputs(
                breach_id=breach_id,
                regime=regime,
                phase=phase,
                generated_at=made_at,
                operator_name=settings.operator_name,
                dpo_contact=settings.dpo_contact,
                support_contact=settings.support_contact,
                aware_at=aware_at,
                aware_from=aware_from,
                confirmed_at=record.confirmed_at,
                description=record.description,
                persons_total=figures.persons_total,
                persons_former=figures.persons_former,
                persons_by_mask=figures.persons_by_mask,
                persons_by_key=figures.persons_by_key,
                persons_by_risk=figures.persons_by_risk,
                records_total=figures.records_total,
                records_by_mask=figures.records_by_mask,
                records_by_key=figures.records_by_key,
                rows_read=figures.rows_read,
                rows_rejected=figures.rows_rejected,
                sources=sources,
                notices=notice_counts(figures.notices, figures.delivery),
                notice_subject_fr=notice.subject,
                notice_text_fr=notice.text,
                deadline=deadline,
                evaluation=evaluation,
                schedule=scheduled,
                initial_dossier_sha256=initial.dossier_sha256 if initial else None,
            )
        )
        json_path, html_path, sha = write_dossier(
            dossier, output_dir, handover.write if handover.encrypted else None
        )
        record_regulator_notice(
            store,
            breach_id,
            RegulatorNoticeRecord(
                phase=phase,
                generated_at=made_at,
                due_at=deadline.due_at,
                on_time=evaluation.on_time,
                late_reason=evaluation.late_reason,
                dossier_sha256=sha,
                path=str(json_path),
            ),
        )
    return RegulatorResult(
        json_path=json_path,
        html_path=html_path,
        sha256=sha,
        phase=phase,
        due_at=deadline.due_at,
        on_time=evaluation.on_time,
        pending_fields=tuple(dossier["pending_fields"]),
    )
