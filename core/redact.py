"""Redaction of personal values and secrets before anything is logged or raised."""

from __future__ import annotations

import re

__all__ = ["mask_iban", "mask_phone", "redact"]

_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ \-.]?[A-Z0-9]){11,30}\b", re.IGNORECASE)
_EMAIL = re.compile(r"[^\s@<>\"']{1,64}@[^\s@<>\"']{1,255}")
# Seven or more digits, possibly spaced, dotted or dashed, possibly with a leading +.
_PHONE = re.compile(r"\+?\d(?:[\s.\-()]{0,2}\d){6,}")


def redact(text: str) -> str:
    """Replace anything shaped like an IBAN, e-mail address or phone number."""
    text = _IBAN.sub("[iban]", text)
    text = _EMAIL.sub("[email]", text)
    return _PHONE.sub("[number]", text)


def mask_iban(iban: str) -> str:
    """Country code and last four characters of a compact IBAN: ``FR•• •••• 1234``."""
    compact = re.sub(r"[\s\-.]", "", iban).upper()
    if len(compact) < 8:
        return "••••"
    return f"{compact[:2]}•• •••• {compact[-4:]}"


def mask_phone(e164: str) -> str:
    """Only the last two digits of a phone number: ``•• •• •• •• 78``."""
    digits = re.sub(r"\D", "", e164)
    return f"•• •• •• •• {digits[-2:]}" if len(digits) >= 4 else "••"
