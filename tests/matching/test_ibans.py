"""IBAN normalisation: registry corpus, near misses, spellings, and fast path == reference."""

from __future__ import annotations

import random
from collections.abc import Sequence

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schwifty import IBAN, exceptions, registry
from schwifty.checksum import algorithms

from matching.ibans import (
    REASON_IBAN_COUNTRY_OR_LENGTH,
    REASON_IBAN_MALFORMED,
    REASON_IBAN_MOD97,
    REASON_IBAN_NATIONAL,
    RIB_COUNTRIES,
    _reference_only_countries,
    _schwifty_national_countries,
    _schwifty_national_reason,
    _specs,
    _vectorised_national,
    normalise_iban,
    normalise_ibans,
)

VALID_FR = "FR7630004000001234567890188"


def vectorised(values: Sequence[str | None]) -> list[tuple[str | None, ...]]:
    frame = normalise_ibans(pl.Series(list(values), dtype=pl.String))
    assert frame.columns == ["canonical", "reason"]
    assert frame.schema == pl.Schema({"canonical": pl.String, "reason": pl.String})
    assert frame.height == len(values)
    return list(frame.iter_rows())


def assert_same(values: Sequence[str | None]) -> None:
    assert vectorised(values) == [normalise_iban(v) for v in values]


def with_check_digits(country: str, bban: str) -> str:
    """The IBAN for `bban` with mod-97 check digits computed independently of schwifty."""
    numeric = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - numeric % 97:02d}{bban}"


def rib_key(bank: str, branch: str, account: str) -> str:
    letters = {
        c: str(v)
        for c, v in zip(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ", [*range(1, 10)] * 2 + [*range(2, 10)], strict=True
        )
    }
    digits = "".join(letters.get(c, c) for c in account)
    return f"{97 - (89 * int(bank) + 15 * int(branch) + 3 * int(digits)) % 97:02d}"


def registry_corpus() -> list[str]:
    """IBANs schwifty generates as valid, three per registry country.

    Left out: the overseas RIB territories, where schwifty writes no RIB key (we check it there,
    see test_rib_key_checked_in_every_rib_territory).
    """
    rng = random.Random(7)
    corpus = []
    for country in sorted(_specs().keys() - (RIB_COUNTRIES - {"FR", "MC"})):
        for _ in range(3):
            try:
                corpus.append(str(IBAN.random(country, random=rng)))
            except exceptions.GenerateRandomOverflowError:
                continue
    return corpus


CORPUS = registry_corpus()


def test_corpus_covers_many_countries() -> None:
    countries = {iban[:2] for iban in CORPUS}
    assert len(countries) >= 100
    assert {"FR", "MC", "DE", "ES", "IT", "BE", "GB", "NL", "PT"} <= countries


def test_registry_corpus_is_valid_both_ways() -> None:
    assert vectorised(CORPUS) == [(iban, None) for iban in CORPUS]


def test_generated_french_ibans_are_valid() -> None:
    rng = random.Random(3)
    ibans = [
        str(
            IBAN.generate(
                "FR",
                bank_code=f"{rng.randrange(100_000):05d}",
                branch_code=f"{rng.randrange(100_000):05d}",
                account_code=f"{rng.randrange(10**11):011d}",
            )
        )
        for _ in range(200)
    ]
    assert vectorised(ibans) == [(iban, None) for iban in ibans]


def test_one_digit_changed_fails() -> None:
    rng = random.Random(11)
    mutants = []
    for iban in CORPUS:
        positions = [i for i, c in enumerate(iban) if c.isdigit() and i >= 2]
        for i in rng.sample(positions, min(4, len(positions))):
            digit = rng.choice([d for d in "0123456789" if d != iban[i]])
            mutants.append(iban[:i] + digit + iban[i + 1 :])
    results = vectorised(mutants)
    assert all(canonical is None for canonical, _ in results)
    assert results == [normalise_iban(m) for m in mutants]


@pytest.mark.parametrize(
    "spelling",
    [
        "FR76 3000 4000 0012 3456 7890 188",
        "fr7630004000001234567890188",
        "Fr76-3000-4000-0012-3456-7890-188",
        "FR76.3000.4000.0012.3456.7890.188",
        " FR76\t3000\u00a04000\u202f0012 3456 7890 188 ",
    ],
)
def test_spellings(spelling: str) -> None:
    assert normalise_iban(spelling) == (VALID_FR, None)
    assert vectorised([spelling]) == [(VALID_FR, None)]


def test_wrong_rib_key_with_right_mod97_fails_nationally() -> None:
    bban = "30004" + "00000" + "12345678901" + "00"
    iban = with_check_digits("FR", bban)
    assert normalise_iban(iban) == (None, REASON_IBAN_NATIONAL)
    assert vectorised([iban]) == [(None, REASON_IBAN_NATIONAL)]


@pytest.mark.parametrize("country", sorted(RIB_COUNTRIES))
def test_rib_key_checked_in_every_rib_territory(country: str) -> None:
    spec = registry.get_iban_spec(country)
    assert spec.bban_spec == "5!n5!n11!c2!n"
    bank, branch, account = "12345", "67890", "0A12B34C56D"
    good = with_check_digits(country, bank + branch + account + rib_key(bank, branch, account))
    bad_key = f"{(int(rib_key(bank, branch, account)) + 1) % 100:02d}"
    bad = with_check_digits(country, bank + branch + account + bad_key)
    assert vectorised([good, bad]) == [(good, None), (None, REASON_IBAN_NATIONAL)]
    assert [normalise_iban(good), normalise_iban(bad)] == [
        (good, None),
        (None, REASON_IBAN_NATIONAL),
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("FR7630004000001234567890189", REASON_IBAN_MOD97),
        ("FR0130004000001234567890188", REASON_IBAN_MOD97),
        ("FR763000400000123456789018", REASON_IBAN_COUNTRY_OR_LENGTH),
        ("ZZ7630004000001234567890188", REASON_IBAN_COUNTRY_OR_LENGTH),
        ("FR76" + "1" * 40, REASON_IBAN_COUNTRY_OR_LENGTH),
        ("FR76 3000 4000 00€2 3456 7890 188", REASON_IBAN_MALFORMED),
        ("7630004000001234567890188FR", REASON_IBAN_MALFORMED),
        ("FR76A0004000001234567890188", REASON_IBAN_MALFORMED),
        ("n/a", REASON_IBAN_MALFORMED),
    ],
)
def test_rejects(value: str, reason: str) -> None:
    assert normalise_iban(value) == (None, reason)
    assert vectorised([value]) == [(None, reason)]
    assert value not in reason


@pytest.mark.parametrize("blank", [None, "", "   ", " - . "])
def test_blank(blank: str | None) -> None:
    assert normalise_iban(blank) == (None, None)
    assert vectorised([blank]) == [(None, None)]


def test_mixed_frame_keeps_order() -> None:
    values = [
        VALID_FR,
        None,
        "garbage",
        CORPUS[0],
        "",
        "DE89370400440532013000",
        "DE89370400440532013001",
    ]
    assert_same(values)


# --- properties -----------------------------------------------------------------------------

_COUNTRIES = sorted(_specs())


@st.composite
def iban_shaped(draw: st.DrawFn) -> str:
    """Right country and length, random BBAN; half the time with correct mod-97 check digits."""
    country = draw(st.sampled_from(_COUNTRIES))
    length = _specs()[country][0] - 4
    alphabet = draw(st.sampled_from(["0123456789", "0123456789ABCZ"]))
    bban = "".join(draw(st.lists(st.sampled_from(alphabet), min_size=length, max_size=length)))
    if draw(st.booleans()):
        iban = with_check_digits(country, bban)
    else:
        iban = country + draw(st.sampled_from(["00", "01", "76", "99", "42"])) + bban
    if draw(st.booleans()):
        iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)).lower()
    return iban


@settings(max_examples=150, deadline=None)
@given(st.lists(iban_shaped(), min_size=1, max_size=20))
def test_vectorised_equals_reference_on_iban_shapes(values: list[str]) -> None:
    assert_same(values)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=20))
def test_vectorised_equals_reference_on_any_text(values: list[str | None]) -> None:
    assert_same(values)


@settings(max_examples=50, deadline=None)
@given(st.lists(iban_shaped(), min_size=1, max_size=20))
def test_normalising_a_canonical_value_gives_itself(values: list[str]) -> None:
    canonical = [c for c, _ in vectorised(values) if c is not None]
    assert [c for c, _ in vectorised(canonical)] == canonical


# --- countries whose national check is schwifty's own algorithm, run without IBAN objects -------

_SCHWIFTY_NATIONAL = sorted(_schwifty_national_countries())
_DE_BANKS = registry.get_banks_by_country("DE")
_DE_METHODS = sorted({bank.checksum_algo for bank in _DE_BANKS})
_DE_CODES = sorted({bank.bank_code for bank in _DE_BANKS})


def national_mutants(ibans: Sequence[str], rng: random.Random) -> list[str]:
    """One digit of each BBAN changed, mod-97 recomputed: only the national check can tell."""
    mutants = []
    for iban in ibans:
        bban = iban[4:]
        i = rng.choice([i for i, c in enumerate(bban) if c.isdigit()])
        digit = rng.choice([d for d in "0123456789" if d != bban[i]])
        mutants.append(with_check_digits(iban[:2], bban[:i] + digit + bban[i + 1 :]))
    return mutants


def random_ibans(country: str, n: int, rng: random.Random, **values: str) -> list[str]:
    ibans = []
    for attempt in range(n):
        try:
            ibans.append(
                str(IBAN.random(country, random=rng, use_registry=attempt % 4 != 0, **values))
            )
        except exceptions.SchwiftyException:
            continue
    return ibans


def test_every_schwifty_national_country_is_decided_without_the_reference() -> None:
    assert {"DE", "PT", "NO", "PL", "FI", "SI", "SM", "CZ"} <= set(_SCHWIFTY_NATIONAL)
    assert not set(_SCHWIFTY_NATIONAL) & (set(_vectorised_national()) | RIB_COUNTRIES)
    assert _reference_only_countries() == frozenset()


@pytest.mark.parametrize("country", _SCHWIFTY_NATIONAL)
def test_schwifty_national_equals_reference(country: str) -> None:
    rng = random.Random(country)
    valid = random_ibans(country, 150, rng)
    assert valid, country
    values = valid + national_mutants(valid, rng)
    assert_same(values)
    # the schwifty-national path itself, value by value
    for value in values:
        assert _schwifty_national_reason(value[:2], value[4:]) == normalise_iban(value)[1]


@pytest.mark.parametrize("method", _DE_METHODS)
def test_every_german_registry_method_equals_reference(method: str) -> None:
    rng = random.Random(method)
    codes = sorted({bank.bank_code for bank in _DE_BANKS if bank.checksum_algo == method})
    valid = []
    for code in rng.sample(codes, min(5, len(codes))):
        valid += random_ibans("DE", 20, rng, bank_code=code)
    # account codes drawn freely as well: most are invalid for checking methods
    drawn = [
        with_check_digits("DE", code + f"{rng.randrange(10**10):010d}")
        for code in rng.choices(codes, k=60)
    ]
    values = valid + national_mutants(valid, rng) + drawn
    assert_same(values)
    if f"DE:{method}" not in algorithms:
        # schwifty accepts what it cannot check (mutants may have left the method's bank codes)
        assert all(c is not None for c, _ in vectorised(valid + drawn)), method


def test_german_unknown_bank_codes_equal_reference() -> None:
    rng = random.Random(5)
    known = set(_DE_CODES)
    unknown: list[str] = []
    while len(unknown) < 100:
        code = f"{rng.randrange(10**8):08d}"
        if code not in known:
            unknown.append(with_check_digits("DE", code + f"{rng.randrange(10**10):010d}"))
    assert vectorised(unknown) == [(iban, None) for iban in unknown]
    assert_same(unknown)


@st.composite
def schwifty_national_shaped(draw: st.DrawFn) -> str:
    """A BBAN of a schwifty-national country with right mod-97; German bank codes mostly known."""
    country = draw(st.sampled_from(_SCHWIFTY_NATIONAL))
    length = _specs()[country][0] - 4
    if country == "DE" and draw(st.booleans()):
        account = draw(st.text("0123456789", min_size=10, max_size=10))
        bban = draw(st.sampled_from(_DE_CODES)) + account
    else:
        alphabet = "0123456789" if draw(st.booleans()) else "0123456789AZ"
        bban = draw(st.text(alphabet, min_size=length, max_size=length))
    return with_check_digits(country, bban)


@settings(max_examples=300, deadline=None)
@given(st.lists(schwifty_national_shaped(), min_size=1, max_size=20))
def test_schwifty_national_property(values: list[str]) -> None:
    assert_same(values)


def test_repeated_values_are_checked_once_and_keep_their_rows() -> None:
    rng = random.Random(9)
    valid = random_ibans("DE", 30, rng)
    values = [*valid, *national_mutants(valid, rng)] * 3
    rng.shuffle(values)
    assert_same(values)
