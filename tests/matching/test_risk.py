"""Risk decisions come with their reasons."""

from __future__ import annotations

from matching.risk import assess
from schemas.vocab import Category as C
from schemas.vocab import KeyKind as K
from schemas.vocab import Risk


def test_iban_with_identity_is_high() -> None:
    d = assess({K.IBAN}, {C.IBAN, C.NAME})
    assert d.risk is Risk.HIGH
    assert any("SEPA" in r for r in d.reasons)


def test_phone_alone_is_medium_and_flagged_as_weak_evidence() -> None:
    d = assess({K.PHONE}, {C.PHONE})
    assert d.risk is Risk.MEDIUM
    assert any("recycled" in r for r in d.reasons)


def test_email_alone_is_low() -> None:
    assert assess({K.EMAIL}, {C.EMAIL}).risk is Risk.LOW


def test_password_is_high_whatever_matched() -> None:
    assert assess({K.EMAIL}, {C.EMAIL, C.PASSWORD}).risk is Risk.HIGH


def test_iban_match_is_not_weak_evidence() -> None:
    d = assess({K.IBAN, K.PHONE}, {C.IBAN, C.PHONE})
    assert not any("recycled" in r for r in d.reasons)
