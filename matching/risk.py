"""Risk per exposed customer: a decision with its reasons, from what matched and what leaked."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from schemas.vocab import Category, KeyKind, Risk

__all__ = ["RiskDecision", "assess"]

_IDENTITY = frozenset(
    {Category.NAME, Category.POSTAL_ADDRESS, Category.BIRTH_DATE, Category.EMAIL, Category.PHONE}
)
_ORDER = {Risk.LOW: 0, Risk.MEDIUM: 1, Risk.HIGH: 2}


@dataclass(frozen=True)
class RiskDecision:
    risk: Risk
    reasons: tuple[str, ...]


def assess(matched_on: Set[KeyKind], categories: Set[Category]) -> RiskDecision:
    """Highest risk any rule gives, with every rule's reason (design.md §3, issue rules)."""
    found: list[tuple[Risk, str]] = []
    if Category.IBAN in categories and categories & _IDENTITY:
        found.append(
            (
                Risk.HIGH,
                "IBAN with identity data: fraudulent SEPA direct debits, convincing phishing",
            )
        )
    elif Category.IBAN in categories:
        found.append((Risk.MEDIUM, "IBAN: fraudulent SEPA direct debits"))
    if Category.PASSWORD in categories:
        found.append((Risk.HIGH, "password: account takeover"))
    if Category.ID_DOCUMENT in categories:
        found.append((Risk.HIGH, "identity document: identity fraud"))
    if {Category.NAME, Category.BIRTH_DATE, Category.POSTAL_ADDRESS} <= categories:
        found.append((Risk.MEDIUM, "name, birth date and address: impersonation"))
    if Category.PHONE in categories:
        found.append((Risk.MEDIUM, "phone number: SMS and call phishing, SIM swap"))
    if Category.EMAIL in categories:
        found.append((Risk.LOW, "e-mail address: phishing and spam"))
    if not found:
        found.append((Risk.LOW, "limited data: targeted phishing"))
    risk = max((r for r, _ in found), key=_ORDER.__getitem__)
    reasons = [reason for _, reason in found]
    if set(matched_on) == {KeyKind.PHONE}:
        reasons.append("matched on phone number only: weaker evidence, numbers are recycled")
    return RiskDecision(risk, tuple(reasons))
