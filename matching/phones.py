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

The fast path decides metropolitan shapes it is sure of (valid as +33, valid under no overseas
code, for every number of the 3-digit prefix). A second vectorised stage decides the other
nine-digit national numbers (behind ``0``, ``+33``, ``0033``, ``33`` or bare) and the
``+262/+590/+594/+596/+508`` international ones by evaluating phonenumbers' own metadata (each
region's number patterns and possible lengths, as ``is_valid_number`` does) in polars, and refuses
bare ``0…`` digit strings that no reading can make valid. Every other row takes the reference.

``phone_automaton`` compiles the same metadata into one minimal DFA over digits, which the native
scanner (matching/_scan.c) walks to take the second stage's decisions itself. The polars stage
stays as it is: an independent implementation the scanner's differential tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import phonenumbers
import polars as pl
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from matching.identity import fill_from_reference

__all__ = [
    "MAX_PHONE_LENGTH",
    "OVERSEAS_CALLING_CODES",
    "REASON_PHONE_INVALID",
    "REASON_PHONE_NON_ASCII",
    "REASON_PHONE_TOO_LONG",
    "REASON_PHONE_UNPARSEABLE",
    "PhoneAutomaton",
    "normalise_phone",
    "normalise_phones",
    "phone_automaton",
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
# '/' and the no-break space (spreadsheet exports) are punctuation to phonenumbers as well.
# Rust regexes run in linear time, and the length is bounded first anyway.
_FAST_SHAPE = "^\\+?[0-9(][0-9 .()\\-/\u00a0]*$"
_FAST_MAX_CHARS = 30
_PLUS_FORM = r"^330?([1-9][0-9]{8})$"
_BARE_FORM = r"^(?:0|00330?|330?)?([1-9][0-9]{8})$"
_ASCII_BLANK = r"^[ \t\n\r\x0b\x0c]*$"
# International overseas numbers: a calling code of OVERSEAS_CALLING_CODES, nine digits.
_OVERSEAS_PLUS_FORM = r"^(262|590|594|596|508)([1-9][0-9]{8})$"
# Bare national digit strings: '0', a non-zero digit, then digits; at most 17 digits in all
# (phonenumbers' longest national number), so parsing never fails on them.
_BARE_NATIONAL = r"^0[1-9][0-9]{1,15}$"
# The number types is_valid_number accepts (phonenumbers' _number_type_helper).
_NUMBER_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


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


def _matches(desc: object, nsn: pl.Expr) -> pl.Expr | None:
    """phonenumbers' _is_number_matching_desc: a possible length and the whole pattern."""
    pattern = getattr(desc, "national_number_pattern", None)
    if not pattern:
        return None
    matched = nsn.str.contains(f"^(?:{pattern})$")
    lengths = list(getattr(desc, "possible_length", ()) or ())
    if lengths:
        matched = nsn.str.len_chars().is_in(lengths) & matched
    return matched


def _valid_under(code: int, nsn: pl.Expr) -> pl.Expr | None:
    """``is_valid_number`` of +code nsn (nsn without a leading zero), or None if not expressible.

    Without leading-digit rules the region is the first whose number types accept the number,
    so the number is valid iff one region's general pattern and one of its types accept it.
    """
    terms: list[pl.Expr] = []
    for region in COUNTRY_CODE_TO_REGION_CODE.get(code, ()):
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None or metadata.leading_digits:
            return None
        general = _matches(metadata.general_desc, nsn)
        if general is None:
            continue
        types = [
            matched
            for name in _NUMBER_TYPES
            if not (name == "mobile" and metadata.same_mobile_and_fixed_line_pattern)
            and (matched := _matches(getattr(metadata, name), nsn)) is not None
        ]
        if types:
            terms.append(general & pl.any_horizontal(types))
    return pl.any_horizontal(terms) if terms else pl.lit(value=False)


def _france_parses_plainly() -> bool:
    """French national numbers lose exactly their ``0`` when parsed: the stage's premise."""
    france = PhoneMetadata.metadata_for_region("FR")
    return (
        france is not None
        and france.national_prefix_for_parsing == "0"
        and not france.national_prefix_transform_rule
    )


@cache
def _validity(column: str) -> dict[int, pl.Expr] | None:
    """Validity of ``column`` under +33 and each overseas code; None disables the stage."""
    if not _france_parses_plainly():
        return None
    exprs: dict[int, pl.Expr] = {}
    for code in (_FRANCE_CALLING_CODE, *OVERSEAS_CALLING_CODES):
        expr = _valid_under(code, pl.col(column))
        if expr is None:
            return None
        exprs[code] = expr.fill_null(value=False)
    try:  # a pattern the Rust regex engine cannot take disables the stage, never the result
        pl.DataFrame({column: ["612345678"]}).select(*(e.alias(str(c)) for c, e in exprs.items()))
    except pl.exceptions.PolarsError:
        return None
    return exprs


def _national_stage(values: pl.Series) -> pl.DataFrame:
    """Columns "canonical" and "reason" for the rows this stage decides; both null elsewhere.

    Decided: nine-digit numbers read as +33 (the overseas rule, then validity as +33),
    nine-digit numbers behind an explicit overseas calling code (validity under it), and bare
    ``0…`` digit strings that are valid under no reading phonenumbers may choose (the national
    prefix stripped or kept).
    """
    none = pl.lit(None, dtype=pl.String)
    at_nsn, at_zero = _validity("nsn"), _validity("zero_kept")
    if at_nsn is None or at_zero is None:
        return pl.DataFrame({"value": values}).select(canonical=none, reason=none)
    text = pl.col("value").str.strip_chars(" \t")
    digits = text.str.replace_all(r"[^0-9]", "")
    shaped = (text.str.len_chars() <= _FAST_MAX_CHARS) & text.str.contains(_FAST_SHAPE)
    plus = text.str.starts_with("+")
    frame = pl.DataFrame({"value": values}).with_columns(
        national=pl.when(shaped).then(
            pl.when(plus)
            .then(digits.str.extract(_PLUS_FORM, 1))
            .otherwise(digits.str.extract(_BARE_FORM, 1))
        ),
        code=pl.when(shaped & plus).then(digits.str.extract(_OVERSEAS_PLUS_FORM, 1)),
        abroad=pl.when(shaped & plus).then(digits.str.extract(_OVERSEAS_PLUS_FORM, 2)),
        zero_kept=pl.when(text.str.contains(_BARE_NATIONAL)).then(text),
    )
    frame = frame.with_columns(
        bare=pl.col("national").is_null() & pl.col("zero_kept").is_not_null()
    ).with_columns(
        nsn=pl.coalesce(
            "national", "abroad", pl.when("bare").then(pl.col("zero_kept").str.slice(1))
        )
    )
    frame = frame.with_columns(
        **{f"v{code}": expr for code, expr in at_nsn.items()},
        zero_valid=at_zero[_FRANCE_CALLING_CODE],
    )
    overseas = [str(code) for code in OVERSEAS_CALLING_CODES]
    n_overseas = pl.sum_horizontal(pl.col(f"v{code}").cast(pl.Int8) for code in overseas)
    only = pl.coalesce(*(pl.when(pl.col(f"v{code}")).then(pl.lit(code)) for code in overseas))
    abroad_valid = pl.coalesce(
        *(pl.when(pl.col("code") == code).then(pl.col(f"v{code}")) for code in overseas)
    )
    national = pl.col("national").is_not_null()
    abroad = pl.col("abroad").is_not_null()
    hopeless = (
        pl.col("bare")
        & (n_overseas == 0)
        & ~pl.col(f"v{_FRANCE_CALLING_CODE}")
        & ~pl.col("zero_valid")
    )
    canonical = (
        pl.when(national & (n_overseas == 1))
        .then(pl.lit("+") + only + pl.col("nsn"))
        .when(national & pl.col(f"v{_FRANCE_CALLING_CODE}"))
        .then(pl.lit("+33") + pl.col("nsn"))
        .when(abroad & abroad_valid)
        .then(pl.lit("+") + pl.col("code") + pl.col("nsn"))
    )
    invalid = (national | abroad | hopeless) & canonical.is_null()
    return frame.select(
        canonical=canonical, reason=pl.when(invalid).then(pl.lit(REASON_PHONE_INVALID))
    )


# -- the same validity as a digit automaton (what the native scanner walks) ----------------------


@dataclass(frozen=True)
class PhoneAutomaton:
    """A DFA over ASCII digits telling under which calling codes a national number is valid.

    State 0 is the start; ``transitions[10 * state + digit]`` is the next state and bit ``i`` of
    ``accepting[state]`` says the digits read so far are valid under ``codes[i]``, as
    ``_valid_under`` (phonenumbers' ``is_valid_number``) says.
    """

    codes: tuple[int, ...]
    transitions: tuple[int, ...]
    accepting: tuple[int, ...]

    def mask(self, nsn: str) -> int:
        """The accepting bits of ``nsn`` (ASCII digits only)."""
        state = 0
        for ch in nsn:
            state = self.transitions[10 * state + ord(ch) - 48]
        return self.accepting[state]

    def valid_codes(self, nsn: str) -> tuple[int, ...]:
        """The calling codes under which ``nsn`` is valid, in ``codes`` order."""
        bits = self.mask(nsn)
        return tuple(code for i, code in enumerate(self.codes) if bits >> i & 1)


class _Unsupported(ValueError):
    """A metadata pattern outside the regex subset the automaton compiles."""


@dataclass(frozen=True)
class _Digits:
    digits: frozenset[int]


@dataclass(frozen=True)
class _Seq:
    parts: tuple[_Node, ...]


@dataclass(frozen=True)
class _Either:
    options: tuple[_Node, ...]


@dataclass(frozen=True)
class _Repeat:
    node: _Node
    low: int
    high: int


_Node = _Digits | _Seq | _Either | _Repeat
_MAX_REPEAT = 32  # metadata repeats are short; a longer one means a pattern we do not know
_MAX_STATES = 65535  # the native table holds states as uint16


class _PatternParser:
    """Digits, ``[..]`` classes with ranges, ``\\d``, ``(?:..)``, ``|``, ``?``, ``{n}``, ``{n,m}``.

    Anything else raises ``_Unsupported``: the automaton must mean what ``re`` means, so it
    refuses what it was not written for rather than guess.
    """

    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.at = 0

    def parse(self) -> _Node:
        node = self._either()
        if self.at != len(self.text):
            raise _Unsupported(self.text)
        return node

    def _peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def _take(self, token: str) -> bool:
        if self.text.startswith(token, self.at):
            self.at += len(token)
            return True
        return False

    def _either(self) -> _Node:
        options = [self._seq()]
        while self._take("|"):
            options.append(self._seq())
        return options[0] if len(options) == 1 else _Either(tuple(options))

    def _seq(self) -> _Node:
        parts: list[_Node] = []
        while self._peek() not in ("", "|", ")"):
            parts.append(self._quantified(self._atom()))
        return _Seq(tuple(parts))

    def _atom(self) -> _Node:
        ch = self._peek()
        if ch.isascii() and ch.isdigit():
            self.at += 1
            return _Digits(frozenset({int(ch)}))
        if self._take("\\d"):
            return _Digits(frozenset(range(10)))
        if self._take("(?:"):
            node = self._either()
            if not self._take(")"):
                raise _Unsupported(self.text)
            return node
        if self._take("["):
            return self._class()
        raise _Unsupported(self.text)

    def _class(self) -> _Node:
        digits: set[int] = set()
        while not self._take("]"):
            low = self._class_digit()
            high = low
            if self._take("-"):
                high = self._class_digit()
            if high < low:
                raise _Unsupported(self.text)
            digits.update(range(low, high + 1))
        if not digits:
            raise _Unsupported(self.text)
        return _Digits(frozenset(digits))

    def _class_digit(self) -> int:
        ch = self._peek()
        if not (ch.isascii() and ch.isdigit()):
            raise _Unsupported(self.text)
        self.at += 1
        return int(ch)

    def _quantified(self, node: _Node) -> _Node:
        if self._take("?"):
            node = _Repeat(node, 0, 1)
        elif self._take("{"):
            end = self.text.find("}", self.at)
            bounds = self.text[self.at : end].split(",") if end >= 0 else []
            if not 1 <= len(bounds) <= 2 or not all(b.isascii() and b.isdigit() for b in bounds):
                raise _Unsupported(self.text)
            self.at = end + 1
            low, high = int(bounds[0]), int(bounds[-1])
            if not low <= high <= _MAX_REPEAT:
                raise _Unsupported(self.text)
            node = _Repeat(node, low, high)
        if self._peek() in ("?", "{", "*", "+"):
            raise _Unsupported(self.text)  # lazy or stacked quantifiers: not metadata's dialect
        return node


class _Nfa:
    """Thompson's construction: digit moves and epsilon moves between numbered states."""

    def __init__(self) -> None:
        self.moves: list[list[tuple[frozenset[int], int]]] = []
        self.eps: list[list[int]] = []

    def new(self) -> int:
        self.moves.append([])
        self.eps.append([])
        return len(self.moves) - 1

    def build(self, node: _Node, start: int) -> int:
        """Add ``node`` reading from ``start``; the state where it ends."""
        if isinstance(node, _Digits):
            end = self.new()
            self.moves[start].append((node.digits, end))
            return end
        if isinstance(node, _Seq):
            for part in node.parts:
                start = self.build(part, start)
            return start
        end = self.new()
        if isinstance(node, _Either):
            for option in node.options:
                entry = self.new()
                self.eps[start].append(entry)
                self.eps[self.build(option, entry)].append(end)
            return end
        for _ in range(node.low):
            start = self.build(node.node, start)
        self.eps[start].append(end)
        for _ in range(node.high - node.low):
            start = self.build(node.node, start)
            self.eps[start].append(end)
        return end

    def closure(self, states: frozenset[int]) -> frozenset[int]:
        seen = set(states)
        todo = list(states)
        while todo:
            for nxt in self.eps[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return frozenset(seen)


@dataclass(frozen=True)
class _Dfa:
    """One metadata pattern as a DFA: per state ten successors (-1: no match possible)."""

    transitions: tuple[tuple[int, ...], ...]
    accepting: tuple[bool, ...]
    lengths: frozenset[int]  # possible lengths; empty: any


def _pattern_dfa(pattern: str, lengths: frozenset[int]) -> _Dfa:
    nfa = _Nfa()
    start = nfa.new()
    end = nfa.build(_PatternParser(pattern).parse(), start)
    first = nfa.closure(frozenset({start}))
    index = {first: 0}
    order = [first]
    transitions: list[tuple[int, ...]] = []
    for states in order:  # grows while we walk it
        row = []
        for digit in range(10):
            moved = frozenset(t for s in states for ds, t in nfa.moves[s] if digit in ds)
            if not moved:
                row.append(-1)
                continue
            target = nfa.closure(moved)
            if target not in index:
                index[target] = len(order)
                order.append(target)
            row.append(index[target])
        transitions.append(tuple(row))
    return _Dfa(tuple(transitions), tuple(end in s for s in order), lengths)


def _desc_dfa(desc: object) -> _Dfa | None:
    pattern = getattr(desc, "national_number_pattern", None)
    if not pattern:
        return None
    return _pattern_dfa(pattern, frozenset(getattr(desc, "possible_length", ()) or ()))


def _code_terms(code: int) -> list[tuple[_Dfa, list[_Dfa]]] | None:
    """Per region of ``code``: its general DFA and its number types' DFAs (``_valid_under``)."""
    terms = []
    for region in COUNTRY_CODE_TO_REGION_CODE.get(code, ()):
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None or metadata.leading_digits:
            return None
        general = _desc_dfa(metadata.general_desc)
        if general is None:
            continue
        types = [
            dfa
            for name in _NUMBER_TYPES
            if not (name == "mobile" and metadata.same_mobile_and_fixed_line_pattern)
            and (dfa := _desc_dfa(getattr(metadata, name))) is not None
        ]
        if types:
            terms.append((general, types))
    return terms


@cache
def phone_automaton() -> PhoneAutomaton | None:
    """+33 and each overseas code compiled into one minimal DFA; None disables the native stage.

    The product of every pattern's DFA (with the length read so far, capped past the longest
    possible length) gives each state its accepting bits; Moore's refinement then merges the
    states no suffix tells apart, and a breadth-first walk numbers them deterministically.
    """
    if not _france_parses_plainly():
        return None
    codes = (_FRANCE_CALLING_CODE, *OVERSEAS_CALLING_CODES)
    try:
        per_code = [_code_terms(code) for code in codes]
    except _Unsupported:
        return None
    if any(terms is None for terms in per_code):
        return None
    parts: list[_Dfa] = []
    formula: list[list[tuple[int, list[int]]]] = []  # per code, per region: general, types
    for terms in per_code:
        assert terms is not None
        regions = []
        for general, types in terms:
            parts.append(general)
            first = len(parts)
            parts.extend(types)
            regions.append((first - 1, list(range(first, len(parts)))))
        formula.append(regions)
    cap = max((n for p in parts for n in p.lengths), default=0) + 1

    def bits(length: int, states: tuple[int, ...]) -> int:
        def accepts(i: int) -> bool:
            part = parts[i]
            return (
                states[i] >= 0
                and part.accepting[states[i]]
                and (not part.lengths or length in part.lengths)
            )

        return sum(
            1 << c
            for c, regions in enumerate(formula)
            if any(accepts(g) and any(accepts(t) for t in types) for g, types in regions)
        )

    dead = (-1, tuple(-1 for _ in parts))
    start = (0, tuple(0 for _ in parts))
    index = {start: 0}
    order = [start]
    table: list[list[int]] = []
    for length, states in order:  # grows while we walk it
        row = []
        for digit in range(10):
            moved = tuple(
                -1 if s < 0 else p.transitions[s][digit] for s, p in zip(states, parts, strict=True)
            )
            key = dead if all(s < 0 for s in moved) else (min(length + 1, cap), moved)
            if key not in index:
                index[key] = len(order)
                order.append(key)
                if len(order) > 4 * _MAX_STATES:
                    return None
            row.append(index[key])
        table.append(row)
    return _minimised(codes, table, [bits(length, states) for length, states in order])


def _minimised(
    codes: tuple[int, ...], table: list[list[int]], accepting: list[int]
) -> PhoneAutomaton | None:
    block = accepting[:]
    while True:
        signature = [(block[s], *(block[t] for t in table[s])) for s in range(len(table))]
        numbered: dict[tuple[int, ...], int] = {}
        refined = [numbered.setdefault(sig, len(numbered)) for sig in signature]
        if len(numbered) == len(set(block)):
            break
        block = refined
    # Number the blocks breadth-first from the start's, so equal metadata gives equal tables.
    representative: dict[int, int] = {}
    for state, b in enumerate(block):
        representative.setdefault(b, state)
    number = {block[0]: 0}
    queue = [block[0]]
    for b in queue:
        for t in table[representative[b]]:
            if block[t] not in number:
                number[block[t]] = len(number)
                queue.append(block[t])
    if len(number) > _MAX_STATES:
        return None
    transitions = [0] * (10 * len(number))
    accepts = [0] * len(number)
    for b, n in number.items():
        state = representative[b]
        accepts[n] = accepting[state]
        for digit, t in enumerate(table[state]):
            transitions[10 * n + digit] = number[block[t]]
    return PhoneAutomaton(codes, tuple(transitions), tuple(accepts))


def _staged_fast(frame: pl.DataFrame) -> pl.DataFrame:
    """``_fast_canonical`` of column "value" as column "canonical", one stage at a time.

    Same expressions; staged because polars evaluates a nested expression's shared parts once
    per use (the text and digits four and two times over).
    """
    text = frame.select(pl.col("value").str.strip_chars(" \t")).to_series()
    staged = pl.DataFrame({"value": frame.get_column("value"), "text": text}).with_columns(
        digits=pl.col("text").str.replace_all(r"[^0-9]", ""),
        plus=pl.col("text").str.starts_with("+"),
        shaped=(pl.col("text").str.len_chars() <= _FAST_MAX_CHARS)
        & pl.col("text").str.contains(_FAST_SHAPE),
    )
    staged = staged.with_columns(
        national=pl.when("plus")
        .then(pl.col("digits").str.extract(_PLUS_FORM, 1))
        .otherwise(pl.col("digits").str.extract(_BARE_FORM, 1))
    )
    sure = pl.col("shaped") & pl.col("national").str.slice(0, 3).is_in(sorted(FAST_PREFIXES))
    return staged.select("value", canonical=pl.when(sure).then(pl.lit("+33") + pl.col("national")))


def normalise_phones(values: pl.Series, default_region: str = "FR") -> pl.DataFrame:
    """Vectorised: a frame with columns "canonical" (pl.String, E.164 or null) and "reason".

    Same length and order as `values`; equals normalise_phone row by row, byte for byte.
    """
    frame = pl.DataFrame({"value": values.cast(pl.String)})
    value = pl.col("value")
    blank = value.is_null() | value.str.contains(_ASCII_BLANK)
    if default_region == "FR":
        frame = _staged_fast(frame)
    else:
        frame = frame.with_columns(canonical=pl.lit(None, dtype=pl.String))
    frame = frame.with_columns(reason=pl.lit(None, dtype=pl.String))
    if default_region == "FR":
        # Only the rows the fast path left: the metadata regexes cost more per row.
        rows = frame.select(~blank & pl.col("canonical").is_null()).to_series().arg_true()
        if rows.len():
            decided = _national_stage(frame.get_column("value").gather(rows))
            frame = frame.with_columns(
                canonical=frame.get_column("canonical").scatter(rows, decided["canonical"]),
                reason=frame.get_column("reason").scatter(rows, decided["reason"]),
            )
    frame = frame.with_columns(
        pending=~blank & pl.col("canonical").is_null() & pl.col("reason").is_null()
    )
    return fill_from_reference(frame, lambda text: normalise_phone(text, default_region))
