"""E-mail addresses to trimmed lower case: a plain-Python reference and a vectorised polars path.

Rules: trim, lower-case; exactly one ``@``; local part of 1–64 characters without whitespace or
control characters; domain of at least two dot-separated labels, each non-empty, of ``[a-z0-9-]``,
not starting or ending with a hyphen; at most 254 characters in all. The polars path decides
ASCII rows; rows with any non-ASCII character take the reference (Python's and Rust's Unicode
trimming and lower-casing differ at the edges).
"""

from __future__ import annotations

import re
import unicodedata

import polars as pl

from matching.identity import fill_from_reference

__all__ = [
    "MAX_EMAIL_LENGTH",
    "MAX_LOCAL_LENGTH",
    "REASON_EMAIL_INVALID",
    "normalise_email",
    "normalise_emails",
]

REASON_EMAIL_INVALID = "invalid e-mail address"
MAX_EMAIL_LENGTH = 254
MAX_LOCAL_LENGTH = 64

_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+{_LABEL}", re.ASCII)
# ASCII rows: the local part excludes '@', controls (which include every ASCII whitespace that
# str.isspace knows, \x1c-\x1f too), space and DEL.
_ASCII_ADDRESS = rf"^[^@\x00-\x20\x7f]{{1,{MAX_LOCAL_LENGTH}}}@(?:{_LABEL}\.)+{_LABEL}$"
_ASCII_ROW = r"^[\x00-\x7f]*$"
# What str.strip() removes from an ASCII string.
_ASCII_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


def _bad_local_char(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) == "Cc"


def normalise_email(value: str | None) -> tuple[str | None, str | None]:
    """Reference: (trimmed lower-case address or None, reason or None); blank -> (None, None)."""
    if value is None:
        return None, None
    text = value.strip().lower()
    if not text:
        return None, None
    if len(text) > MAX_EMAIL_LENGTH or text.count("@") != 1:
        return None, REASON_EMAIL_INVALID
    local, domain = text.split("@")
    if not 1 <= len(local) <= MAX_LOCAL_LENGTH or any(_bad_local_char(ch) for ch in local):
        return None, REASON_EMAIL_INVALID
    if not _DOMAIN.fullmatch(domain):
        return None, REASON_EMAIL_INVALID
    return text, None


def normalise_emails(values: pl.Series) -> pl.DataFrame:
    """Vectorised: columns "canonical" and "reason", identical to normalise_email row by row."""
    value = pl.col("value")
    text = value.str.strip_chars(_ASCII_WHITESPACE).str.to_lowercase()
    ascii_row = value.str.contains(_ASCII_ROW)
    frame = pl.DataFrame({"value": values.cast(pl.String)}).with_columns(
        ascii_row=ascii_row.fill_null(value=False),
        text=text,
    )
    text = pl.col("text")
    ascii_row = pl.col("ascii_row")
    valid = (text.str.len_bytes() <= MAX_EMAIL_LENGTH) & text.str.contains(_ASCII_ADDRESS)
    blank = value.is_null() | (ascii_row & (text.str.len_bytes() == 0))
    frame = frame.with_columns(
        canonical=pl.when(ascii_row & valid).then(text),
        reason=pl.when(ascii_row & ~blank & ~valid).then(pl.lit(REASON_EMAIL_INVALID)),
        pending=~ascii_row & ~blank,
    )
    return fill_from_reference(frame, normalise_email)
