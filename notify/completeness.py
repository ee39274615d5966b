"""Refusing a customer notice that misses an art. 34(2) element or shows a full identifier."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from markupsafe import escape

from core.errors import TerminalError
from notify.render import (
    RenderedNotice,
    notice_plan,
    safe_iban_hint,
    safe_phone_hint,
    wording,
)
from schemas.models import NoticeContext
from schemas.vocab import Category

__all__ = [
    "CHECKS",
    "ELEMENTS",
    "IncompleteNoticeError",
    "check_complete",
    "missing_elements",
]

# The art. 34(2) elements and design.md §3 additions, in the order the notice gives them.
ELEMENTS: tuple[str, ...] = (
    "what_happened",
    "your_data",
    "consequences",
    "operator_measures",
    "what_you_can_do",
    "cost",
    "contacts",
    "genuine_check",
)
# Checks beyond the sections: IBAN advice and hints, and nothing that helps a phisher.
CHECKS: tuple[str, ...] = (
    "sepa_deadlines",
    "iban_hint",
    "phone_hint",
    "no_full_identifier",
    "no_link",
)

_SEPA_DEADLINES = {"fr": ("SEPA", "13 mois", "8 semaines"), "en": ("SEPA", "13 months", "8 weeks")}


# The shapes core.redact looks for, searched on a one-byte-per-class sketch of the notice
# (digit 9, ASCII letter a, IBAN/phone separator s, other phone separator t, anything else x):
# the patterns then start on a literal and checking a notice costs far less than rendering it.
def _sketch_table() -> bytes:
    table = bytearray(b"x" * 256)
    for byte in b"0123456789":
        table[byte] = ord("9")
    for byte in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz":
        table[byte] = ord("a")
    for byte in b" -.":
        table[byte] = ord("s")
    for byte in b"\t\n\r\x0b\x0c()":
        table[byte] = ord("t")
    return bytes(table)


_SKETCH = _sketch_table()
# Seven digits or more, possibly spaced, dotted or dashed (a phone number, an account number).
_PHONE_SKETCH = re.compile(rb"9(?:[st]{0,2}9){6,}")
# Two letters, two digits, then eleven or more letters or digits, possibly spaced (an IBAN).
_IBAN_SKETCH = re.compile(rb"aa99(?:s?[a9]){11,30}")
# Markup that could carry a link, a form, a script or a tracking image (HTML lowercased first).
_ACTIVE_TAG = re.compile(r"<\s*(?:a|form|script|iframe|img|object|embed|link|base|meta\s+http)\b")
_ACTIVE_ATTRIBUTES = ("href", "src=", "src =", "action=", "srcset")
_URL_MARKS = ("://", "www.", "WWW.")


class IncompleteNoticeError(TerminalError):
    """A notice we refuse to send; names the notice and the failed checks, never a value."""

    def __init__(self, notice_id: str, missing: Sequence[str]) -> None:
        self.notice_id = notice_id
        self.missing = tuple(missing)
        super().__init__(f"notice {notice_id}: refused, missing or unsafe: {', '.join(missing)}")


@lru_cache(maxsize=4096)
def _html(value: str) -> str:
    return str(escape(value))


def _shows_identifier(text: str) -> bool:
    """An e-mail address, or anything shaped like a phone number or an IBAN."""
    if "@" in text:
        return True
    spaced = text.replace("\u00a0", " ").replace("\u202f", " ")
    sketch = spaced.encode("utf-8", "replace").translate(_SKETCH)
    if b"aa99" in sketch and _IBAN_SKETCH.search(sketch):
        return True
    return bool(_PHONE_SKETCH.search(sketch))


def _has_link(text: str) -> bool:
    """A URL in the plain text (any scheme, or a bare www. address)."""
    return any(mark in text for mark in _URL_MARKS)


def _has_active_html(html: str) -> bool:
    """A URL, or markup that could carry a link, a form, a script or a tracking image."""
    low = html.lower()
    return (
        any(mark in low for mark in _URL_MARKS)
        or any(attr in low for attr in _ACTIVE_ATTRIBUTES)
        or bool(_ACTIVE_TAG.search(low))
    )


def _has_all(notice: RenderedNotice, needles: Iterable[str]) -> bool:
    """Every needle in the text, and escaped in the HTML."""
    return all(n in notice.text and _html(n) in notice.html for n in needles)


def _in_order(doc: str, needles: Iterable[str], start: int) -> int:
    """Where the last needle ends if all appear in this order from ``start``, else -1."""
    pos = start
    for needle in needles:
        found = doc.find(needle, pos)
        if found < 0:
            return -1
        pos = found + len(needle)
    return pos


def _without(haystack: str, allowed: Iterable[str]) -> str:
    for value in allowed:
        if value:
            haystack = haystack.replace(value, " ")
    return haystack


def missing_elements(notice: RenderedNotice, ctx: NoticeContext) -> list[str]:
    """The elements (:data:`ELEMENTS`) and checks (:data:`CHECKS`) this notice fails, in order.

    Each element's heading and words must appear, in the notice's section order, in the plain
    text and (escaped, after its ``data-lw`` marker) in the HTML.
    """
    w = wording(notice.language)
    plan = notice_plan(ctx.categories, ctx.matched_on)
    breach = ctx.breach
    en = notice.language == "en"
    h = w.headings
    needles: dict[str, list[str]] = {
        "what_happened": [h["what_happened"], breach.summary_en if en else breach.summary_fr],
        "your_data": [h["your_data"], *(w.labels[c] for c in plan.categories)],
        "consequences": [
            h["consequences"],
            w.general_consequence,
            *(w.consequences[k] for k in plan.consequences),
        ],
        "operator_measures": [
            h["operator_measures"],
            breach.measures_en if en else breach.measures_fr,
        ],
        "what_you_can_do": [h["what_you_can_do"], *(w.advice[k] for k in plan.advice)],
        "cost": [w.free, *([w.free_sepa] if plan.has_iban else [])],
        "contacts": [h["contacts"], breach.dpo_contact, breach.support_contact, w.cnil],
        "genuine_check": [
            h["genuine_check"],
            w.never_ask,
            *([w.iban_last4] if plan.has_iban else []),
        ],
    }
    # Sections in the notice's order: one forward pass over each format, not one per needle.
    failed: list[str] = []
    text_pos = html_pos = 0
    for element in ELEMENTS:
        in_text = _in_order(notice.text, needles[element], text_pos)
        html_needles = [f'data-lw="{element}"', *(_html(n) for n in needles[element])]
        in_html = _in_order(notice.html, html_needles, html_pos)
        if in_text < 0 or in_html < 0:
            failed.append(element)
        text_pos = max(text_pos, in_text)
        html_pos = max(html_pos, in_html)

    if plan.has_iban and not _has_all(notice, _SEPA_DEADLINES[notice.language]):
        failed.append("sepa_deadlines")
    iban_hint = safe_iban_hint(ctx.iban_hint) if plan.has_iban else None
    if iban_hint and not _has_all(notice, [iban_hint]):
        failed.append("iban_hint")
    phone_hint = safe_phone_hint(ctx.phone_hint) if Category.PHONE in plan.categories else None
    if phone_hint and not _has_all(notice, [phone_hint]):
        failed.append("phone_hint")

    # Operator-written text may hold a support number, an address or a URL; nothing else may.
    allowed = [
        breach.operator_name,
        breach.summary_en if en else breach.summary_fr,
        breach.measures_en if en else breach.measures_fr,
        breach.dpo_contact,
        breach.support_contact,
        breach.sender_email,
        notice.notice_id,
    ]
    text = _without(notice.text, allowed)
    html = _without(notice.html, [_html(a) for a in allowed])
    if _shows_identifier(text) or _shows_identifier(html) or _shows_identifier(notice.subject):
        failed.append("no_full_identifier")
    if _has_link(text) or _has_active_html(html):
        failed.append("no_link")
    return failed


def check_complete(notice: RenderedNotice, ctx: NoticeContext) -> None:
    """Raise :class:`IncompleteNoticeError` unless every element and check passes."""
    failed = missing_elements(notice, ctx)
    if failed:
        raise IncompleteNoticeError(notice.notice_id, failed)
