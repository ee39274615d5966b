"""IBAN normalisation: registry corpus, near misses, spellings, and fast path == reference."""

from __future__ import annotations

import random
from collections.abc import Sequence

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schwifty import IBAN, exceptions, registry

from matching.ibans import (
    REASON_IBAN_COUNTRY_OR_LENGTH,
    REASON_IBAN_MALFORMED,
    REASON_IBAN_MOD97,
    REASON_IBAN_NATIONAL,
    RIB_COUNTRIES,
    _specs,
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
