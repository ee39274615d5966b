"""Values passed between stages: notice contexts, run summaries. Counts only where they leave the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from schemas.vocab import Category, KeyKind, Risk

__all__ = ["BreachFacts", "BreachTimes", "NoticeContext", "RunSummary", "SourceSummary"]


@dataclass(frozen=True)
class BreachFacts:
    """What every notice about one breach says about the breach and the operator."""

    breach_id: str
    operator_name: str
    detected_at: datetime
    summary_fr: str
    summary_en: str
    measures_fr: str
    measures_en: str
    dpo_contact: str
    support_contact: str
    sender_email: str


@dataclass(frozen=True)
class NoticeContext:
    """Everything needed to write one customer's notice. Identifiers only as masked hints."""

    notice_id: str
    customer_id: str
    language: str  # "fr" or "en"
    first_name: str | None
    last_name: str | None
    email: str | None
    matched_on: tuple[KeyKind, ...]
    categories: tuple[Category, ...]
    risk: Risk
    breach: BreachFacts
    iban_hint: str | None = None  # e.g. "FR•• •••• 1234"
    phone_hint: str | None = None  # e.g. "•• •• •• •• 78"


@dataclass(frozen=True)
class SourceSummary:
    display: str
    sha256: str
    size: int
    parser: str
    rows_read: int
    rows_rejected: int


@dataclass(frozen=True)
class BreachTimes:
    """When each step of a breach response happened (UTC); None when it has not happened."""

    created_at: datetime | None = None
    aware_at: datetime | None = None  # the officer's, else the first ingestion
    aware_recorded: bool = False  # True when the officer recorded it
    confirmed_at: datetime | None = None
    first_ingested_at: datetime | None = None
    last_ingested_at: datetime | None = None
    matched_at: datetime | None = None
    notices_planned_at: datetime | None = None
    first_sent_at: datetime | None = None
    last_sent_at: datetime | None = None
    last_delivered_at: datetime | None = None
    unsent_email_notices: int = 0
    regulator_initial_at: datetime | None = None
    regulator_complementary_at: datetime | None = None


@dataclass(frozen=True)
class RunSummary:
    """The counts a run report shows. No identifier of any customer."""

    breach_id: str
    generated_at: datetime
    customers_total: int
    sources: list[SourceSummary]
    rows_read: int
    rows_rejected: int
    rejects_by_reason: dict[str, int]
    values_rejected_by_reason: dict[str, int]
    exposed_total: int
    by_key: dict[str, int]
    by_category: dict[str, int]
    by_risk: dict[str, int]
    former_exposed: int
    notices_drafted: int
    notices_without_email: int
    column_roles: dict[str, dict[str, str]] = field(default_factory=dict)
    status: str = "suspected"
    regime: str = "telecom"
    times: BreachTimes = field(default_factory=BreachTimes)
    notices_by_state: dict[str, int] = field(default_factory=dict)  # "channel/state" -> n
    overlap_total: int = 0  # exposed customers also exposed in another breach of the store
    overlap_by_breach: dict[str, int] = field(default_factory=dict)
    former_by_time_since_end: dict[str, int] = field(default_factory=dict)
