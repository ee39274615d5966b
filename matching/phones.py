"""Phone numbers to E.164: the phonenumbers reference and a vectorised polars fast path.

Overseas rule (design.md §4). French overseas numbers are written in the French national
format (``0692…``) or behind ``+33``/``0033``/``33`` by sloppy exports. Whenever a number reads
as calling code +33, its national significant number N is also read under each overseas calling
code (+262 Réunion/Mayotte, +590 Guadeloupe/Saint-Barthélemy/Saint-Martin, +594 Guyane,
+596 Martinique, +508 Saint-Pierre-et-Miquelon). If N is valid under exactly one of them, the
number is that overseas number, even when phonenumbers would also accept it as +33: its French
metadata overlaps ranges that are allocated overseas (``0263``, ``0269``, ``0596``, ``05987``…),
and keeping those as +33 would give ``0596 …`` and ``+596 596 …`` two different keys. If N is
valid under none (or, ambiguously, several) of them, plain phonenumbers validity as +33 decides.
So ``0692 12 34 56`` → ``+262692123456``, ``0639…`` → +262 (Mayotte), ``0690…``/``0691…`` →
+590, ``0694…`` → +594, ``0696…``/``0697…`` → +596, and the same for the landlines ``0262…``,
``0269…``, ``0590…``, ``0594…``, ``0596…``. Customers and leaks go through the same rule.

The fast path decides only metropolitan shapes it is sure of (valid as +33, valid under no
overseas code, for every number of the 3-digit prefix); every other row takes the reference.
"""

from __future__ import annotations

import phonenumbers
import polars as pl

from matching.identity import fill_from_reference

__all__ = [
    "MAX_PHONE_LENGTH",
    "OVERSEAS_CALLING_CODES",
    "REASON_PHONE_INVALID",
    "REASON_PHONE_NON_ASCII",
    "REASON_PHONE_TOO_LONG",
    "REASON_PHONE_UNPARSEABLE",
    "normalise_phone",
    "normalise_phones",
]

REASON_PHONE_INVALID = "invalid phone number"
REASON_PHONE_UNPARSEABLE = "unparseable phone number"
REASON_PHONE_NON_ASCII = "non-ASCII digits in phone number"
REASON_PHONE_TOO_LONG = "phone number too long"

MAX_PHONE_LENGTH = 40
"""Longer stripped inputs are rejected before phonenumbers (and its regexes) sees them."""

OVERSEAS_CALLING_CODES: tuple[int, ...] = (262, 590, 594, 596, 508)
"""RE/YT, GP/BL/MF, GF, MQ, PM: the regions a +33 national number may really belong to."""

_FRANCE_CALLING_CODE = 33

# 3-digit national significant prefixes where every number is valid as +33 and none is valid
# under an overseas calling code (derived by enumerating phonenumbers 9.0 metadata; checked by
# tests/matching/test_phones.py). Anything outside goes to the reference path.
_FAST_PREFIX_RANGES: tuple[tuple[int, int], ...] = (
    (100, 261),
    (264, 267),
    (270, 399),
    (410, 589),
    (591, 593),
    (595, 595),
    (597, 597),
    (599, 599),
    (600, 638),
    (640, 689),
    (695, 695),
    (698, 699),
    (730, 799),
    (900, 938),
    (940, 946),
    (948, 975),
    (977, 999),
)
FAST_PREFIXES: frozenset[str] = frozenset(
    str(p) for low, high in _FAST_PREFIX_RANGES for p in range(low, high + 1)
)

# A candidate for the fast path: ASCII digits and the usual separators, '+' only first.
# Rust regexes run in linear time, and the length is bounded first anyway.
_FAST_SHAPE = r"^\+?[0-9(][0-9 .()\-]*$"
_FAST_MAX_CHARS = 30
_PLUS_FORM = r"^330?([1-9][0-9]{8})$"
_BARE_FORM = r"^(?:0|00330?|330?)?([1-9][0-9]{8})$"
_ASCII_BLANK = r"^[ \t\n\r\x0b\x0c]*$"


def _has_non_ascii_digit(text: str) -> bool:
    # isdigit() is what phonenumbers' digit folding accepts (decimal and other digit forms).
    return any(ch.isdigit() and not ch.isascii() for ch in text)


def _overseas_e164(national: str) -> str | None:
    """The overseas E.164 number when exactly one overseas calling code accepts `national`."""
    if not national.isdigit() or national.startswith("0"):
        return None
    found = [
        candidate
        for code in OVERSEAS_CALLING_CODES
        if phonenumbers.is_valid_number(
            candidate := phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
        )
    ]
    if len(found) != 1:
        return None
    return phonenumbers.format_number(found[0], phonenumbers.PhoneNumberFormat.E164)


def normalise_phone(value: str | None, default_region: str = "FR") -> tuple[str | None, str | None]:
    """Reference (exact) path using `phonenumbers`: returns (E.164 or None, reason or None).

    Empty/None/whitespace input -> (None, None). Invalid -> (None, reason).
    """
    if value is None:
        return None, None
    text = value.strip()
    if not text:
        return None, None
    if len(text) > MAX_PHONE_LENGTH:
        return None, REASON_PHONE_TOO_LONG
    if _has_non_ascii_digit(text):
        return None, REASON_PHONE_NON_ASCII
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None, REASON_PHONE_UNPARSEABLE
    if number.country_code == _FRANCE_CALLING_CODE:
        overseas = _overseas_e164(phonenumbers.national_significant_number(number))
        if overseas is not None:
            return overseas, None
    if not phonenumbers.is_valid_number(number):
        return None, REASON_PHONE_INVALID
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def _fast_canonical(values: pl.Expr) -> pl.Expr:
    """E.164 for the metropolitan shapes the fast path is sure of, null for every other row."""
    text = values.str.strip_chars(" \t")
    digits = text.str.replace_all(r"[^0-9]", "")
    national = (
        pl.when(text.str.starts_with("+"))
        .then(digits.str.extract(_PLUS_FORM, 1))
        .otherwise(digits.str.extract(_BARE_FORM, 1))
    )
    sure = (
        (text.str.len_chars() <= _FAST_MAX_CHARS)
        & text.str.contains(_FAST_SHAPE)
        & national.str.slice(0, 3).is_in(sorted(FAST_PREFIXES))
    )
    return pl.when(sure).then(pl.lit("+33") + national)


def normalise_phones(values: pl.Series, default_region: str = "FR") -> pl.DataFrame:
    """Vectorised: a frame with columns "canonical" (pl.String, E.164 or null) and "reason".

    Same length and order as `values`; equals normalise_phone row by row, byte for byte.
    """
    frame = pl.DataFrame({"value": values.cast(pl.String)})
    value = pl.col("value")
    blank = value.is_null() | value.str.contains(_ASCII_BLANK)
    fast = _fast_canonical(value) if default_region == "FR" else pl.lit(None, dtype=pl.String)
    frame = frame.with_columns(canonical=fast, reason=pl.lit(None, dtype=pl.String))
    frame = frame.with_columns(pending=~blank & pl.col("canonical").is_null())
    return fill_from_reference(frame, lambda text: normalise_phone(text, default_region))
