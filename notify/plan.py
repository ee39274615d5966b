"""Turning ledger rows into notice contexts, and drafting notices into the local outbox."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.settings import Settings
from schemas.models import BreachFacts, NoticeContext
from schemas.vocab import Category, KeyKind, Risk

__all__ = ["DraftReport", "breach_facts", "column_contexts", "contexts", "quoted_hints"]

_SUMMARY_FR = (
    "Une personne non autorisée a copié une partie de notre base de clients. "
    "Nous l'avons détecté le {date} et avons identifié les données vous concernant."
)
_SUMMARY_EN = (
    "An unauthorised person copied part of our customer database. "
    "We detected it on {date} and identified which of your data were affected."
)
_MEASURES_FR = (
    "Nous avons bloqué l'accès utilisé, renforcé la surveillance de nos systèmes, "
    "déposé plainte et informé la CNIL."
)
_MEASURES_EN = (
    "We blocked the access that was used, strengthened the monitoring of our systems, "
    "filed a complaint with the police and informed the CNIL."
)


@dataclass(frozen=True)
class DraftReport:
    planned: int
    drafted: int
    without_email: int
    outbox: Path


def breach_facts(
    settings: Settings,
    breach_id: str,
    detected_at: datetime,
    description: Mapping[str, str] | None = None,
) -> BreachFacts:
    """The breach as notices tell it: the officer's description where written, defaults else."""
    text = dict(description or {})
    date_fr = detected_at.strftime("%d/%m/%Y")
    date_en = detected_at.strftime("%d %B %Y")
    return BreachFacts(
        breach_id=breach_id,
        operator_name=settings.operator_name,
        detected_at=detected_at,
        summary_fr=text.get("summary_fr") or _SUMMARY_FR.format(date=date_fr),
        summary_en=text.get("summary_en") or _SUMMARY_EN.format(date=date_en),
        measures_fr=text.get("measures_fr") or _MEASURES_FR,
        measures_en=text.get("measures_en") or _MEASURES_EN,
        dpo_contact=text.get("dpo_contact") or settings.dpo_contact,
        support_contact=text.get("support_contact") or settings.support_contact,
        sender_email=settings.sender_email,
    )


def _split(value: str | None) -> list[str]:
    return [v for v in (value or "").split(";") if v]


# Few distinct mixes across millions of rows: each ``;``-joined column value converted once.
@lru_cache(maxsize=1024)
def _kinds(value: str | None) -> tuple[KeyKind, ...]:
    return tuple(KeyKind(k) for k in _split(value))


@lru_cache(maxsize=1024)
def _categories(value: str | None) -> tuple[Category, ...]:
    return tuple(Category(c) for c in _split(value))


@lru_cache(maxsize=16)
def _risk(value: str) -> Risk:
    return Risk(value)


# The ledger row's fields a context is made of, in _context's order.
_FIELDS = (
    "notice_id", "customer_id", "language", "first_name", "last_name", "email", "matched_on",
    "categories", "risk", "iban_hint", "phone_hint",
)  # fmt: skip


def _context(
    breach: BreachFacts,
    notice_id: str,
    customer_id: str,
    language: str | None,
    first_name: str | None,
    last_name: str | None,
    email: str | None,
    matched_on: str | None,
    categories: str | None,
    risk: str,
    iban_hint: str | None,
    phone_hint: str | None,
) -> NoticeContext:
    kinds = _kinds(matched_on)
    iban_hint, phone_hint = quoted_hints(kinds, iban_hint, phone_hint)
    # In NoticeContext's field order (by position: ~0.7 µs a row less than by keyword).
    return NoticeContext(
        notice_id,
        customer_id,
        "en" if language == "en" else "fr",
        first_name,
        last_name,
        email,
        kinds,
        _categories(categories),
        _risk(risk),
        breach,
        iban_hint,
        phone_hint,
    )


def quoted_hints(
    matched_on: tuple[KeyKind, ...], iban_hint: str | None, phone_hint: str | None
) -> tuple[str | None, str | None]:
    """The ledger's hints a notice may quote: only the hint of an identifier that matched (a
    leaked IBAN that did not match ours may be an old account, and quoting ours would
    mislead)."""
    return (
        iban_hint if KeyKind.IBAN in matched_on else None,
        phone_hint if KeyKind.PHONE in matched_on else None,
    )


def contexts(rows: Iterable[Mapping[str, Any]], breach: BreachFacts) -> Iterator[NoticeContext]:
    """One context per ledger row (as given by ``matching.ledger.send_candidates``)."""
    for row in rows:
        yield _context(breach, *(row[field] for field in _FIELDS))


def column_contexts(
    columns: Mapping[str, Sequence[Any]], indexes: Sequence[int], breach: BreachFacts
) -> Iterator[NoticeContext]:
    """:func:`contexts` of the rows at ``indexes``, given by column (``to_dict()`` of the frame)."""
    picked = [[columns[field][i] for i in indexes] for field in _FIELDS]
    for values in zip(*picked, strict=True):
        yield _context(breach, *values)
