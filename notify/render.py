"""Rendering customer notices (art. 34(2)) to plain text and HTML from the Jinja templates."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from markupsafe import escape

from core.redact import mask_iban, mask_phone
from schemas.models import BreachFacts, NoticeContext
from schemas.vocab import Category, KeyKind, Risk

__all__ = [
    "HINT_SLOTS",
    "LANGUAGES",
    "FilledNotice",
    "NoticePlan",
    "NoticeRenderer",
    "NoticeShape",
    "RenderedNotice",
    "Wording",
    "as_built",
    "build_environment",
    "escaped_values",
    "fill_spans",
    "html_escaped",
    "language_of",
    "notice_plan",
    "notice_values",
    "safe_iban_hint",
    "safe_phone_hint",
    "wording",
]

# The masked hints keep a few characters of a number (FR•• •••• 1234, •• •• •• •• 78): their
# slots take few distinct values, which the check and the .eml writer judge or encode once.
HINT_SLOTS = frozenset({"iban_hint", "phone_hint"})

LANGUAGES: tuple[str, ...] = ("fr", "en")

C = Category
# Most harmful first: the customer reads the list top down.
_DISPLAY_ORDER: tuple[Category, ...] = (
    C.IBAN, C.BIC, C.PASSWORD, C.ID_DOCUMENT, C.PHONE, C.EMAIL, C.NAME, C.BIRTH_DATE,
    C.BIRTH_PLACE, C.POSTAL_ADDRESS, C.CUSTOMER_NUMBER, C.CONTRACT, C.IP_ADDRESS, C.OTHER,
)  # fmt: skip
_IDENTITY = ("identity_theft", "phishing_personal")
_CONSEQUENCES: dict[Category, tuple[str, ...]] = {
    C.IBAN: ("fraudulent_debits", "phishing_iban"),
    C.BIC: ("phishing_personal",),
    C.PASSWORD: ("account_takeover",),
    C.ID_DOCUMENT: ("identity_fraud",),
    C.PHONE: ("smishing", "sim_swap"),
    C.EMAIL: ("phishing_email", "spam"),
    C.NAME: _IDENTITY,
    C.BIRTH_DATE: _IDENTITY,
    C.BIRTH_PLACE: _IDENTITY,
    C.POSTAL_ADDRESS: _IDENTITY,
    C.CUSTOMER_NUMBER: ("phishing_personal",),
    C.CONTRACT: ("phishing_personal",),
    C.IP_ADDRESS: ("phishing_personal",),
    C.OTHER: ("phishing_personal",),
}
_CONSEQUENCE_ORDER = (
    "fraudulent_debits", "phishing_iban", "account_takeover", "identity_fraud", "sim_swap",
    "smishing", "phishing_email", "identity_theft", "phishing_personal", "spam",
)  # fmt: skip
# IBAN advice is the CNIL's: watch, contest (free; 13 months / 8 weeks), creditor list, mandates.
_SEPA = ("watch_account", "sepa_contest", "creditor_list", "mandates")
_ADVICE: dict[Category, tuple[str, ...]] = {
    C.IBAN: _SEPA,
    C.PASSWORD: ("change_password", "two_factor"),
    C.ID_DOCUMENT: ("identity_watch",),
    C.PHONE: ("sms_codes", "call_back", "sim_protect"),
    C.EMAIL: ("suspicious_links", "change_password", "two_factor"),
    C.NAME: ("identity_watch",),
    C.BIRTH_DATE: ("identity_watch",),
    C.BIRTH_PLACE: ("identity_watch",),
    C.POSTAL_ADDRESS: ("identity_watch",),
}
_ALWAYS_ADVICE = ("be_wary",)
_ADVICE_ORDER = (
    *_SEPA, "change_password", "two_factor", "sms_codes", "call_back", "sim_protect",
    "suspicious_links", "identity_watch", "be_wary",
)  # fmt: skip

_MASKED_IBAN = re.compile(r"[A-Z]{2}•• •••• [A-Z0-9]{4}")
_MASKED_PHONE = re.compile(r"•• •• •• •• \d{2}")
_IBAN_SHAPE = re.compile(r"[A-Za-z]{2}\d{2}[A-Za-z0-9]{8,30}")
_NAME_MAX = 80


@dataclass(frozen=True, slots=True, eq=False)
class NoticeShape:
    """The words shared by every notice of one shape; even indexes literal, odd ones slot names.

    Checks and writers key their own per-shape work on it (by identity: one object per shape).
    """

    key: tuple[Any, ...]
    text: tuple[str, ...]
    html: tuple[str, ...]


def fill_spans(
    doc: str, parts: tuple[str, ...], fills: Mapping[str, str], escaped: bool
) -> list[tuple[str, int, int]] | None:
    """Where each slot's value sits if ``doc`` is exactly ``parts`` filled, else None.

    ``escaped``: the values as the HTML carries them. A proof, not a parse: C-speed compares.
    """
    spans: list[tuple[str, int, int]] = []
    pos = 0
    for i, part in enumerate(parts):
        if i % 2 == 0:
            if not doc.startswith(part, pos):
                return None
            pos += len(part)
            continue
        value = fills.get(part)
        if value is None:
            return None
        if escaped:
            value = html_escaped(value)
        if not doc.startswith(value, pos):
            return None
        spans.append((part, pos, pos + len(value)))
        pos += len(value)
    return spans if pos == len(doc) else None


def _escapes(value: str) -> bool:
    """Whether markupsafe changes ``value`` (five C scans: faster than one regex search)."""
    return "&" in value or "<" in value or ">" in value or '"' in value or "'" in value


def html_escaped(value: str) -> str:
    """``value`` as the HTML carries it (markupsafe's escaping): most values have nothing to
    escape and are their own escaped form."""
    return str(escape(value)) if _escapes(value) else value


def escaped_values(fills: Mapping[str, str]) -> Mapping[str, str]:
    """The values as the HTML carries them: ``fills`` itself when none changes (most notices),
    so checks and writers can tell, by identity, that one reading serves both formats."""
    if not _escapes("".join(fills.values())):
        return fills
    return MappingProxyType({k: html_escaped(v) for k, v in fills.items()})


@dataclass(frozen=True)
class RenderedNotice:
    """One customer's notice, ready for a sender: subject, plain text and HTML.

    ``shape`` and ``fills`` say how the renderer built it (the shape's words, the customer's
    values, unescaped); checks use them only once :func:`as_built` proves ``text`` and
    ``html`` are the very strings the renderer made from them, so a notice altered afterwards
    (``dataclasses.replace``, a new instance) is checked in full.
    """

    notice_id: str
    language: str
    subject: str
    text: str
    html: str
    shape: NoticeShape | None = field(default=None, compare=False, repr=False)
    fills: Mapping[str, str] | None = field(default=None, compare=False, repr=False)
    built: _Built | None = field(default=None, compare=False, repr=False)


_BUILT_KEY = object()


class _Built:
    """The renderer's own record of what it made: the very ``str`` objects, not copies.

    Only :meth:`FilledNotice.rendered` makes one (it must show the module's private key).
    Strings are immutable, so ``notice.text is built.text`` proves the text is exactly what it
    joined from ``shape`` and ``fills`` (a read-only view of a dict nobody else holds).
    """

    __slots__ = ("fills", "html", "shape", "text")

    def __init__(
        self, key: object, shape: NoticeShape, fills: Mapping[str, str], text: str, html: str
    ) -> None:
        if key is not _BUILT_KEY:
            raise TypeError("only the renderer records what it built")
        self.shape = shape
        self.fills = fills
        self.text = text
        self.html = html


def as_built(notice: RenderedNotice) -> tuple[NoticeShape, Mapping[str, str]] | None:
    """The shape and values ``notice`` is provably made of, or None (then check it in full).

    Identity, not equality: O(1) whatever the notice's length, and nothing but the renderer's
    own strings passes.
    """
    built = notice.built
    if (
        type(built) is _Built
        and notice.text is built.text
        and notice.html is built.html
        and notice.shape is built.shape
        and notice.fills is built.fills
    ):
        return built.shape, built.fills
    return None


@dataclass(frozen=True, slots=True)
class FilledNotice:
    """One customer's notice as its shape's words and the customer's values, not yet joined.

    What :meth:`NoticeRenderer.render` joins into text and HTML; checks and writers that work
    per shape take it as it is, and :meth:`rendered` joins it for everything else. ``fills``
    is a read-only copy of the values given (unescaped): what is checked is what is written.
    """

    notice_id: str
    language: str
    subject: str
    shape: NoticeShape
    fills: Mapping[str, str]
    # The values as the HTML carries them, made here from ``fills``: the very ``fills`` object
    # when no value needs escaping (checks and writers then read each value once for both).
    escaped: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fills = MappingProxyType(dict(self.fills))
        object.__setattr__(self, "fills", fills)
        object.__setattr__(self, "escaped", escaped_values(fills))

    def rendered(self) -> RenderedNotice:
        """The notice joined: the shape's words with the values (escaped in the HTML)."""
        shape, fills, escaped = self.shape, self.fills, self.escaped
        text = list(shape.text)
        text[1::2] = [fills[slot] for slot in shape.text[1::2]]
        html = list(shape.html)
        html[1::2] = [escaped[slot] for slot in shape.html[1::2]]
        built = _Built(_BUILT_KEY, shape, fills, "".join(text), "".join(html))
        return RenderedNotice(
            notice_id=self.notice_id,
            language=self.language,
            subject=self.subject,
            text=built.text,
            html=built.html,
            shape=shape,
            fills=fills,
            built=built,
        )


@dataclass(frozen=True)
class NoticePlan:
    """What a notice must say for one mix of categories and matched keys."""

    categories: tuple[Category, ...]
    matched: tuple[KeyKind, ...]
    consequences: tuple[str, ...]
    advice: tuple[str, ...]
    has_iban: bool
    phone_only: bool


@dataclass(frozen=True)
class Wording:
    """The words of one language, read from its ``_wording.<lang>.j2`` module."""

    language: str
    subject: str
    headings: dict[str, str]
    labels: dict[str, str]
    consequences: dict[str, str]
    advice: dict[str, str]
    general_consequence: str
    free: str
    free_sepa: str
    cnil: str
    never_ask: str
    iban_last4: str
    months: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _View:
    """What the layouts read; every value already safe to show (masked, sanitised)."""

    name: str | None
    urgent: bool
    operator: str
    summary: str
    detected: str
    measures: str
    dpo: str
    support: str
    reference: str
    categories: tuple[str, ...]
    hints: dict[str, str]
    matched: tuple[str, ...]
    phone_only: bool
    consequences: tuple[str, ...]
    advice: tuple[str, ...]
    has_iban: bool


def build_environment() -> jinja2.Environment:
    """The templates' environment: HTML autoescaped, undefined names fail, no reload checks."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("notify", "templates"),
        # The plain-text templates must not escape; every *.html.j2 does.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",), default_for_string=True, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Templates are package data: a stat() per render would only cost time.
        auto_reload=False,
        cache_size=-1,
    )


def language_of(ctx: NoticeContext) -> str:
    """English on request, French otherwise (design.md §3)."""
    return "en" if ctx.language == "en" else "fr"


def _wording_from(module: Any, language: str) -> Wording:
    return Wording(
        language=language,
        subject=str(module.subject),
        headings=dict(module.headings),
        labels=dict(module.labels),
        consequences=dict(module.consequences),
        advice=dict(module.advice),
        general_consequence=str(module.general_consequence),
        free=str(module.free),
        free_sepa=str(module.free_sepa),
        cnil=str(module.cnil),
        never_ask=str(module.never_ask),
        iban_last4=str(module.iban_last4),
        months=tuple(module.months),
    )


# Each language's words, compiled once per process: by the first renderer or the first check.
_wordings: dict[str, Wording] = {}


def _compiled_wording(env: jinja2.Environment, language: str) -> Wording:
    """``language``'s words as ``env`` compiles them, kept for :func:`wording` if first."""
    words = _wording_from(env.get_template(f"_wording.{language}.j2").module, language)
    return _wordings.setdefault(language, words)


def wording(language: str) -> Wording:
    """The words of ``language`` (``fr`` or ``en``), for checks that need them outside a render.

    Those a renderer compiled where one was built (its templates import them anyway: ~13 ms a
    language saved, in the drafting's start among others), else compiled here once.
    """
    found = _wordings.get(language)
    return found if found is not None else _compiled_wording(build_environment(), language)


@lru_cache(maxsize=1024)
def notice_plan(categories: tuple[Category, ...], matched_on: tuple[KeyKind, ...]) -> NoticePlan:
    """Categories to list, consequences and advice to give, for one customer's exposure.

    A matched key is exposed data even if the leaked row's categories missed it.
    """
    present = {Category(c) for c in categories} | {Category(k.value) for k in matched_on}
    shown = tuple(c for c in _DISPLAY_ORDER if c in present)
    wanted_c = {k for c in shown for k in _CONSEQUENCES[c]}
    wanted_a = {k for c in shown for k in _ADVICE.get(c, ())} | set(_ALWAYS_ADVICE)
    matched = tuple(sorted({KeyKind(k) for k in matched_on}, key=str))
    return NoticePlan(
        categories=shown,
        matched=matched,
        consequences=tuple(k for k in _CONSEQUENCE_ORDER if k in wanted_c),
        advice=tuple(k for k in _ADVICE_ORDER if k in wanted_a),
        has_iban=C.IBAN in present,
        phone_only=matched == (KeyKind.PHONE,),
    )


def _strip_controls(value: str) -> str:
    # A printable string has no character of category C (isprintable is C-speed).
    if value.isprintable():
        return value
    return "".join(ch for ch in value if not unicodedata.category(ch).startswith("C"))


def _has_digit(value: str) -> bool:
    """Any character ``str.isdigit`` accepts; no letter is one, so a name of letters and spaces
    is decided by one C-speed test."""
    return not value.replace(" ", "").isalpha() and any(map(str.isdigit, value))


def _safe_name(first: str | None, last: str | None) -> str | None:
    """The name for the salutation, or None when it is empty or looks like anything but a name.

    Names come from the customer base, which may hold anything: a name carrying digits or an
    e-mail address is dropped rather than printed, so no identifier reaches the notice. Every
    shape :func:`core.redact.redact` replaces holds a digit or an "@", so a name without either
    is its own redaction (a test holds redact to that).
    """
    raw = f"{first} {last}" if first and last else first or last or ""
    name = " ".join(_strip_controls(raw).split())
    if not name or len(name) > _NAME_MAX:
        return None
    if "@" in name or _has_digit(name):
        return None
    return name


def safe_iban_hint(hint: str | None) -> str | None:
    """The IBAN hint as printed: kept if already masked, masked if it is a whole IBAN."""
    if not hint:
        return None
    if _MASKED_IBAN.fullmatch(hint):
        return hint
    compact = re.sub(r"[\s\-.]", "", hint)
    return mask_iban(compact) if _IBAN_SHAPE.fullmatch(compact) else None


def safe_phone_hint(hint: str | None) -> str | None:
    """The phone hint as printed: kept if already masked, masked if it is a whole number."""
    if not hint:
        return None
    if _MASKED_PHONE.fullmatch(hint):
        return hint
    return mask_phone(hint) if sum(ch.isdigit() for ch in hint) >= 6 else None


_PARIS: ZoneInfo | None
try:
    _PARIS = ZoneInfo("Europe/Paris")
except ZoneInfoNotFoundError:  # pragma: no cover - system without tz database
    _PARIS = None


def _date(moment: datetime, months: tuple[str, ...]) -> str:
    """A date the customer reads as a date (French time, month in words, no digit run)."""
    if moment.tzinfo is not None and _PARIS is not None:
        moment = moment.astimezone(_PARIS)
    return f"{moment.day} {months[moment.month - 1]} {moment.year}"


def notice_values(
    plan: NoticePlan,
    notice_id: str,
    first_name: str | None,
    last_name: str | None,
    iban_hint: str | None,
    phone_hint: str | None,
) -> dict[str, str]:
    """One customer's values by slot, as :meth:`NoticeRenderer.fill` gives them: the reference,
    then the name and the masked hints where they are safe to print and the plan shows them.

    Its keys are the slots of the customer's shape (with the language, plan, breach and
    urgency): notices of one kind with the same keys share a shape.
    """
    values = {"reference": _strip_controls(notice_id)}
    if name := _safe_name(first_name, last_name):
        values["name"] = name
    if plan.has_iban and (iban := safe_iban_hint(iban_hint)):
        values["iban_hint"] = iban
    if C.PHONE in plan.categories and (phone := safe_phone_hint(phone_hint)):
        values["phone_hint"] = phone
    return values


# Per-customer values enter a rendered shape through these sentinels (private-use characters,
# which _safe_name and the hint patterns never let through).
_SLOT = re.compile("\ue000([a-z_]+)\ue001")
_SLOTS = {k: f"\ue000{k}\ue001" for k in ("name", "iban_hint", "phone_hint", "reference")}
_SHAPES_MAX = 1024
_FORMATS = ("txt", "html")


def _unslot(value: str) -> str:
    """Operator-written text, minus anything that could pass for a slot."""
    return value.replace("\ue000", "").replace("\ue001", "")


class NoticeRenderer:
    """Renders notices; build once and reuse (one environment, templates compiled once).

    Every customer with the same language, exposure, risk and breach gets the same words: the
    templates render each such *shape* once, with slots for the name, the masked hints and the
    reference, and each notice fills the slots (escaped for HTML). This keeps Jinja's cost out
    of the per-notice path.
    """

    def __init__(self) -> None:
        self._env = build_environment()
        self._templates: dict[tuple[str, str], jinja2.Template] = {
            (lang, fmt): self._env.get_template(f"notice.{lang}.{fmt}.j2")
            for lang in LANGUAGES
            for fmt in _FORMATS
        }
        self._wording = {lang: _compiled_wording(self._env, lang) for lang in LANGUAGES}
        # The layouts those templates import, compiled and run here rather than at the first
        # render: a renderer built before forking hands them to every worker (~25 ms each).
        self._layouts = [self._env.get_template(f"_notice.{fmt}.j2").module for fmt in _FORMATS]
        self._shapes: dict[tuple[Any, ...], NoticeShape] = {}
        self._serials: dict[BreachFacts, int] = {}
        self._breach: BreachFacts | None = None
        self._breach_n = 0

    def _render_shape(
        self,
        language: str,
        plan: NoticePlan,
        breach: BreachFacts,
        slots: frozenset[str],
        urgent: bool,
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        en = language == "en"
        view = _View(
            name=_SLOTS["name"] if "name" in slots else None,
            urgent=urgent,
            operator=_unslot(breach.operator_name),
            summary=_unslot(breach.summary_en if en else breach.summary_fr),
            detected=_date(breach.detected_at, self._wording[language].months),
            measures=_unslot(breach.measures_en if en else breach.measures_fr),
            dpo=_unslot(breach.dpo_contact),
            support=_unslot(breach.support_contact),
            reference=_SLOTS["reference"],
            categories=plan.categories,
            hints={c: _SLOTS[f"{c}_hint"] for c in (C.IBAN, C.PHONE) if f"{c}_hint" in slots},
            matched=plan.matched,
            phone_only=plan.phone_only,
            consequences=plan.consequences,
            advice=plan.advice,
            has_iban=plan.has_iban,
        )
        text = self._templates[language, "txt"].render(n=view)
        html = self._templates[language, "html"].render(n=view)
        # Even indexes are literal text, odd ones slot names.
        return tuple(_SLOT.split(text)), tuple(_SLOT.split(html))

    def _breach_serial(self, breach: BreachFacts) -> int:
        """A small number standing for ``breach`` in shape keys (hashing it is not cheap)."""
        if breach is not self._breach:
            serial = self._serials.get(breach)
            if serial is None:
                if len(self._serials) >= _SHAPES_MAX:
                    self._serials.clear()
                    self._shapes.clear()
                serial = self._serials[breach] = len(self._serials)
            self._breach, self._breach_n = breach, serial
        return self._breach_n

    def fill(self, ctx: NoticeContext) -> FilledNotice:
        """The customer's notice as its shape and values: :meth:`render` without the joining."""
        language = language_of(ctx)
        plan = notice_plan(ctx.categories, ctx.matched_on)
        values = notice_values(
            plan, ctx.notice_id, ctx.first_name, ctx.last_name, ctx.iban_hint, ctx.phone_hint
        )
        urgent = ctx.risk == Risk.HIGH
        breach = ctx.breach
        slots = frozenset(values)
        key = (language, plan, self._breach_serial(breach), slots, urgent)
        shape = self._shapes.get(key)
        if shape is None:
            text_shape, html_shape = self._render_shape(language, plan, breach, slots, urgent)
            shape = NoticeShape((language, plan, breach, slots, urgent), text_shape, html_shape)
            if len(self._shapes) >= _SHAPES_MAX:
                self._shapes.clear()
            self._shapes[key] = shape
        subject = self._wording[language].subject
        return FilledNotice(ctx.notice_id, language, subject, shape, values)

    def render(self, ctx: NoticeContext) -> RenderedNotice:
        return self.fill(ctx).rendered()
