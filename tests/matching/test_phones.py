"""Phone normalisation: spellings, the overseas rule, rejects, and fast path == reference."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import phonenumbers
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching.phones import (
    FAST_PREFIXES,
    OVERSEAS_CALLING_CODES,
    REASON_PHONE_INVALID,
    REASON_PHONE_NON_ASCII,
    REASON_PHONE_TOO_LONG,
    REASON_PHONE_UNPARSEABLE,
    PhoneAutomaton,
    _fast_canonical,
    _pattern_dfa,
    _PatternParser,
    _Unsupported,
    normalise_phone,
    normalise_phones,
    phone_automaton,
)

REASONS = {
    None,
    REASON_PHONE_INVALID,
    REASON_PHONE_NON_ASCII,
    REASON_PHONE_TOO_LONG,
    REASON_PHONE_UNPARSEABLE,
}


def vectorised(
    values: Sequence[str | None], default_region: str = "FR"
) -> list[tuple[str | None, ...]]:
    frame = normalise_phones(pl.Series(list(values), dtype=pl.String), default_region)
    assert frame.columns == ["canonical", "reason"]
    assert frame.schema == pl.Schema({"canonical": pl.String, "reason": pl.String})
    assert frame.height == len(values)
    return list(frame.iter_rows())


def fast_decided(values: list[str]) -> list[str | None]:
    frame = pl.DataFrame({"v": values}).select(_fast_canonical(pl.col("v")))
    return frame.to_series().to_list()


def assert_same(values: Sequence[str | None], default_region: str = "FR") -> None:
    expected = [normalise_phone(v, default_region) for v in values]
    assert vectorised(values, default_region) == expected


SPELLINGS = [
    "06 12 34 56 78",
    "06.12.34.56.78",
    "06-12-34-56-78",
    "0612345678",
    "+33 6 12 34 56 78",
    "+33 (0)6 12 34 56 78",
    "+33(0)612345678",
    "0033612345678",
    "0033 6 12 34 56 78",
    "00 33 (0)6 12 34 56 78",
    "33612345678",
    "33 6 12 34 56 78",
    "612345678",
    "6 12 34 56 78",
    "+33612345678",
    "(06) 12 34 56 78",
    "  06 12 34 56 78\t",
]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_gives_e164(spelling: str) -> None:
    assert normalise_phone(spelling) == ("+33612345678", None)
    assert vectorised([spelling]) == [("+33612345678", None)]


@pytest.mark.parametrize(
    "spelling",
    [
        "06 12 34 56 78",
        "+33 (0)6 12 34 56 78",
        "0033612345678",
        "33612345678",
        "612345678",
        "06/12/34/56/78",
        "06\u00a012\u00a034\u00a056\u00a078",
    ],
)
def test_common_shapes_take_the_fast_path(spelling: str) -> None:
    assert fast_decided([spelling]) == ["+33612345678"]


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("01 42 68 53 00", "+33142685300"),
        ("04.91.55.11.11", "+33491551111"),
        ("09 70 12 34 56", "+33970123456"),
        ("07 81 23 45 67", "+33781234567"),
    ],
)
def test_metropolitan_landlines_and_mobiles(spelling: str, expected: str) -> None:
    assert normalise_phone(spelling) == (expected, None)
    assert fast_decided([spelling]) == [expected]


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("0692 12 34 56", "+262692123456"),  # Réunion mobile
        ("0693 12 34 56", "+262693123456"),
        ("0639 20 12 34", "+262639201234"),  # Mayotte mobile
        ("0690 12 34 56", "+590690123456"),  # Guadeloupe mobile
        ("0691 23 45 67", "+590691234567"),
        ("0694 12 34 56", "+594694123456"),  # Guyane mobile
        ("0696 12 34 56", "+596696123456"),  # Martinique mobile
        ("0697 12 34 56", "+596697123456"),
        ("0262 12 34 56", "+262262123456"),  # Réunion landline
        ("0269 01 23 45", "+262269012345"),  # Mayotte landline, also valid as +33 in metadata
        ("0590 12 34 56", "+590590123456"),  # Guadeloupe landline
        ("0594 01 23 45", "+594594012345"),  # Guyane landline
        ("0596 01 23 45", "+596596012345"),  # Martinique landline, also valid as +33
        ("+33 692 12 34 56", "+262692123456"),  # sloppy exports: overseas behind +33
        ("+33 (0)6 90 12 34 56", "+590690123456"),
        ("0033 694 12 34 56", "+594694123456"),
        ("33696123456", "+596696123456"),
        ("692123456", "+262692123456"),
        ("+262 692 12 34 56", "+262692123456"),  # already international
        ("+590 590 12 34 56", "+590590123456"),
    ],
)
def test_overseas_rule(spelling: str, expected: str) -> None:
    assert normalise_phone(spelling) == (expected, None)
    assert vectorised([spelling]) == [(expected, None)]
    assert fast_decided([spelling]) == [None]  # never decided by the metropolitan fast path


def test_number_valid_only_as_metropolitan_stays_plus_33() -> None:
    # 0596 12… is not allocated in Martinique's metadata but is valid as +33.
    assert normalise_phone("0596 12 34 56") == ("+33596123456", None)


@pytest.mark.parametrize(
    "spelling",
    [
        "06 12 34 56 7",
        "06 12 34 56 789",
        "0612",
        "00 00 00 00 00",
        "0639 12 34 56",
        "+33 6 12 34 56 78 90",
        "+1 555 000 0000",
    ],
)
def test_near_misses_are_invalid(spelling: str) -> None:
    canonical, reason = normalise_phone(spelling)
    assert canonical is None
    assert reason in {REASON_PHONE_INVALID, REASON_PHONE_UNPARSEABLE}
    assert vectorised([spelling]) == [(canonical, reason)]


@pytest.mark.parametrize("garbage", ["abc", "+", "--", "()", "n/a", "@@@", "0x"])
def test_garbage_is_rejected_with_a_reason(garbage: str) -> None:
    canonical, reason = normalise_phone(garbage)
    assert canonical is None
    assert reason in {REASON_PHONE_INVALID, REASON_PHONE_UNPARSEABLE}
    assert garbage not in (reason or "")


@pytest.mark.parametrize("blank", [None, "", " ", "\t\n", "\u00a0 "])
def test_blank_is_not_an_error(blank: str | None) -> None:
    assert normalise_phone(blank) == (None, None)
    assert vectorised([blank]) == [(None, None)]


@pytest.mark.parametrize("spelling", ["０６１２３４５６７８", "٠٦١٢٣٤٥٦٧٨", "06 12 34 56 7٨"])
def test_non_ascii_digits_are_rejected(spelling: str) -> None:
    assert normalise_phone(spelling) == (None, REASON_PHONE_NON_ASCII)
    assert vectorised([spelling]) == [(None, REASON_PHONE_NON_ASCII)]


def test_long_input_rejected_before_parsing() -> None:
    huge = "0" * 41
    assert normalise_phone(huge) == (None, REASON_PHONE_TOO_LONG)
    assert normalise_phone("(" * 200_000) == (None, REASON_PHONE_TOO_LONG)
    assert vectorised([huge, "1" * 100_000]) == [(None, REASON_PHONE_TOO_LONG)] * 2


def test_international_numbers_use_phonenumbers() -> None:
    assert normalise_phone("+44 20 7946 0018") == ("+442079460018", None)
    assert_same(["+44 20 7946 0018", "+1 650 253 0000", "+49 30 901820", "+32 2 555 12 12"])


def test_other_default_region_matches_reference() -> None:
    assert_same(["0612345678", "02 555 12 12", "+33612345678", "0692123456"], "BE")


def test_frame_keeps_order_length_and_nulls() -> None:
    values = ["06 12 34 56 78", None, "garbage", "0692123456", "", "0612345678"]
    assert vectorised(values) == [normalise_phone(v) for v in values]


def test_fast_path_prefixes_agree_with_phonenumbers() -> None:
    """Every fast-path prefix, with each 4th digit and a random rest, decides like the reference.

    The fast path trusts whole 3-digit prefixes, so each one is sampled ten ways plus its ends.
    """
    rng = random.Random(20261123)
    numbers = []
    for prefix in sorted(FAST_PREFIXES):
        numbers.append(f"0{prefix}000000")
        numbers.append(f"0{prefix}999999")
        numbers.extend(f"0{prefix}{d}{rng.randrange(100_000):05d}" for d in range(10))
    decided = fast_decided(numbers)
    assert all(canonical is not None for canonical in decided)
    assert decided == [normalise_phone(n)[0] for n in numbers]


def test_fast_path_declines_overseas_and_special_ranges() -> None:
    declined = ["0692123456", "0262123456", "0596012345", "0800123456", "0890123456"]
    assert fast_decided(declined) == [None] * len(declined)


# --- properties -----------------------------------------------------------------------------

_PREFIX_FORMS = ["", "0", "+33", "+33 ", "+33 (0)", "+330", "0033", "0033 ", "00 33 ", "33", "330"]
_SEPARATORS = ["", " ", ".", "-", "  ", " - ", "(", ")", "/", " / ", "\u00a0", "\u202f"]


@st.composite
def french_shaped(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(_PREFIX_FORMS))
    first = draw(st.sampled_from("1234567899"))
    length = draw(st.sampled_from([8, 8, 8, 7, 9]))
    digits = first + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=length, max_size=length))
    )
    pieces = [digits[i : i + 2] for i in range(0, len(digits), 2)]
    glue = draw(st.lists(st.sampled_from(_SEPARATORS), min_size=len(pieces), max_size=len(pieces)))
    body = "".join(sep + piece for sep, piece in zip(glue, pieces, strict=True))
    padding = draw(st.sampled_from(["", " ", "\t"]))
    return padding + prefix + body + padding


@settings(max_examples=150, deadline=None)
@given(st.lists(french_shaped(), min_size=1, max_size=30))
def test_vectorised_equals_reference_on_french_shapes(values: list[str]) -> None:
    assert_same(values)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=45)), max_size=20))
def test_vectorised_equals_reference_on_any_text(values: list[str | None]) -> None:
    assert_same(values)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="0123456789 +()-./\u00a0", max_size=20), max_size=20))
def test_vectorised_equals_reference_on_phone_alphabet(values: list[str]) -> None:
    assert_same(values)


@settings(max_examples=100, deadline=None)
@given(st.lists(french_shaped(), min_size=1, max_size=20))
def test_normalising_a_canonical_value_gives_itself(values: list[str]) -> None:
    canonical = [c for c, _ in vectorised(values) if c is not None]
    assert [normalise_phone(c)[0] for c in canonical] == canonical
    assert [c for c, _ in vectorised(canonical)] == canonical


# --- the validity automaton (what the native scanner walks) ---------------------------------

_CODES = (33, *OVERSEAS_CALLING_CODES)


def _reference_codes(nsn: str) -> tuple[int, ...]:
    """The calling codes under which phonenumbers says ``nsn`` is valid (leading zeros kept)."""
    rest = nsn.lstrip("0") or "0"
    zeros = len(nsn) - len(rest)
    number = phonenumbers.PhoneNumber(
        national_number=int(rest),
        italian_leading_zero=True if zeros else None,
        number_of_leading_zeros=zeros if zeros > 1 else None,
    )
    assert phonenumbers.national_significant_number(number) == nsn
    found = []
    for code in _CODES:
        number.country_code = code
        if phonenumbers.is_valid_number(number):
            found.append(code)
    return tuple(found)


def _automaton() -> PhoneAutomaton:
    automaton = phone_automaton()
    assert automaton is not None  # today's metadata compiles: the native stage is on
    assert automaton.codes == _CODES
    return automaton


def test_automaton_agrees_with_phonenumbers_on_every_prefix() -> None:
    """Every 3- and 4-digit prefix, completed at random to every length near the possible ones.

    Metadata patterns branch up to six digits deep; the hypothesis test below and the
    overseas ranges in the other tests reach further.
    """
    automaton = _automaton()
    rng = random.Random(20261124)
    numbers = []
    for width, lengths in ((3, range(3, 13)), (4, (5, 6, 7, 8, 9, 10))):
        for prefix in range(10**width):
            for length in lengths:
                tail = "".join(rng.choice("0123456789") for _ in range(length - width))
                numbers.append(f"{prefix:0{width}d}{tail}")
    mismatched = [n for n in numbers if automaton.valid_codes(n) != _reference_codes(n)]
    assert mismatched == []
    # the comparison is not vacuous: every code accepts some of them
    accepted = {code for n in numbers[::7] for code in automaton.valid_codes(n)}
    assert accepted == set(_CODES)


_ALLOCATED = ["6", "7", "26", "59", "63", "69", "70", "80", "89", "9", "639", "692", "6930", "7090"]


@st.composite
def national_numbers(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["", *_ALLOCATED]))
    length = draw(st.sampled_from([1, 5, 6, 6, 7, 8, 9, 9, 9, 9, 10, 17]))
    tail = draw(st.text(alphabet="0123456789", min_size=0, max_size=max(0, length - len(prefix))))
    return prefix + tail if prefix or tail else "0"


@settings(max_examples=500, deadline=None)
@given(national_numbers())
def test_automaton_agrees_with_phonenumbers_on_any_digits(nsn: str) -> None:
    assert _automaton().valid_codes(nsn) == _reference_codes(nsn)


@pytest.mark.parametrize(
    "pattern",
    [r"\d+", r"\d*", r"[^0]\d", r"(6)\d", r"\d{2,}", r"6.", r"\d{2}?", r"[a-z]", r"6\s", "6{99}"],
)
def test_pattern_outside_the_subset_is_refused(pattern: str) -> None:
    with pytest.raises(_Unsupported):
        _PatternParser(pattern).parse()


@pytest.mark.parametrize(
    "pattern",
    [r"(?:26|[689]\d)\d{7}", r"7[3-9]\d?", r"8(?:1[01]|2[0156])\d{6}|9\d{1,3}", r"[78]\d{8}"],
)
def test_pattern_dfa_means_what_re_means(pattern: str) -> None:
    dfa = _pattern_dfa(pattern, frozenset())
    rng = random.Random(pattern)
    for _ in range(3000):
        text = "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 12)))
        state = 0
        for ch in text:
            state = dfa.transitions[state][int(ch)] if state >= 0 else -1
        assert (state >= 0 and dfa.accepting[state]) == bool(re.fullmatch(pattern, text))


def test_automaton_every_transition_agrees_with_phonenumbers() -> None:
    """Each (state, digit) edge, reached by a shortest path and completed to lengths 1 to 12."""
    automaton = _automaton()
    n_states = len(automaton.accepting)
    path = {0: ""}
    queue = [0]
    for state in queue:  # breadth first: shortest witnesses
        for digit in range(10):
            target = automaton.transitions[10 * state + digit]
            if target not in path:
                path[target] = path[state] + str(digit)
                queue.append(target)
    assert len(path) == n_states  # minimal: every state reachable
    rng = random.Random(11)
    numbers = []
    for witness in path.values():
        for edge in "0123456789":
            for length in range(len(witness) + 1, 13):
                tail = "".join(rng.choice("0123456789") for _ in range(length - len(witness) - 1))
                numbers.append(witness + edge + tail)
    assert [automaton.valid_codes(n) for n in numbers] == [_reference_codes(n) for n in numbers]
