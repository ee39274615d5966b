"""When each regulator and customer notice of a breach is due, and whether it was on time (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from core.errors import ConfigError

__all__ = [
    "CUSTOMER_TARGET_HOURS",
    "Deadline",
    "DeadlineState",
    "LateReasonRequiredError",
    "OnTime",
    "Phase",
    "Regime",
    "ScheduledDeadline",
    "customer_deadline",
    "deadline_state",
    "deadlines",
    "evaluate_notice",
    "parse_moment",
    "regulator_deadline",
    "schedule",
    "to_utc",
]

Regime = Literal["telecom", "gdpr"]
Phase = Literal["initial", "complementary"]
DeadlineState = Literal["met", "missed", "pending"]

# Not a legal deadline: GDPR art. 34(1) and Reg. 611/2013 art. 3(1) say "without undue delay".
# This is the operator's own target, counted from the DPO's confirmation.
CUSTOMER_TARGET_HOURS = 72

_TELECOM_INITIAL = (
    "Règlement (UE) 611/2013, art. 2(2) ; loi Informatique et Libertés, art. 85 — "
    "notification à la CNIL au plus tard 24 heures après la détection, si possible"
)
_TELECOM_COMPLEMENTARY = (
    "Règlement (UE) 611/2013, art. 2(3) — notification complémentaire au plus tard "
    "3 jours après la notification initiale"
)
_GDPR_INITIAL = (
    "RGPD art. 33(1) — notification à l'autorité de contrôle dans les 72 heures après en avoir "
    "pris connaissance ; au-delà, accompagnée des motifs du retard"
)
_GDPR_COMPLEMENTARY = (
    "RGPD art. 33(4) — informations communiquées de manière échelonnée, sans autre retard indu "
    "(pas de délai chiffré)"
)
_CUSTOMERS = (
    "RGPD art. 34(1) ; Règlement (UE) 611/2013, art. 3(1) — communication aux personnes "
    "« dans les meilleurs délais » : objectif interne, pas un délai légal"
)


class LateReasonRequiredError(ConfigError):
    """A regulator notice made after its due time must say why (GDPR art. 33(1))."""


@dataclass(frozen=True)
class Deadline:
    """One notice's due time (UTC), where its clock starts, and the rule that sets it.

    ``due_at`` is None when the clock has not started (customers before confirmation) or when
    the law sets no figure (a GDPR complementary phase). ``binding`` is False for targets.
    """

    key: str
    label: str
    due_at: datetime | None
    starts_from: str
    legal_basis: str
    binding: bool
    provisional: bool = False


@dataclass(frozen=True)
class OnTime:
    """A notice's evaluation: made at, due at, on time or not, and the reason when late."""

    made_at: datetime
    due_at: datetime | None
    on_time: bool
    late_reason: str | None


def to_utc(moment: datetime) -> datetime:
    """The same instant in UTC; a moment without an offset is refused (it would be ambiguous)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigError(
            "a time needs its UTC offset (e.g. 2024-10-17T09:30:00+02:00 or …Z): "
            "local times are ambiguous across daylight-saving changes"
        )
    return moment.astimezone(UTC)


def parse_moment(text: str, *, what: str) -> datetime:
    """An ISO 8601 time with its offset, in UTC; ``what`` names the option or field in errors."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ConfigError(
            f"{what}: not an ISO 8601 time (expected e.g. 2024-10-17T09:30:00+02:00)"
        ) from None
    try:
        return to_utc(moment)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def regulator_deadline(
    regime: Regime, phase: Phase, aware_at: datetime, initial_at: datetime | None = None
) -> Deadline:
    """The due time of a regulator notice.

    - ``telecom``, initial: 24 h after detection (Reg. 611/2013 art. 2(2): "no later than 24
      hours after the detection … where feasible"; detection is the moment the provider
      "has acquired sufficient awareness", which is the officer's awareness time).
    - ``telecom``, complementary: art. 2(3) says the remaining information is due "at the latest
      within three days following the initial notification" — so 72 h from the *initial
      notification*, not from awareness. Until the initial notice is made, it is counted from the
      initial notice's own due time and marked provisional (a late initial notice moves it).
    - ``gdpr``, initial: 72 h after awareness (art. 33(1)).
    - ``gdpr``, complementary: art. 33(4) allows phases "without undue further delay" and sets
      no figure, so there is no due time.

    All arithmetic is in UTC, so a daylight-saving change between awareness and the deadline
    shifts the local clock reading, never the elapsed hours.
    """
    aware = to_utc(aware_at)
    if regime == "telecom" and phase == "initial":
        return Deadline(
            "regulator_initial",
            "CNIL — notification initiale",
            aware + timedelta(hours=24),
            "awareness",
            _TELECOM_INITIAL,
            binding=True,
        )
    if regime == "telecom":
        anchor = to_utc(initial_at) if initial_at else aware + timedelta(hours=24)
        return Deadline(
            "regulator_complementary",
            "CNIL — notification complémentaire",
            anchor + timedelta(days=3),
            "initial notification",
            _TELECOM_COMPLEMENTARY,
            binding=True,
            provisional=initial_at is None,
        )
    if phase == "initial":
        return Deadline(
            "regulator_initial",
            "CNIL — notification (72 h)",
            aware + timedelta(hours=72),
            "awareness",
            _GDPR_INITIAL,
            binding=True,
        )
    return Deadline(
        "regulator_complementary",
        "CNIL — notification complémentaire (échelonnée)",
        None,
        "initial notification",
        _GDPR_COMPLEMENTARY,
        binding=True,
    )


def customer_deadline(
    confirmed_at: datetime | None, target_hours: int = CUSTOMER_TARGET_HOURS
) -> Deadline:
    """The operator's target for notifying customers: ``target_hours`` after confirmation."""
    due = to_utc(confirmed_at) + timedelta(hours=target_hours) if confirmed_at else None
    return Deadline(
        "customers",
        f"Clients — objectif {target_hours} h après confirmation",
        due,
        "confirmation",
        _CUSTOMERS,
        binding=False,
    )


def deadlines(
    regime: Regime,
    aware_at: datetime,
    *,
    confirmed_at: datetime | None = None,
    initial_at: datetime | None = None,
    customer_target_hours: int = CUSTOMER_TARGET_HOURS,
) -> tuple[Deadline, ...]:
    """Every deadline of a breach: regulator initial and complementary, then the customer target."""
    return (
        regulator_deadline(regime, "initial", aware_at),
        regulator_deadline(regime, "complementary", aware_at, initial_at),
        customer_deadline(confirmed_at, customer_target_hours),
    )


def deadline_state(deadline: Deadline, done_at: datetime | None, now: datetime) -> DeadlineState:
    """Met (done by the due time), missed (done late, or not done and past due), else pending."""
    due = deadline.due_at
    if done_at is not None:
        return "met" if due is None or to_utc(done_at) <= due else "missed"
    if due is not None and to_utc(now) > due:
        return "missed"
    return "pending"


def evaluate_notice(
    deadline: Deadline, made_at: datetime, late_reason: str | None = None
) -> OnTime:
    """On time or late; a late notice without a reason is refused (art. 33(1): "accompanied by
    reasons for the delay"). A reason given for an on-time notice is not kept."""
    made = to_utc(made_at)
    reason = (late_reason or "").strip() or None
    if deadline.due_at is None or made <= deadline.due_at:
        return OnTime(made_at=made, due_at=deadline.due_at, on_time=True, late_reason=None)
    if reason is None:
        late_by = made - deadline.due_at
        hours = int(late_by.total_seconds() // 3600)
        raise LateReasonRequiredError(
            f"the notice '{deadline.label}' is late: due {deadline.due_at:%Y-%m-%d %H:%M} UTC, "
            f"made {made:%Y-%m-%d %H:%M} UTC ({hours} h late); give the reasons for the delay "
            "with --late-reason TEXT (GDPR art. 33(1))"
        )
    return OnTime(made_at=made, due_at=deadline.due_at, on_time=False, late_reason=reason)


@dataclass(frozen=True)
class ScheduledDeadline:
    """A deadline with when it was done (if it was) and its state at ``now``."""

    deadline: Deadline
    done_at: datetime | None
    state: DeadlineState


def schedule(
    regime: Regime,
    aware_at: datetime,
    *,
    now: datetime,
    confirmed_at: datetime | None = None,
    initial_at: datetime | None = None,
    complementary_at: datetime | None = None,
    customers_done_at: datetime | None = None,
    customer_target_hours: int = CUSTOMER_TARGET_HOURS,
) -> tuple[ScheduledDeadline, ...]:
    """Every deadline of a breach with its state: what ``breach status`` and the dossier show."""
    done = (initial_at, complementary_at, customers_done_at)
    return tuple(
        ScheduledDeadline(d, when, deadline_state(d, when, now))
        for d, when in zip(
            deadlines(
                regime,
                aware_at,
                confirmed_at=confirmed_at,
                initial_at=initial_at,
                customer_target_hours=customer_target_hours,
            ),
            done,
            strict=True,
        )
    )
