"""Refusing a customer notice that misses an art. 34(2) element or shows a full identifier."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from core.errors import TerminalError
from notify.render import (
    HINT_SLOTS,
    FilledNotice,
    NoticePlan,
    NoticeShape,
    RenderedNotice,
    Wording,
    as_built,
    escaped_values,
    html_escaped,
    notice_plan,
    safe_iban_hint,
    safe_phone_hint,
    wording,
)
from schemas.models import BreachFacts, NoticeContext
from schemas.vocab import Category

__all__ = [
    "CHECKS",
    "ELEMENTS",
    "IncompleteNoticeError",
    "ShapeProof",
    "check_complete",
    "check_filled",
    "missing_elements",
    "prove_shape",
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
_DIGIT = ord("9")  # a digit in a sketch; `b"9" in sketch` first fails as an int (~0.1 µs more)
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
    return all(n in notice.text and html_escaped(n) in notice.html for n in needles)


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


def _needles(w: Wording, plan: NoticePlan, breach: BreachFacts, en: bool) -> dict[str, list[str]]:
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


@lru_cache(maxsize=256)
def _section_needles(
    language: str, plan: NoticePlan, breach: BreachFacts
) -> tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]:
    """Per element, in order: what the text must show, and the HTML after the element's
    marker (escaped). The shapes of one exposure (with or without a name or a hint) share it."""
    needles = _needles(wording(language), plan, breach, language == "en")
    return tuple(
        (
            element,
            tuple(needles[element]),
            (f'data-lw="{element}"', *(html_escaped(n) for n in needles[element])),
        )
        for element in ELEMENTS
    )


def _element_failures(notice: RenderedNotice, ctx: NoticeContext, plan: NoticePlan) -> list[str]:
    """The sections (in order, both formats) and the SEPA deadlines: shape-level facts."""
    # Sections in the notice's order: one forward pass over each format, not one per needle.
    failed: list[str] = []
    text_pos = html_pos = 0
    for element, text_needles, html_needles in _section_needles(notice.language, plan, ctx.breach):
        in_text = _in_order(notice.text, text_needles, text_pos)
        in_html = _in_order(notice.html, html_needles, html_pos)
        if in_text < 0 or in_html < 0:
            failed.append(element)
        text_pos = max(text_pos, in_text)
        html_pos = max(html_pos, in_html)
    if plan.has_iban and not _has_all(notice, _SEPA_DEADLINES[notice.language]):
        failed.append("sepa_deadlines")
    return failed


def _expected_hints(ctx: NoticeContext, plan: NoticePlan) -> dict[str, str]:
    return _hints_for(plan, ctx.iban_hint, ctx.phone_hint)


def _hints_for(plan: NoticePlan, iban_hint: str | None, phone_hint: str | None) -> dict[str, str]:
    """The masked hints a notice of ``plan`` must show, by slot, for these ledger hints."""
    hints: dict[str, str] = {}
    if plan.has_iban and (iban := safe_iban_hint(iban_hint)):
        hints["iban_hint"] = iban
    if Category.PHONE in plan.categories and (phone := safe_phone_hint(phone_hint)):
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
    html = _without(html, [html_escaped(a) for a in allowed])
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
# identifier, link or operator text reaches into or across a slot. Within _WINDOW characters
# of each value (its reach): no operator text overlaps it (the full check cuts operator text
# out first, so what stays in reach is the same text in both checks), and the reach, value
# included, shows no identifier and no link; the notice id is at the reference slots and
# nowhere else. A match the shape check did not see must overlap a value, and lies within its
# reach. Anything unusual answers "not proven" and the notice gets the full check: the fast
# path can only ever skip work, never accept what the full check would refuse.
#
# The exact form of that check reads the joined document (_document_clean). Most notices are
# decided without joining it (_quick): what lies around each value is the shape's own words,
# read once per shape (_Place), so only the values are read per notice. The quick answer is
# "clean" only where the exact check would say so, else it leaves the notice to it. When no
# value needs escaping (most notices) the text and the HTML hold the same values, and both are
# judged at once, each value read once for all its places (_quick_both: ~2.4 µs, not ~7.3).
_NEUTRAL = "\ue000"  # sketches as "other", matches no needle, no mark, no tag
_WINDOW = 64  # beyond the reach of a match that starts in a literal the shape check passed
# Between the reaches of one document, checked at once: breaks every pattern, as a string's end.
_BARRIER = "\0"
_REFERENCE = re.compile(r"[A-Za-z0-9_-]{16,128}")  # no dot: the notice's own full stops stay apart
_ID_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_ID_CHARS = frozenset(_ID_CHARACTERS)
_ID_RUNS = re.compile(r"[A-Za-z0-9_-]{16,}")  # long enough to hold a notice id (16 or more)
# How far before or after a value a URL mark (text) or a mark or attribute (HTML) overlapping it
# can reach: every one is a fixed string.
_LINK_EDGE = max(map(len, _URL_MARKS)) - 1
_MARK_EDGE = max(map(len, _URL_MARKS + _ACTIVE_ATTRIBUTES)) - 1
_TAG_OPEN = re.compile(r"<\s*\Z")  # a tag's name could start with the value (escaped: no "<")
# The marks and attributes of _has_active_html as one search: faster on a few characters.
_ACTIVE_MARKS = re.compile("|".join(map(re.escape, _URL_MARKS + _ACTIVE_ATTRIBUTES)))
_LINK_MARKS = re.compile("|".join(map(re.escape, _URL_MARKS)))
_VERDICTS_MAX = 1024
_KNOWN_MAX = 4096
_UNSEEN: Any = object()
_H = TypeVar("_H")  # what an identifier check reads: a place, or a slot's places


@dataclass(frozen=True, slots=True, eq=False)
class _Place:
    """Where one value sits in a document, and the shape's words around it.

    Compared and hashed by identity: a key to what was judged there (see _identifier_free).
    """

    slot: str
    reach: bool  # not a reference: its reach is checked
    left: str  # the words in reach before the value (the whole reach: no other value in it)
    right: str  # and after it
    # The value's first (last) characters with which operator text could run from the words
    # before it into the value (from the value into the words after it, or across them).
    first: frozenset[str]
    last: frozenset[str]
    id_left: str  # notice-id characters just before the value: an id could run across
    id_right: str
    # What a link could take from the words on either side of the value (see _quick).
    edge_left: str
    edge_right: str
    tag_open: bool
    # The sketch of the reach's words (see _shows_identifier), and whether the run of identifier
    # characters touching the value holds a digit an identifier overlapping it could take.
    sketch_left: bytes
    sketch_right: bytes
    digits_near: bool
    # No mark can run from the words into the value, nor lies in the words it is read with,
    # and no tag may open before it: one the words and value show together lies in the value.
    marks_inside: bool


@dataclass(frozen=True, slots=True)
class _Document:
    """One document of a checked shape (text or HTML), as each of its notices is checked."""

    parts: tuple[str, ...]
    allowed: tuple[str, ...]  # operator text as this document carries it, shortest first
    shortest: int  # no operator text fits in a shorter value
    inside: re.Pattern[str]  # finds any operator text in a value
    references: int
    # Per slot occurrence: (index of the part, slot name); spans follow from the lengths.
    layout: tuple[tuple[int, str], ...]
    places: tuple[_Place, ...]
    quick: bool  # False: every notice of the shape is checked on its joined document
    id_runs: tuple[str, ...]  # runs of notice-id characters in the words, long enough for one


@dataclass(frozen=True, slots=True, eq=False)
class _Slot:
    """One slot's places in both documents, judged once for a value that is its own HTML
    escape (the same characters in the text and the HTML; see _quick_both).

    Compared and hashed by identity: a key to what was judged there (see _slot_identifier_free).
    """

    name: str
    reach: bool  # not a reference: its reach is checked
    first: frozenset[str]  # every place's (see _Place)
    last: frozenset[str]
    ids: tuple[tuple[str, str], ...]  # each reach place's (id_left, id_right), once each
    places: tuple[_Place, ...]  # its reach places
    digits_near: bool  # at any of them
    html: bool  # a reach place in the HTML (else only in the text)
    # Reach places whose words could take part in a mark or open a tag: checked as _quick
    # does. At the others a mark touching the value lies in it (see _marks_inside).
    edges: tuple[tuple[_Place, bool], ...]
    shortest: int  # as _Document's, over both documents' operator text
    inside: re.Pattern[str]
    # What _value_clean said of each value seen here, for slots whose values repeat (else None).
    known: dict[str, bool | None] | None


@dataclass(frozen=True, slots=True)
class _Verdict:
    ok: bool
    plan: NoticePlan
    # What the verdict was reached for; compared by identity first (same objects every time).
    facts: tuple[object, ...]
    text: _Document
    html: _Document
    in_both: frozenset[str]  # the slots both documents hold
    # Both documents judged at once (see _quick_both), or None: a document is never quick.
    slots: tuple[_Slot, ...] | None
    id_runs: tuple[str, ...]  # both documents'


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


@lru_cache(maxsize=4096)
def _edges(
    text: str, before: str, after: str, spans: bool
) -> tuple[frozenset[str], frozenset[str]]:
    """The first and last characters of a value by which ``text`` could overlap it.

    An occurrence starting in ``before`` has ``text[:k]`` at its end, then ``text[k]`` is the
    value's first character. One starting in the value and running on has ``text[p:]`` at the
    start of ``after`` (or, if ``spans``, covering it and going on into the next value), and
    ``text[p - 1]`` is the value's last character. One inside the value is looked for as such.
    """
    first: set[str] = set()
    last: set[str] = set()
    if before:
        k = text.find(before[-1]) + 1
        while 0 < k < len(text):
            if before.endswith(text[:k]):
                first.add(text[k])
            k = text.find(before[-1], k) + 1
    if after:
        p = text.find(after[0], 1)
        while p > 0:
            rest = text[p:]
            if after.startswith(rest) or (spans and rest.startswith(after)):
                last.add(text[p - 1])
            p = text.find(after[0], p + 1)
    elif spans:  # two values side by side: anything may run across
        last.update(text[:-1])
    return frozenset(first), frozenset(last)


def _sketch_of(words: str) -> bytes:
    spaced = words.replace("\u00a0", " ").replace("\u202f", " ")
    return spaced.encode("utf-8", "replace").translate(_SKETCH)


def _digits_near(left: bytes, right: bytes) -> bool:
    """A digit in the run of identifier characters (all but "x" in the sketch) that touches
    the value from either side: the only words an identifier overlapping it could hold."""
    end = right.find(b"x")
    return b"9" in left[left.rfind(b"x") + 1 :] or b"9" in right[: end if end >= 0 else None]


def _marks_inside(edge_left: str, edge_right: str, html: bool) -> bool:
    """No mark (a URL mark, or in the HTML an attribute) can run from the words on either side
    into a value, nor lies in them: any the words and value show together lies in the value.
    The HTML is searched lowercased, character by character (no mark holds a sigma)."""
    marks = _URL_MARKS + _ACTIVE_ATTRIBUTES if html else _URL_MARKS
    if html:
        edge_left, edge_right = edge_left.lower(), edge_right.lower()
    for mark in marks:
        if mark in edge_left or mark in edge_right:
            return False
        for k in range(1, len(mark)):
            if edge_left.endswith(mark[:k]) or edge_right.startswith(mark[k:]):
                return False
    return True


@lru_cache(maxsize=4096)
def _place(
    slot: str,
    before: str,
    after: str,
    open_left: bool,
    open_right: bool,
    allowed: tuple[str, ...],
    html: bool,
) -> tuple[_Place, bool]:
    """A value's place from the words either side of it, and whether it can be judged quickly.

    ``before`` and ``after``: as much of the words as any check reads; ``open_left`` and
    ``open_right``: more words or another value lie beyond them. Shapes share most places.
    """
    quick = True
    if slot != "reference":
        # The reach must be the shape's words alone (no other value in it), and no operator
        # text may overlap it from the words: else every notice goes to the exact check.
        if (len(before) < _WINDOW and open_left) or (len(after) < _WINDOW and open_right):
            quick = False
        for text in allowed:
            near = _WINDOW + len(text) - 1
            if text in before[-near:] or text in after[:near]:
                quick = False
    id_left = before[len(before.rstrip(_ID_CHARACTERS)) :]
    id_right = after[: len(after) - len(after.lstrip(_ID_CHARACTERS))]
    if (id_left == before and open_left) or (id_right == after and open_right):
        quick = False  # a run of id characters across two values, or longer than we read
    first: set[str] = set()
    last: set[str] = set()
    for text in allowed:
        f, la = _edges(text, before[-len(text) :], after[: len(text)], open_right)
        first |= f
        last |= la
    edge = _MARK_EDGE if html else _LINK_EDGE
    left, right = before[-_WINDOW:], after[:_WINDOW]
    edge_left = left[len(left) - edge :] if len(left) > edge else left
    edge_right = right[:edge]
    tag_open = bool(_TAG_OPEN.search(left))
    sketch_left, sketch_right = _sketch_of(left), _sketch_of(right)
    place = _Place(
        slot=slot,
        reach=slot != "reference",
        left=left,
        right=right,
        first=frozenset(first),
        last=frozenset(last),
        id_left=id_left,
        id_right=id_right,
        edge_left=edge_left,
        edge_right=edge_right,
        tag_open=tag_open,
        sketch_left=sketch_left,
        sketch_right=sketch_right,
        digits_near=_digits_near(sketch_left, sketch_right),
        marks_inside=_marks_inside(edge_left, edge_right, html) and not (html and tag_open),
    )
    return place, quick


@lru_cache(maxsize=8192)
def _line_id_runs(line: str) -> tuple[str, ...]:
    return tuple(
        run for token in line.split() if len(token) >= 16 for run in _ID_RUNS.findall(token)
    )


def _long_id_runs(words: str) -> tuple[str, ...]:
    """Runs of notice-id characters long enough to hold a notice id (none spans white space).

    Line by line: shapes share most of their lines (a shape's words read in ~30 µs, not ~100).
    """
    return tuple(run for line in words.split("\n") for run in _line_id_runs(line))


@lru_cache(maxsize=256)
def _finder(allowed: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(map(re.escape, allowed)) if allowed else "(?!)")


def _document(parts: tuple[str, ...], allowed: Sequence[str], html: bool) -> _Document:
    """What each notice of this document needs checked, read once from the shape's words."""
    allowed = tuple(sorted(allowed, key=len))
    reads = _WINDOW + max(map(len, allowed), default=0)  # as far as any check of a place reads
    last_part = len(parts) - 1
    placed = []
    for i in range(1, len(parts), 2):
        before, after = parts[i - 1], parts[i + 1]
        placed.append(
            _place(
                parts[i],
                before[-reads:],
                after[:reads],
                i > 1 or len(before) > reads,
                i + 1 < last_part or len(after) > reads,
                allowed,
                html,
            )
        )
    return _Document(
        parts=parts,
        allowed=allowed,
        shortest=len(allowed[0]) if allowed else 1 << 30,
        inside=_finder(allowed),
        references=parts[1::2].count("reference"),
        layout=_layout(parts),
        places=tuple(place for place, _ in placed),
        quick=all(quick for _, quick in placed),
        id_runs=tuple(run for part in parts[0::2] for run in _long_id_runs(part)),
    )


def _slots(text: _Document, html: _Document) -> tuple[_Slot, ...]:
    """Each slot's places in both documents, merged (see _quick_both)."""
    inside = _finder(tuple(sorted({*text.allowed, *html.allowed}, key=len)))
    placed: dict[str, list[tuple[_Place, bool]]] = {}
    for document, is_html in ((text, False), (html, True)):
        for place in document.places:
            placed.setdefault(place.slot, []).append((place, is_html))
    slots = []
    for name, places in placed.items():
        reach = [(p, h) for p, h in places if p.reach]
        slots.append(
            _Slot(
                name=name,
                reach=bool(reach),
                first=frozenset().union(*(p.first for p, _ in places)),
                last=frozenset().union(*(p.last for p, _ in places)),
                ids=tuple(dict.fromkeys((p.id_left, p.id_right) for p, _ in reach)),
                places=tuple(p for p, _ in reach),
                digits_near=any(p.digits_near for p, _ in reach),
                html=any(h for _, h in reach),
                edges=tuple((p, h) for p, h in reach if not p.marks_inside),
                shortest=min(text.shortest, html.shortest),
                inside=inside,
                known={} if name in HINT_SLOTS else None,  # ~0.5 µs a notice less
            )
        )
    return tuple(slots)


def _verdict(language: str, subject: str, ctx: NoticeContext, shape: NoticeShape) -> _Verdict:
    plan = notice_plan(ctx.categories, ctx.matched_on)
    facts = (language, subject, plan, ctx.breach)
    known = _verdicts.get(shape)
    if known is not None:
        for found in known:
            if found.facts == facts:
                return found
    allowed = _allowed(language, ctx)
    specimen = RenderedNotice(
        "specimen", language, subject, _specimen(shape.text), _specimen(shape.html)
    )
    ok = (
        not _element_failures(specimen, ctx, plan)
        and not _safety_failures(specimen.text, specimen.html, specimen.subject, allowed)
        and _reference_isolated(shape.text)
        and _reference_isolated(shape.html)
        and _slots_in_text_content(shape.html)
        and not any(_NEUTRAL in a for a in allowed)
    )
    text = _document(shape.text, [a for a in allowed if a], False)
    html = _document(shape.html, [html_escaped(a) for a in allowed if a], True)
    verdict = _Verdict(
        ok=ok,
        plan=plan,
        facts=facts,
        text=text,
        html=html,
        in_both=frozenset(shape.text[1::2]) & frozenset(shape.html[1::2]),
        slots=_slots(text, html) if text.quick and html.quick else None,
        id_runs=text.id_runs + html.id_runs,
    )
    if len(_verdicts) >= _VERDICTS_MAX:
        _verdicts.clear()
    _verdicts.setdefault(shape, []).append(verdict)
    return verdict


def _clean(reaches: str, html: bool) -> bool:
    """No identifier and no link in the reaches (joined by the barrier)."""
    if _shows_identifier(reaches):
        return False
    return not (_has_active_html(reaches) if html else _has_link(reaches))


def _document_clean(
    doc: str, document: _Document, values: Mapping[str, str], notice_id: str, html: bool
) -> bool:
    """The exact per-notice check on ``doc``, provably ``document.parts`` filled with ``values``.

    The notice id only at the reference slots; every other value's reach free of operator
    text, identifiers and links (spans follow from the lengths).
    """
    if doc.count(notice_id) != document.references:
        return False
    parts = document.parts
    reaches: list[str] = []
    pos = 0
    for index, slot in document.layout:
        pos += len(parts[index - 1])  # the literal before this slot (layout lists every slot)
        end = pos + len(values[slot])
        if slot != "reference":
            start, stop = max(0, pos - _WINDOW), end + _WINDOW
            for text in document.allowed:  # any occurrence overlapping [start, stop) lies here
                if doc.find(text, max(0, start - len(text) + 1), stop + len(text) - 1) >= 0:
                    return False
            reaches.append(doc[start:stop])
        pos = end
    return _clean(_BARRIER.join(reaches), html)


@lru_cache(maxsize=8192)
def _identifier_free(place: _Place, sketch: bytes) -> bool:
    """No IBAN or phone shape in the reach of a value sketched so (no "@" in it or its words).

    By sketch, not value: masked hints differ in a few characters but sketch alike.
    """
    reach = place.sketch_left + sketch + place.sketch_right
    return not ((b"aa99" in reach and _IBAN_SKETCH.search(reach)) or _PHONE_SKETCH.search(reach))


def _quick(
    document: _Document, values: Mapping[str, str], notice_id: str, html: bool
) -> bool | None:
    """:func:`_document_clean`'s answer from the values alone, or None to leave it to it.

    No operator text can overlap a value (by its edges, or inside it), nor any reach from the
    shape's words (the shape said so); no notice id can sit in the words or across a value.
    The shape's words alone show no identifier or link (the shape check), so one the reach
    shows must overlap the value: an identifier needs a digit there or in the words it could
    take, a mark or attribute lies within its length of the value, and a tag could only start
    in the words just before it (an escaped value has no "<").
    """
    if not document.quick:
        return None
    for run in document.id_runs:
        if notice_id in run:
            return False
    shortest, inside = document.shortest, document.inside
    for place in document.places:
        value = values[place.slot]
        if _may_overlap(value, place.first, place.last, shortest, inside):
            return None
        if not place.reach:
            continue
        if notice_id in place.id_left + value + place.id_right:
            return False
        if _identifier_in(value, place.digits_near, _identifier_free, place):
            return False
        if not _unmarked(place, value, html):
            return False
    return True


def _may_overlap(
    value: str, first: frozenset[str], last: frozenset[str], shortest: int, inside: re.Pattern[str]
) -> bool:
    """Whether operator text could overlap ``value``: by its edges (an empty value, or an end
    character the words around it could continue), or inside it (an allowed text in it)."""
    if not value or value[0] in first or value[-1] in last:
        return True
    return len(value) >= shortest and inside.search(value) is not None


def _identifier_in(
    value: str, digits_near: bool, free: Callable[[_H, bytes], bool], holder: _H
) -> bool:
    """Whether the exact check finds an identifier across ``value`` (an "@"; digits, in it or
    near it, that ``free(holder, sketch)`` cannot clear)."""
    if "@" in value:
        return True
    sketch = _sketch_of(value)
    return (digits_near or _DIGIT in sketch) and not free(holder, sketch)


def _unmarked(place: _Place, value: str, html: bool) -> bool:
    """No mark (a URL mark; in the HTML an active attribute, or a tag opened before the value)
    is read across ``value`` and the words at its edges."""
    near = place.edge_left + value + place.edge_right
    if html:
        if _ACTIVE_MARKS.search(near.lower()):
            return False
        return not (
            place.tag_open and _ACTIVE_TAG.search((place.left + value + place.right).lower())
        )
    return not _LINK_MARKS.search(near)


@lru_cache(maxsize=8192)
def _slot_identifier_free(slot: _Slot, sketch: bytes) -> bool:
    """:func:`_identifier_free` at each of the slot's reach places."""
    return all(_identifier_free(place, sketch) for place in slot.places)


def _value_clean(slot: _Slot, value: str) -> bool | None:
    """What :func:`_quick_both` finds of ``value`` at ``slot`` without the notice id: None
    (not proven), False (the exact check refuses), True (clean so far)."""
    if _may_overlap(value, slot.first, slot.last, slot.shortest, slot.inside):
        return None
    if not slot.reach:
        return True
    if _identifier_in(value, slot.digits_near, _slot_identifier_free, slot):
        return False
    if _ACTIVE_MARKS.search(value.lower()) if slot.html else _LINK_MARKS.search(value):
        return False
    return all(_unmarked(place, value, html) for place, html in slot.edges)


def _quick_both(verdict: _Verdict, values: Mapping[str, str], notice_id: str) -> bool | None:
    """:func:`_quick` of both documents at once, for values that are their own HTML escape.

    Each value is read once for all its places: the union of their edge characters, both
    documents' operator text and id runs, and their reaches' identifiers; a mark touching the
    value lies in it (else its place is checked as _quick does), and one the text could show
    the HTML shows lowercased. True only where _quick says True for both documents; False
    only where it says False for one; None leaves the notice to the per-document check.
    """
    slots = verdict.slots
    if slots is None:
        return None
    for run in verdict.id_runs:
        if notice_id in run:
            return False
    for slot in slots:
        value = values[slot.name]
        known = slot.known
        if known is None:
            clean = _value_clean(slot, value)
        else:
            clean = known.get(value, _UNSEEN)
            if clean is _UNSEEN:
                if len(known) >= _KNOWN_MAX:
                    known.clear()
                clean = known[value] = _value_clean(slot, value)
        if clean is not True:
            return clean
        for id_left, id_right in slot.ids:
            if notice_id in id_left + value + id_right:
                return False
    return True


def _joined(parts: tuple[str, ...], values: Mapping[str, str]) -> str:
    return "".join(p if i % 2 == 0 else values[p] for i, p in enumerate(parts))


def _shape_complete(
    filled: FilledNotice, ctx: NoticeContext, docs: tuple[str, str] | None = None
) -> bool:
    """True only when the notice is provably its checked shape filled with safe values.

    ``docs``: its text and HTML when already joined (proven so), else joined when needed.
    """
    shape, fills, notice_id = filled.shape, filled.fills, filled.notice_id
    verdict = _verdict(filled.language, filled.subject, ctx, shape)
    if not verdict.ok:
        return False
    for slot, hint in _expected_hints(ctx, verdict.plan).items():
        if fills.get(slot) != hint or slot not in verdict.in_both:
            return False
    if not _REFERENCE.fullmatch(notice_id) or fills.get("reference", notice_id) != notice_id:
        return False
    escaped = filled.escaped
    if escaped is fills:
        both = _quick_both(verdict, fills, notice_id)
        if both is not None:
            return both
    for n, (document, values, html) in enumerate(
        ((verdict.text, fills, False), (verdict.html, escaped, True))
    ):
        clean = _quick(document, values, notice_id, html)
        if clean is None:
            doc = docs[n] if docs is not None else _joined(document.parts, values)
            clean = _document_clean(doc, document, values, notice_id, html)
        if not clean:
            return False
    return True


class ShapeProof:
    """What :func:`check_filled` proves once for one shape and kind of notice (language,
    subject, exposure, breach): a notice of that shape passes it when :meth:`passes` says so,
    from its values alone, without its context or a :class:`FilledNotice`.

    Made by :func:`prove_shape` from a notice that passed the check; for the notices of the
    same kind whose values fill the same slots (:func:`notify.render.notice_values`).
    """

    __slots__ = ("_plan", "_verdict")

    def __init__(self, verdict: _Verdict) -> None:
        self._verdict = verdict
        self._plan = verdict.plan

    def passes(
        self,
        values: Mapping[str, str],
        notice_id: str,
        iban_hint: str | None,
        phone_hint: str | None,
    ) -> bool:
        """True only where :func:`check_filled` passes the notice of this shape filled with
        ``values``, whose ledger hints are ``iban_hint`` and ``phone_hint``. False leaves the
        notice to it: it may still pass, or be refused with its reasons."""
        if values.get("reference", notice_id) != notice_id or not _REFERENCE.fullmatch(notice_id):
            return False
        for slot, hint in _hints_for(self._plan, iban_hint, phone_hint).items():
            if values.get(slot) != hint:
                return False
        if escaped_values(values) is not values:  # the per-document check decides those
            return False
        return _quick_both(self._verdict, values, notice_id) is True


def prove_shape(filled: FilledNotice, ctx: NoticeContext) -> ShapeProof | None:
    """What :func:`check_filled` proved of ``filled``'s shape and kind, for the notices of the
    same kind whose values fill the same slots; None where only each notice's own check can
    tell (the shape fails, a hint is not in both documents, the values need a full reading).

    ``filled`` and ``ctx``: a notice that :func:`check_filled` passed, and its context.
    """
    verdict = _verdict(filled.language, filled.subject, ctx, filled.shape)
    if not verdict.ok or verdict.slots is None:
        return None
    hints = HINT_SLOTS.intersection(filled.fills)
    if not hints.issubset(verdict.in_both):
        return None
    return ShapeProof(verdict)


def _fast_complete(notice: RenderedNotice, ctx: NoticeContext) -> bool:
    """True only when the notice is provably a shape the renderer filled, and complete so."""
    built = as_built(notice)
    if built is None:
        return False
    shape, fills = built
    filled = FilledNotice(notice.notice_id, notice.language, notice.subject, shape, fills)
    return _shape_complete(filled, ctx, (notice.text, notice.html))


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


def check_filled(filled: FilledNotice, ctx: NoticeContext) -> None:
    """:func:`check_complete` for a notice not yet joined: joined only if checked in full."""
    if _shape_complete(filled, ctx):
        return
    notice = filled.rendered()
    failed = _full_check(notice, ctx)
    if failed:
        raise IncompleteNoticeError(notice.notice_id, failed)
