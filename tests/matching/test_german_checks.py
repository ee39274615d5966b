"""The native German check against schwifty's own algorithms, bank code by bank code."""

from __future__ import annotations

import random
from array import array
from collections import Counter
from typing import ClassVar

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schwifty import exceptions, registry
from schwifty.checksum import Algorithm, algorithms, germany
from schwifty.domain import Component

from matching.german_checks import SCHWIFTY, UNCHECKED, GermanTables, build_tables, native_check
from matching.ibans import (
    REASON_IBAN_NATIONAL,
    _german_tables,
    _national_layout,
    _schwifty_national_reason,
    normalise_iban,
    normalise_ibans,
)
from matching.native import scan_module

_LAYOUT = _national_layout("DE")
_CODES = sorted(_LAYOUT.by_key)


def _tables() -> GermanTables:
    tables = _german_tables()
    assert tables is not None
    return tables


def _method(code: str) -> str | None:
    check = _LAYOUT.by_key[code]
    return None if check is None else type(check.algorithm).name


def schwifty_passes(bban: str) -> bool:
    """schwifty's ``validate`` for the bank code's method, as its BBAN check calls it."""
    check = _LAYOUT.by_key.get(bban[:8], _LAYOUT.default)
    if check is None:
        return True
    try:
        return bool(check.algorithm.validate([bban[at] for at in check.components], ""))
    except exceptions.InvalidBBANChecksum:
        return False


def native(bbans: list[str]) -> list[int]:
    got = native_check(_tables(), "".join(bbans).encode("ascii"))
    assert got is not None, "the C extension is built by `make`"
    return list(got)


def with_check_digits(bban: str) -> str:
    numeric = int("".join(str(int(c, 36)) for c in bban + "DE00"))
    return f"DE{98 - numeric % 97:02d}{bban}"


# Account codes aimed at every branch of the methods: leading zeros (63, 76, 26), first
# digits that select variants or skip digits (24, 76, C1), the digit 88 reads (position 3),
# 61's "8" at position 9, 16's equal last digits, 25's second digit, the ranges 08, 95 and 99
# accept unchecked, and their edges.
_FIXED = [
    "0000000000",
    "9999999999",
    "0000000001",
    "0000059999",
    "0000060000",
    "0001999999",
    "0002000000",
    "0008999999",
    "0009000000",
    "0025999999",
    "0026000000",
    "0395999999",
    "0396000000",
    "0499999999",
    "0500000000",
    "0699999999",
    "0700000000",
    "0799999999",
    "0909999999",
    "0910000000",
    "0989999999",
    "0990000000",
    "1000000000",
]
_PREFIXES = ["", "0", "00", "000", "0000", "00000", "3", "4", "5", "6", "9", "009", "0090"]


def accounts(rng: random.Random, code: str, n: int) -> list[str]:
    """Fixed edge cases, random codes of several shapes, and codes schwifty solved as valid
    for the bank code's method, with each check-digit position (7, 8, 10) through every digit."""
    check = _LAYOUT.by_key[code]
    out = list(_FIXED)
    for _ in range(n):
        prefix = rng.choice(_PREFIXES)
        body = "".join(rng.choice("0123456789") for _ in range(10 - len(prefix)))
        account = prefix + body
        if rng.random() < 0.3:
            account = account[:8] + "8" + account[9]  # 61
        if rng.random() < 0.3:
            account = account[:2] + "9" + account[3:]  # 88
        if rng.random() < 0.3:
            account = account[:9] + account[8]  # 16, 23
        out.append(account)
    if check is not None:
        for account in out[len(_FIXED) : len(_FIXED) + n // 4]:
            try:
                solved = check.algorithm.solve([(code + account)[at] for at in check.components])
            except exceptions.SchwiftyException:
                continue
            if solved is None:
                continue
            valid = solved[-1]
            out.append(valid)
            for position in (6, 7, 9):
                out += [valid[:position] + d + valid[position + 1 :] for d in "0123456789"]
    return out


def test_native_methods_cover_nearly_every_bank_code() -> None:
    tables = _tables()
    assert {
        "00", "01", "06", "09", "10", "13", "17", "20", "28", "32", "33", "34", "38",
        "60", "61", "63", "76", "88", "91", "99", "A2", "A3", "C1",
    } <= tables.native  # fmt: skip
    entries = Counter(tables.method_of)
    assert entries[UNCHECKED] == sum(1 for c in _CODES if _LAYOUT.by_key[c] is None)
    # C0 reads the bank code too and 68 is not reproduced: schwifty keeps them
    left = {_method(c) for c, e in zip(_CODES, tables.method_of, strict=True) if e == SCHWIFTY}
    assert left == {"C0", "68"}
    assert entries[SCHWIFTY] < 0.005 * len(_CODES)
    # weighted by the registry's entries (a bank code per branch), as much
    native = [
        _method(bank.bank_code) in tables.native | {None}
        for bank in registry.get_banks_by_country("DE")
    ]
    assert sum(native) > 0.99 * len(native)


@pytest.mark.slow
def test_every_bank_code_equals_schwifty_validate() -> None:
    rng = random.Random(2026)
    bbans: list[str] = []
    want: list[bool] = []
    for code in _CODES:
        for account in accounts(rng, code, 24):
            bbans.append(code + account)
            want.append(schwifty_passes(code + account))
    got = native(bbans)
    methods = {code: _method(code) for code in _CODES}
    wrong = [
        (methods[b[:8]], b[8:], g, w)
        for b, g, w in zip(bbans, got, want, strict=True)
        if g != 2 and g != w
    ]
    assert wrong == []
    undecided = {methods[b[:8]] for b, g in zip(bbans, got, strict=True) if g == 2}
    assert undecided == {"C0", "68"}
    # both outcomes seen for every checking method
    seen: dict[str | None, set[int]] = {}
    for b, g in zip(bbans, got, strict=True):
        seen.setdefault(methods[b[:8]], set()).add(g)
    for method, outcomes in seen.items():
        if method in _tables().native - {"09"}:
            assert outcomes == {0, 1}, method


@pytest.mark.parametrize("method", sorted(_german_tables().native if _german_tables() else ()))
def test_each_native_method_equals_the_full_reference(method: str) -> None:
    rng = random.Random(method)
    codes = [c for c in _CODES if _method(c) == method]
    values: list[str] = []
    for code in rng.sample(codes, min(4, len(codes))):
        values += [with_check_digits(code + a) for a in accounts(rng, code, 16)]
    frame = normalise_ibans(pl.Series(values, dtype=pl.String))
    reference = [normalise_iban(v) for v in values]
    assert list(frame.iter_rows()) == reference
    assert {r for _, r in reference} <= {None, REASON_IBAN_NATIONAL}
    got = native([v[4:] for v in values])
    assert [g == 1 for g in got] == [c is not None for c, _ in reference]


_REGISTERED = {key[3:]: a for key, a in sorted(algorithms.items()) if key.startswith("DE:")}


@pytest.mark.parametrize("method", sorted(_REGISTERED))
def test_every_registered_method_equals_schwifty_validate(method: str) -> None:
    # methods no bank code uses today (02, 04, 07…) as well: a registry update may bring them
    algorithm = _REGISTERED[method]
    tables = build_tables({"10000000": algorithm}, None)
    if method in {"C0", "68"}:
        assert tables.native == frozenset()
        return
    assert tables.native == {method}
    rng = random.Random(method)
    values = [f"{rng.randrange(10**10):010d}" for _ in range(3000)]
    values += [
        "".join(rng.choice(alphabet) for _ in range(10))
        for alphabet in ("0189", "09", "0123", "0000000012345689")
        for _ in range(300)
    ]
    values += _FIXED
    got = native_check(tables, "".join("10000000" + v for v in values).encode())
    assert got is not None
    want = []
    for v in values:
        try:
            want.append(int(algorithm.validate([v], "")))
        except exceptions.InvalidBBANChecksum:
            want.append(0)
    assert list(got) == want
    if method != "09":
        assert 0 < sum(want) < len(want)


@st.composite
def german_bban(draw: st.DrawFn) -> str:
    code = draw(st.sampled_from(_CODES))
    prefix = draw(st.sampled_from(_PREFIXES))
    alphabet = draw(st.sampled_from(["0123456789", "0189", "09"]))
    body = draw(st.text(alphabet, min_size=10 - len(prefix), max_size=10 - len(prefix)))
    return code + prefix + body


@settings(max_examples=400, deadline=None)
@given(st.lists(german_bban(), min_size=1, max_size=30))
def test_native_equals_schwifty_property(bbans: list[str]) -> None:
    for bban, got in zip(bbans, native(bbans), strict=True):
        if got != 2:
            assert got == schwifty_passes(bban)
            assert (got == 0) == (_schwifty_national_reason("DE", bban) == REASON_IBAN_NATIONAL)


def test_unknown_bank_codes_are_unchecked_as_schwifty_has_no_default() -> None:
    assert _LAYOUT.default is None
    rng = random.Random(3)
    known = set(_CODES)
    bbans = []
    while len(bbans) < 200:
        code = f"{rng.randrange(10**8):08d}"
        if code not in known:
            bbans.append(code + f"{rng.randrange(10**10):010d}")
    assert native(bbans) == [1] * 200


def test_a_bban_not_all_digits_is_left_to_schwifty() -> None:
    code = next(c for c in _CODES if _method(c) == "00")
    assert native([code + "012345678A", code[:7] + "A" + "0123456789"]) == [2, 2]


# --- what the tables take from schwifty --------------------------------------------------------


class _OtherSummand(germany.Algorithm00):
    name = "X1"

    def compute_summand(self, digit: int, weight: int) -> int:
        return digit * weight + 1


class _OtherValidate(germany.Algorithm06):
    name = "X2"

    def validate(self, components: list[str], expected: str) -> bool:
        return True


class _BankToo(germany.Algorithm06):
    name = "X3"
    accepts: ClassVar[list[Component]] = [Component.BANK_CODE, Component.ACCOUNT_CODE]


class _CheckDigitZero(germany.Algorithm06):
    name = "X4"
    positions = germany.Positions(start=1, end=9, check_digit=0)


class _ElevenWeights(germany.Algorithm06):
    name = "X5"
    weights: ClassVar[list[int]] = [2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2]


class _OtherWeights(germany.Algorithm06):
    name = "X6"
    weights: ClassVar[list[int]] = [9, 8, 7]


@pytest.mark.parametrize(
    "cls", [_OtherSummand, _OtherValidate, _BankToo, _CheckDigitZero, _ElevenWeights]
)
def test_a_class_with_anything_unknown_stays_with_schwifty(cls: type[Algorithm]) -> None:
    tables = build_tables({"10000000": cls(), "20000000": None}, None)
    assert tables.method_of == bytes([SCHWIFTY, UNCHECKED])
    assert tables.native == frozenset()
    assert native_check(tables, b"100000000123456789") == b"\x02"


def test_numbers_are_read_from_the_class() -> None:
    # the same functions as method 06 with other weights: native, and schwifty's answer
    tables = build_tables({"10000000": _OtherWeights()}, None)
    assert tables.native == {"X6"}
    rng = random.Random(4)
    values = [f"{rng.randrange(10**10):010d}" for _ in range(3000)]
    got = native_check(tables, "".join("10000000" + v for v in values).encode())
    assert got is not None
    want = [int(_OtherWeights().validate([v], "")) for v in values]
    assert list(got) == want
    assert 0 < sum(want) < len(want)


class _RaisingFirst(germany.FallbackVariants):
    """Method 02 first: where it raises (remainder 1), schwifty's any() fails at once."""

    name = "X7"
    variants: ClassVar[tuple[type[germany.WeightedModulus], type[germany.WeightedModulus]]] = (
        germany.Algorithm02,
        germany.Algorithm00,
    )


def test_a_variant_that_raises_ends_the_search_as_in_schwifty() -> None:
    tables = build_tables({"10000000": _RaisingFirst()}, None)
    assert tables.native == {"X7"}
    rng = random.Random(6)
    values = [f"{rng.randrange(10**10):010d}" for _ in range(5000)]
    got = native_check(tables, "".join("10000000" + v for v in values).encode())
    assert got is not None
    want = []
    raised = 0
    for v in values:
        try:
            want.append(int(_RaisingFirst().validate([v], "")))
        except exceptions.InvalidBBANChecksum:
            want.append(0)
            raised += int(germany.Algorithm00().validate([v], ""))
    assert list(got) == want
    assert raised > 0  # some of them method 00 alone would have passed


def test_registered_classes_are_those_the_tables_name() -> None:
    assert {type(a).__module__ for k, a in algorithms.items() if k.startswith("DE:")} == {
        "schwifty.checksum.germany"
    }


_ONE = build_tables({"10000000": germany.Algorithm06()}, None)


def _byte_at(at: int, value: int) -> bytes:
    """_ONE's methods with one byte changed (a method: 8 header bytes, then its variants)."""
    return _ONE.methods[:at] + bytes([value]) + _ONE.methods[at + 1 :]


@pytest.mark.parametrize(
    "change",
    [
        {"methods": b"\x00"},  # not whole methods
        {"codes": b"\x00\x00\x00"},  # half a code
        {"method_of": b""},  # a code without its method
        {"fallback": 200},  # a method that is not there
        {"fallback": 256},
        {"codes": array("I", [2, 1]).tobytes(), "method_of": b"\x00\x00"},  # not increasing
        {"codes": array("I", [10**8]).tobytes()},  # nine digits
        {"method_of": b"\xc8"},  # method 200 of 1
        {"methods": _byte_at(0, 11)},  # rule past the last
        {"methods": _byte_at(1, 5)},  # more variants than a method holds
        {"methods": _byte_at(1, 0)},  # no variant for a weighted rule
        {"methods": _byte_at(8 + 0, 0)},  # modulus 0
        {"methods": _byte_at(8 + 2, 0)},  # start 0
        {"methods": _byte_at(8 + 3, 11)},  # end past the account code
        {"methods": _byte_at(8 + 4, 0)},  # check digit 0
        {"methods": _byte_at(8 + 4, 11)},  # check digit past the account code
        {"methods": _byte_at(8 + 6, 9)},  # unknown summand
        {"methods": _byte_at(8 + 13, 0)},  # no weights
        {"methods": _byte_at(8 + 13, 11)},  # more weights than the table holds
    ],
)
def test_hostile_tables_are_refused(change: dict[str, object]) -> None:
    scan = scan_module()
    assert scan is not None
    args = dict(zip(("methods", "codes", "method_of", "fallback"), _ONE.args(), strict=True))
    assert scan.german_check(*args.values(), b"100000000123456789") in (b"\x00", b"\x01")
    args.update(change)
    with pytest.raises(ValueError, match="German tables"):
        scan.german_check(*args.values(), b"100000000123456789")


def test_bbans_of_another_length_are_refused() -> None:
    scan = scan_module()
    assert scan is not None
    with pytest.raises(ValueError, match="18-byte"):
        scan.german_check(*_ONE.args(), b"1" * 17)
