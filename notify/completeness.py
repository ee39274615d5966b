"""Refusing a customer notice that misses an art. 34(2) element or shows a full identifier."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from markupsafe import escape

from core.errors import TerminalError
from notify.render import (
    NoticePlan,
    NoticeShape,
    RenderedNotice,
    Wording,
    as_built,
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


def _needles(w: Wording, plan: NoticePlan, ctx: NoticeContext, en: bool) -> dict[str, list[str]]:
    breach = ctx.breach
    h = w.headings
    return {
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


def _element_failures(notice: RenderedNotice, ctx: NoticeContext, plan: NoticePlan) -> list[str]:
    """The sections (in order, both formats) and the SEPA deadlines: shape-level facts."""
    needles = _needles(wording(notice.language), plan, ctx, notice.language == "en")
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
    return failed


def _expected_hints(ctx: NoticeContext, plan: NoticePlan) -> dict[str, str]:
    hints: dict[str, str] = {}
    if plan.has_iban and (iban := safe_iban_hint(ctx.iban_hint)):
        hints["iban_hint"] = iban
    if Category.PHONE in plan.categories and (phone := safe_phone_hint(ctx.phone_hint)):
        hints["phone_hint"] = phone
    return hints


def _allowed(language: str, ctx: NoticeContext) -> list[str]:
    """Operator-written text may hold a support number, an address or a URL; nothing else may."""
    breach = ctx.breach
    en = language == "en"
    return [
        breach.operator_name,
        breach.summary_en if en else breach.summary_fr,
        breach.measures_en if en else breach.measures_fr,
        breach.dpo_contact,
        breach.support_contact,
        breach.sender_email,
    ]


def _safety_failures(text: str, html: str, subject: str, allowed: Sequence[str]) -> list[str]:
    failed: list[str] = []
    text = _without(text, allowed)
    html = _without(html, [_html(a) for a in allowed])
    if _shows_identifier(text) or _shows_identifier(html) or _shows_identifier(subject):
        failed.append("no_full_identifier")
    if _has_link(text) or _has_active_html(html):
        failed.append("no_link")
    return failed


def _full_check(notice: RenderedNotice, ctx: NoticeContext) -> list[str]:
    plan = notice_plan(ctx.categories, ctx.matched_on)
    failed = _element_failures(notice, ctx, plan)
    for slot, hint in _expected_hints(ctx, plan).items():
        if not _has_all(notice, [hint]):
            failed.append(slot)
    allowed = [*_allowed(notice.language, ctx), notice.notice_id]
    failed += _safety_failures(notice.text, notice.html, notice.subject, allowed)
    return failed


# --- The per-shape fast path -------------------------------------------------------------
# A notice the renderer built is its shape's words with the customer's values in the slots.
# The shape is checked once, with a neutral character in each slot (the reference slot gets
# the space the full check turns the notice id into); each notice then only proves it is that
# shape filled, and checks its values where they sit: the hints are the expected ones, and no
# identifier, link or operator text reaches into or across a slot (a window around each one).
# Anything unusual answers "not proven" and the notice gets the full check: the fast path can
# only ever skip work, never accept what the full check would refuse.
_NEUTRAL = "\ue000"  # sketches as "other", matches no needle, no mark, no tag
_WINDOW = 64  # beyond the reach of a match that starts in a literal the shape check passed
_REFERENCE = re.compile(r"[A-Za-z0-9_-]{16,128}")  # no dot: the notice's own full stops stay apart
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_VERDICTS_MAX = 1024


@dataclass(frozen=True, slots=True)
class _Verdict:
    ok: bool
    plan: NoticePlan
    # What the verdict was reached for; compared by identity first (same objects every time).
    facts: tuple[object, ...] = ()
    allowed: tuple[str, ...] = ()
    allowed_html: tuple[str, ...] = ()
    margin: int = _WINDOW
    text_slots: frozenset[str] = frozenset()
    html_slots: frozenset[str] = frozenset()
    # Per slot occurrence: (index of the part, slot name); spans follow from the lengths.
    text_layout: tuple[tuple[int, str], ...] = ()
    html_layout: tuple[tuple[int, str], ...] = ()
    references: tuple[int, int] = (0, 0)


# Keyed by the shape object (hashed by identity: the renderer makes one per shape).
_verdicts: dict[NoticeShape, list[_Verdict]] = {}


def _specimen(parts: Sequence[str]) -> str:
    return "".join(
        p if i % 2 == 0 else (" " if p == "reference" else _NEUTRAL) for i, p in enumerate(parts)
    )


def _reference_isolated(parts: Sequence[str]) -> bool:
    """No notice-id character touches a reference slot, so no id occurrence can straddle it."""
    for i in range(1, len(parts), 2):
        if parts[i] != "reference":
            continue
        before, after = parts[i - 1], parts[i + 1] if i + 1 < len(parts) else ""
        if (before and before[-1] in _ID_CHARS) or (after and after[0] in _ID_CHARS):
            return False
    return True


def _slots_in_text_content(html_parts: Sequence[str]) -> bool:
    """Every HTML slot sits between tags, never inside one (values are escaped: no ``<``)."""
    doc = ""
    for i, part in enumerate(html_parts):
        if i % 2 == 1 and doc.rfind("<") > doc.rfind(">"):
            return False
        doc = part if i % 2 == 0 else doc
    return True


def _layout(parts: Sequence[str]) -> tuple[tuple[int, str], ...]:
    return tuple((i, parts[i]) for i in range(1, len(parts), 2))


def _verdict(notice: RenderedNotice, ctx: NoticeContext, shape: NoticeShape) -> _Verdict:
    plan = notice_plan(ctx.categories, ctx.matched_on)
    facts = (notice.language, notice.subject, plan, ctx.breach)
    known = _verdicts.get(shape)
    if known is not None:
        for found in known:
            if found.facts == facts:
                return found
    allowed = _allowed(notice.language, ctx)
    specimen = RenderedNotice(
        notice.notice_id, notice.language, notice.subject,
        _specimen(shape.text), _specimen(shape.html),
    )  # fmt: skip
    ok = (
        not _element_failures(specimen, ctx, plan)
        and not _safety_failures(specimen.text, specimen.html, specimen.subject, allowed)
        and _reference_isolated(shape.text)
        and _reference_isolated(shape.html)
        and _slots_in_text_content(shape.html)
        and not any(_NEUTRAL in a for a in allowed)
    )
    verdict = _Verdict(
        ok=ok,
        plan=plan,
        facts=facts,
        allowed=tuple(a for a in allowed if a),
        allowed_html=tuple(_html(a) for a in allowed if a),
        margin=max(_WINDOW, *(len(_html(a)) for a in allowed)),
        text_slots=frozenset(shape.text[1::2]),
        html_slots=frozenset(shape.html[1::2]),
        text_layout=_layout(shape.text),
        html_layout=_layout(shape.html),
        references=(shape.text[1::2].count("reference"), shape.html[1::2].count("reference")),
    )
    if len(_verdicts) >= _VERDICTS_MAX:
        _verdicts.clear()
    _verdicts.setdefault(shape, []).append(verdict)
    return verdict


# Hints and names repeat across customers: the same window is judged once.
@lru_cache(maxsize=65536)
def _clean(window: str, allowed: tuple[str, ...], html: bool) -> bool:
    """No operator text within reach of the slot, no identifier or link in or across it.

    One window serves both: wider than either needs, it can only answer "not proven" more.
    """
    if any(a in window for a in allowed):
        return False
    if _shows_identifier(window):
        return False
    return not (_has_active_html(window) if html else _has_link(window))


def _slots_clean(
    doc: str,
    parts: tuple[str, ...],
    layout: tuple[tuple[int, str], ...],
    values: Mapping[str, str],
    allowed: tuple[str, ...],
    margin: int,
    html: bool,
) -> bool:
    """Every non-reference value, with ``margin`` characters of the notice either side, clean.

    ``doc`` is provably ``parts`` filled with ``values``: spans follow from the lengths.
    """
    pos = 0
    for index, slot in layout:
        pos += len(parts[index - 1])  # the literal before this slot (layout lists every slot)
        value = values[slot]
        end = pos + len(value)
        if slot != "reference" and not _clean(
            doc[max(0, pos - margin) : end + margin], allowed, html
        ):
            return False
        pos = end
    return True


def _fast_complete(notice: RenderedNotice, ctx: NoticeContext) -> bool:
    """True only when the notice is provably its checked shape filled with safe values."""
    built = as_built(notice)
    if built is None:
        return False
    shape, fills = built
    verdict = _verdict(notice, ctx, shape)
    if not verdict.ok:
        return False
    for slot, hint in _expected_hints(ctx, verdict.plan).items():
        if fills.get(slot) != hint or slot not in verdict.text_slots:
            return False
        if slot not in verdict.html_slots:
            return False
    notice_id = notice.notice_id
    if not _REFERENCE.fullmatch(notice_id) or fills.get("reference", notice_id) != notice_id:
        return False
    text_refs, html_refs = verdict.references
    if notice.text.count(notice_id) != text_refs or notice.html.count(notice_id) != html_refs:
        return False
    escaped = {k: _html(v) for k, v in fills.items()}
    return _slots_clean(
        notice.text, shape.text, verdict.text_layout, fills, verdict.allowed, verdict.margin, False
    ) and _slots_clean(
        notice.html, shape.html, verdict.html_layout, escaped, verdict.allowed_html,
        verdict.margin, True,
    )  # fmt: skip


def missing_elements(notice: RenderedNotice, ctx: NoticeContext) -> list[str]:
    """The elements (:data:`ELEMENTS`) and checks (:data:`CHECKS`) this notice fails, in order.

    Each element's heading and words must appear, in the notice's section order, in the plain
    text and (escaped, after its ``data-lw`` marker) in the HTML. A notice the renderer built
    is checked once per shape plus its customer's values; any other in full.
    """
    if _fast_complete(notice, ctx):
        return []
    return _full_check(notice, ctx)


def check_complete(notice: RenderedNotice, ctx: NoticeContext) -> None:
    """Raise :class:`IncompleteNoticeError` unless every element and check passes."""
    failed = missing_elements(notice, ctx)
    if failed:
        raise IncompleteNoticeError(notice.notice_id, failed)
