"""IBANs to compact upper case after mod-97 and national checks: schwifty reference, polars path.

The reference is schwifty's ``IBAN(x, validate_bban=True)`` after our own clean-up (spaces, tabs,
no-break spaces, dashes and dots removed; ASCII letters and digits only; at most 34 characters),
with one addition: schwifty checks the French RIB key only for FR and MC, while the French
overseas territories whose BBAN is the French one (RIB_COUNTRIES) carry the same key unchecked;
we check it there too, so an IBAN with a wrong RIB key never matches whatever its prefix.

The fast path decides shape, length, BBAN format, mod-97, the RIB key and the national check
digits of Spain, Italy and Belgium in polars. German check digits are checked natively
(matching/_german.h, the same code the scanner runs) when the bank code's method is one that
matching/german_checks.py reproduces: 42 of schwifty's 44 German methods, all but C0 and 68,
used by 11 of the registry's 3 505 bank codes; about 0.1 µs a value where schwifty's Python
took ~10 µs (~24 µs with both cores busy). For those 11, and the other countries with a
schwifty national algorithm (PT, NO…), it runs schwifty's algorithm itself, once per distinct
well-formed value with a right mod-97, on the BBAN's components: the bank and its method are
looked up the way schwifty does, without building IBAN objects. Only a value on which such an
algorithm fails otherwise than with a schwifty error takes the reference.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from itertools import product

import polars as pl
from schwifty import IBAN, exceptions, registry
from schwifty.checksum import Algorithm, algorithms
from schwifty.domain import Bank, Component

from matching.german_checks import BBAN_LENGTH, GermanTables, build_tables, native_check
from matching.identity import fill_from_reference

__all__ = [
    "MAX_IBAN_LENGTH",
    "REASON_IBAN_COUNTRY_OR_LENGTH",
    "REASON_IBAN_MALFORMED",
    "REASON_IBAN_MOD97",
    "REASON_IBAN_NATIONAL",
    "RIB_COUNTRIES",
    "normalise_iban",
    "normalise_ibans",
]

REASON_IBAN_MOD97 = "IBAN mod-97 check fails"
REASON_IBAN_NATIONAL = "IBAN national check digits fail"
REASON_IBAN_COUNTRY_OR_LENGTH = "IBAN country or length invalid"
REASON_IBAN_MALFORMED = "IBAN malformed"

MAX_IBAN_LENGTH = 34

RIB_COUNTRIES: frozenset[str] = frozenset(
    {"FR", "MC", "BL", "GF", "GP", "MF", "MQ", "NC", "PF", "PM", "RE", "TF", "WF", "YT"}
)
"""France, Monaco and the overseas territories whose IBAN holds a French RIB (key in 22..23)."""

_SEPARATORS = " \t\r\n\u00a0\u202f-."
_SEPARATOR_CLASS = "[" + re.escape(_SEPARATORS) + "]"
_DELETE_SEPARATORS = str.maketrans("", "", _SEPARATORS)
_ALNUM = re.compile(r"[A-Za-z0-9]+", re.ASCII)

# French RIB letter values (schwifty.checksum.france): A,J→1 … I,R→9, S→2 … Z→9.
_RIB_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_RIB_VALUES = [str(v) for v in [*range(1, 10), *range(1, 10), *range(2, 10)]]
_IBAN_LETTER_VALUES = [str(v) for v in range(10, 36)]

_MOD97_CHUNK = 9
_MOD97_WIDTH = 72  # 34 characters, each at most two digits, padded to a multiple of the chunk


def _rib_key_ok(bban: str) -> bool:
    digits = "".join(_RIB_VALUES[_RIB_LETTERS.index(c)] if c.isalpha() else c for c in bban)
    bank, branch, account, key = digits[0:5], digits[5:10], digits[10:21], digits[21:23]
    remainder = (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
    return f"{97 - remainder:02d}" == key


def _reason_of(error: exceptions.SchwiftyException) -> str:
    """Our reason for a schwifty error (the reference and the schwifty-national path share it)."""
    if isinstance(error, exceptions.InvalidCountryCode | exceptions.InvalidLength):
        return REASON_IBAN_COUNTRY_OR_LENGTH
    if isinstance(error, exceptions.InvalidChecksumDigits):
        return REASON_IBAN_MOD97
    if isinstance(error, exceptions.InvalidBBANChecksum):
        return REASON_IBAN_NATIONAL
    return REASON_IBAN_MALFORMED


def normalise_iban(value: str | None) -> tuple[str | None, str | None]:
    """Reference: (compact upper-case IBAN or None, reason or None); empty input -> (None, None)."""
    if value is None:
        return None, None
    text = value.translate(_DELETE_SEPARATORS)
    if not text:
        return None, None
    if not _ALNUM.fullmatch(text):
        return None, REASON_IBAN_MALFORMED
    if len(text) > MAX_IBAN_LENGTH:
        return None, REASON_IBAN_COUNTRY_OR_LENGTH
    text = text.upper()
    try:
        with warnings.catch_warnings():
            # Countries whose check digits schwifty cannot verify pass with this warning.
            warnings.simplefilter("ignore", exceptions.NationalChecksumNotVerified)
            iban = IBAN(text, validate_bban=True)
    except exceptions.SchwiftyException as error:
        return None, _reason_of(error)
    if iban.country_code in RIB_COUNTRIES and not _rib_key_ok(iban.bban):
        return None, REASON_IBAN_NATIONAL
    return str(iban), None


@cache
def _specs() -> dict[str, tuple[int, str]]:
    """Country -> (IBAN length, BBAN regex body) for every country in schwifty's registry."""
    specs: dict[str, tuple[int, str]] = {}
    for first, second in product(_RIB_LETTERS, repeat=2):
        try:
            spec = registry.get_iban_spec(first + second)
        except exceptions.InvalidCountryCode:
            continue
        specs[first + second] = (
            spec.iban_length,
            spec.regex.pattern.removeprefix("^").removesuffix("$"),
        )
    return specs


# National check digits reimplemented here: country -> (schwifty's module for its algorithm,
# the BBAN positions (start, end) of bank, branch, account and check digits it must have).
_NATIONAL: dict[str, tuple[str, tuple[tuple[int, int], ...]]] = {
    "ES": ("schwifty.checksum.spain", ((0, 4), (4, 8), (10, 20), (8, 10))),
    "IT": ("schwifty.checksum.italy", ((1, 6), (6, 11), (11, 23), (0, 1))),
    "BE": ("schwifty.checksum.belgium", ((0, 3), (0, 0), (3, 10), (10, 12))),
}
_COMPONENTS = (
    Component.BANK_CODE,
    Component.BRANCH_CODE,
    Component.ACCOUNT_CODE,
    Component.NATIONAL_CHECKSUM_DIGITS,
)
_ES_WEIGHTS = (1, 2, 4, 8, 5, 10, 9, 7, 3, 6)
# Italian CIN: characters at odd positions (from 1) count through this table, others as is.
_IT_ODD = (
    1,
    0,
    5,
    7,
    9,
    13,
    15,
    17,
    19,
    21,
    2,
    4,
    18,
    20,
    11,
    3,
    6,
    8,
    12,
    14,
    16,
    10,
    22,
    25,
    24,
    23,
)
_IT_CHARS = [str(d) for d in range(10)] + list(_RIB_LETTERS)
_IT_VALUES = list(range(10)) + list(range(26))


@cache
def _vectorised_national() -> frozenset[str]:
    """Countries whose national check this module computes exactly as schwifty would.

    Only while schwifty applies its default algorithm to every bank of the country, that
    algorithm is the one we know, and the BBAN layout is the one the expressions assume.
    """
    countries = set()
    for country, (module, positions) in _NATIONAL.items():
        algorithm = algorithms.get(f"{country}:default")
        spec = registry.get_iban_spec(country)
        layout = tuple(
            (r.start, r.end) if (r := spec.positions.get(c)) is not None else (0, 0)
            for c in _COMPONENTS
        )
        banks = registry.get_banks_by_country(country)
        if (
            algorithm is not None
            and type(algorithm).__module__ == module
            and layout == positions
            and all(bank.checksum_algo == "default" for bank in banks)
        ):
            countries.add(country)
    return frozenset(countries)


@cache
def _schwifty_national_countries() -> frozenset[str]:
    """Countries with a schwifty national algorithm we do not reimplement: schwifty runs it."""
    with_algorithm = {key.split(":", 1)[0] for key in algorithms}
    return frozenset(with_algorithm - RIB_COUNTRIES - _vectorised_national())


@cache
def _reference_only_countries() -> frozenset[str]:
    """Countries whose every well-formed IBAN takes the reference: none at present.

    `_schwifty_national_reason` reproduces schwifty's national check for every country of
    `_schwifty_national_countries`; a country whose check it cannot reproduce goes here.
    """
    return frozenset()


@dataclass(frozen=True)
class _NationalCheck:
    """One schwifty algorithm with where its inputs are in a BBAN of the country's length."""

    algorithm: Algorithm
    components: tuple[slice, ...]
    """schwifty's ``algorithm.accepts``, in order."""
    expected: slice
    """The national check digits (empty for countries that have none)."""


@dataclass(frozen=True)
class _NationalLayout:
    """What schwifty's national check of one country reads from a BBAN, resolved once."""

    bban_length: int
    lookup: tuple[slice, ...]
    """Where the bank lookup key is (schwifty's ``bic_lookup_components``, in order)."""
    by_key: Mapping[str, _NationalCheck | None]
    """Check per bank code in the registry (None: schwifty has no algorithm for its method)."""
    default: _NationalCheck | None
    """Check for a bank code not in the registry."""


@cache
def _national_layout(country: str) -> _NationalLayout:
    spec = registry.get_iban_spec(country)
    length = spec.bban_length

    def cut(component: Component) -> slice:
        # schwifty reads a component that does not fit in the BBAN as empty
        r = spec.positions.get(component)
        if r is None or not (r.start < length and r.end <= length):
            return slice(0, 0)
        return slice(r.start, r.end)

    @cache
    def check(method: str) -> _NationalCheck | None:
        algorithm = algorithms.get(f"{country}:{method}")
        if algorithm is None:
            return None
        return _NationalCheck(
            algorithm,
            tuple(cut(c) for c in algorithm.accepts),
            cut(Component.NATIONAL_CHECKSUM_DIGITS),
        )

    by_key: dict[str, _NationalCheck | None] = {}
    for bank in registry.get_banks_by_country(country):
        if bank.bank_code and bank.bank_code not in by_key:
            # schwifty takes the first bank of the code flagged primary, else the first one
            chosen = max(registry.get_banks_by_code(country, bank.bank_code), key=_is_primary)
            by_key[bank.bank_code] = check(chosen.checksum_algo)
    lookup_by = spec.bic_lookup_components or [Component.BANK_CODE]
    return _NationalLayout(
        bban_length=length,
        lookup=tuple(cut(c) for c in lookup_by),
        by_key=by_key,
        default=check("default"),
    )


def _is_primary(bank: Bank) -> bool:
    return bank.primary


@cache
def _german_tables() -> GermanTables | None:
    """The native German check's tables for the registry's bank codes, as schwifty would pick
    their methods; None unless DE's BBAN is the one it reads (18 characters, the bank code
    0..8 as the lookup key, the account code 8..18; a BBAN not all digits stays schwifty's)."""
    if "DE" not in _schwifty_national_countries():
        return None
    spec = registry.get_iban_spec("DE")
    account = spec.positions.get(Component.ACCOUNT_CODE)
    layout = _national_layout("DE")
    if (
        layout.bban_length != BBAN_LENGTH
        or layout.lookup != (slice(0, 8),)
        or account is None
        or (account.start, account.end) != (8, BBAN_LENGTH)
    ):
        return None

    def algorithm(check: _NationalCheck | None) -> Algorithm | None:
        return None if check is None else check.algorithm

    return build_tables(
        {code: algorithm(check) for code, check in layout.by_key.items()},
        algorithm(layout.default),
    )


def _german_native(texts: pl.Series) -> pl.Series:
    """Per IBAN with a right mod-97: the native German check, 1 passes, 0 fails; 2 where
    schwifty decides (other countries, methods the native check does not reproduce, no C
    extension)."""
    verdicts = pl.Series("native", [2] * texts.len(), dtype=pl.UInt8)
    tables = _german_tables()
    german = texts.str.starts_with("DE").arg_true()
    if tables is None or german.len() == 0:
        return verdicts
    bbans = texts.gather(german).str.slice(4)
    if not (bbans.str.len_bytes() == BBAN_LENGTH).all():
        return verdicts
    got = native_check(tables, bbans.str.join("").item().encode("ascii"))
    if got is None:
        return verdicts
    return verdicts.scatter(german, pl.Series(list(got), dtype=pl.UInt8))


class _Undecided(Exception):
    """schwifty would not decide the way this module models: the reference decides."""


def _schwifty_national_reason(country: str, bban: str) -> str | None:
    """schwifty's national check of a well-formed BBAN: None when it passes, else our reason.

    Raises _Undecided where schwifty would raise something other than a schwifty error.
    """
    layout = _national_layout(country)
    if len(bban) != layout.bban_length:
        raise _Undecided
    lookup = layout.lookup
    key = bban[lookup[0]] if len(lookup) == 1 else "".join([bban[at] for at in lookup])
    check = layout.by_key.get(key, layout.default)
    if check is None:
        # schwifty accepts the digits unchecked (with a warning the reference silences)
        return None
    try:
        passed = check.algorithm.validate(
            [bban[at] for at in check.components], bban[check.expected]
        )
    except exceptions.SchwiftyException as error:
        return _reason_of(error)
    except Exception as error:  # the reference lets these through: it decides
        raise _Undecided from error
    return None if passed else REASON_IBAN_NATIONAL


def _digit(bban: pl.Expr, at: int) -> pl.Expr:
    return bban.str.slice(at, 1).cast(pl.Int64, strict=False)


def _es_check(total: pl.Expr) -> pl.Expr:
    """schwifty's Spanish digit: 11 - sum mod 11, with 11 -> 0 and 10 -> 1."""
    d = 11 - total % 11
    return pl.when(d == 11).then(0).when(d == 10).then(1).otherwise(d)


def _es_ok(bban: pl.Expr) -> pl.Expr:
    first = pl.sum_horizontal(w * _digit(bban, i) for i, w in enumerate(_ES_WEIGHTS[2:]))
    second = pl.sum_horizontal(w * _digit(bban, 10 + i) for i, w in enumerate(_ES_WEIGHTS))
    return (_es_check(first) * 10 + _es_check(second)) == _digit(bban, 8) * 10 + _digit(bban, 9)


def _it_ok(bban: pl.Expr) -> pl.Expr:
    terms = []
    for i in range(22):
        char = bban.str.slice(1 + i, 1)
        values = _IT_VALUES if (i + 1) % 2 == 0 else [_IT_ODD[v] for v in _IT_VALUES]
        terms.append(char.replace_strict(_IT_CHARS, values, default=None, return_dtype=pl.Int64))
    cin = pl.sum_horizontal(terms) % 26
    letter = cin.replace_strict(list(range(26)), list(_RIB_LETTERS), return_dtype=pl.String)
    return letter == bban.str.slice(0, 1)


def _be_ok(bban: pl.Expr) -> pl.Expr:
    remainder = bban.str.slice(0, 10).cast(pl.Int64, strict=False) % 97
    expected = pl.when(remainder == 0).then(97).otherwise(remainder)
    return expected == bban.str.slice(10, 2).cast(pl.Int64, strict=False)


_NATIONAL_CHECKS = {"ES": _es_ok, "IT": _it_ok, "BE": _be_ok}


def _national_fails(frame: pl.DataFrame) -> pl.Series:
    """Per row: a well-formed IBAN of a vectorised country whose national check fails.

    Computed on those rows only (a few percent): the checks cost dozens of expressions.
    """
    countries = sorted(_vectorised_national())
    todo = frame.select(pl.col("formatted") & pl.col("country").is_in(countries)).to_series()
    fails = pl.Series("national", [False] * frame.height, dtype=pl.Boolean)
    rows = todo.arg_true()
    if rows.len() == 0:
        return fails
    sub = frame.select(pl.col("text").gather(rows), pl.col("country").gather(rows))
    bban = pl.col("text").str.slice(4)
    ok = pl.lit(value=True)
    for code in countries:
        ok = pl.when(pl.col("country") == code).then(_NATIONAL_CHECKS[code](bban)).otherwise(ok)
    failed = sub.select(~ok.fill_null(value=False)).to_series()
    return fails.scatter(rows, failed)


def _schwifty_national(frame: pl.DataFrame) -> pl.DataFrame:
    """Per row, for a well-formed IBAN with a right mod-97 of a schwifty-national country:
    "national_reason" (schwifty's verdict as our reason, null when it passes) and "undecided".

    German values whose method the native check reproduces are decided there; every other
    distinct value is checked once by schwifty's algorithm. Rows of other countries get
    (null, false).
    """
    countries = sorted(_schwifty_national_countries() - _reference_only_countries())
    todo = frame.select(pl.col("mod97") & pl.col("country").is_in(countries)).to_series()
    reasons = pl.Series("national_reason", [None] * frame.height, dtype=pl.String)
    undecided = pl.Series("undecided", [False] * frame.height, dtype=pl.Boolean)
    rows = todo.arg_true()
    if rows.len() == 0:
        return pl.DataFrame([reasons, undecided])
    texts = frame.get_column("text").gather(rows)
    native = _german_native(texts)
    failed = (native == 0).arg_true()
    reasons = reasons.scatter(
        rows.gather(failed), pl.Series([REASON_IBAN_NATIONAL] * failed.len(), dtype=pl.String)
    )
    slow = (native == 2).arg_true()
    if slow.len():
        verdicts: dict[str, tuple[str | None, bool]] = {}
        slow_texts: list[str] = texts.gather(slow).to_list()
        for text in slow_texts:
            if text not in verdicts:
                try:
                    verdicts[text] = (_schwifty_national_reason(text[:2], text[4:]), False)
                except _Undecided:
                    verdicts[text] = (None, True)
        decided = [verdicts[text] for text in slow_texts]
        at = rows.gather(slow)
        reasons = reasons.scatter(at, pl.Series([r for r, _ in decided], dtype=pl.String))
        undecided = undecided.scatter(at, pl.Series([u for _, u in decided], dtype=pl.Boolean))
    return pl.DataFrame([reasons, undecided])


@cache
def _format_regex() -> str:
    # Rows reaching this regex are ASCII, where ``\d`` means ``[0-9]``; the ASCII class keeps
    # the regex automaton small (Unicode ``\d`` made it several times slower).
    bodies = (
        f"{country}[0-9]{{2}}(?:{body.replace(chr(92) + 'd', '[0-9]')})"
        for country, (_, body) in sorted(_specs().items())
    )
    return "^(?:" + "|".join(bodies) + ")$"


def _mod97_digits(text: pl.Expr) -> pl.Expr:
    """The rearranged IBAN (BBAN, then country and check digits) as zero-padded decimal digits."""
    rearranged = pl.concat_str([text.str.slice(4), text.str.slice(0, 4)])
    digits = rearranged.str.replace_many(list(_RIB_LETTERS), _IBAN_LETTER_VALUES)
    return digits.str.zfill(_MOD97_WIDTH)


def _mod97_ok(padded: pl.Expr, text: pl.Expr) -> pl.Expr:
    """ISO 7064 mod-97-10 as schwifty checks it: remainder 1 and check digits in 02..98."""
    remainder = pl.lit(0, dtype=pl.Int64)
    for start in range(0, _MOD97_WIDTH, _MOD97_CHUNK):
        chunk = padded.str.slice(start, _MOD97_CHUNK).cast(pl.Int64, strict=False)
        remainder = (remainder * 10**_MOD97_CHUNK + chunk) % 97
    check = text.str.slice(2, 2).cast(pl.Int64, strict=False)
    return (remainder == 1) & check.is_between(2, 98)


def _rib_digits(text: pl.Expr) -> pl.Expr:
    """The BBAN with account letters replaced by their RIB digit (positions unchanged)."""
    return text.str.slice(4).str.replace_many(list(_RIB_LETTERS), _RIB_VALUES)


def _rib_ok(bban: pl.Expr) -> pl.Expr:
    """The French RIB key over the BBAN (bank 5, branch 5, account 11, key 2)."""
    bank = bban.str.slice(0, 5).cast(pl.Int64, strict=False)
    branch = bban.str.slice(5, 5).cast(pl.Int64, strict=False)
    account = bban.str.slice(10, 11).cast(pl.Int64, strict=False)
    key = bban.str.slice(21, 2).cast(pl.Int64, strict=False)
    return 97 - (89 * bank + 15 * branch + 3 * account) % 97 == key


def normalise_ibans(values: pl.Series) -> pl.DataFrame:
    """Vectorised: columns "canonical" and "reason", identical to normalise_iban row by row."""
    specs = _specs()
    text = pl.col("text")
    frame = (
        pl.DataFrame({"value": values.cast(pl.String)})
        .with_columns(text=pl.col("value").str.replace_all(_SEPARATOR_CLASS, ""))
        .with_columns(
            alnum=text.str.contains(r"^[A-Za-z0-9]+$"),
            text=text.str.to_uppercase(),
            country=text.str.slice(0, 2).str.to_uppercase(),
        )
        .with_columns(
            length=pl.col("country").replace_strict(
                list(specs),
                [length for length, _ in specs.values()],
                default=None,
                return_dtype=pl.Int64,
            )
        )
    )
    too_long = pl.col("alnum") & (text.str.len_chars() > MAX_IBAN_LENGTH)
    frame = frame.with_columns(
        blank=text.is_null() | (text.str.len_bytes() == 0),
        too_long=too_long,
        shaped=pl.col("alnum")
        & ~too_long
        & text.str.contains(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]+$")
        & (text.str.len_chars() == pl.col("length")),
    )
    frame = frame.with_columns(
        formatted=pl.col("shaped") & text.str.contains(_format_regex()),
        mod97_digits=_mod97_digits(text),
        rib_digits=_rib_digits(text),
    )
    frame = frame.with_columns(
        mod97=pl.col("formatted") & _mod97_ok(pl.col("mod97_digits"), text),
        rib=pl.col("formatted")
        & pl.col("country").is_in(sorted(RIB_COUNTRIES))
        & _rib_ok(pl.col("rib_digits")),
        schwifty_only=pl.col("country").is_in(sorted(_reference_only_countries())),
    )
    frame = frame.with_columns(national=_national_fails(frame))
    frame = pl.concat([frame, _schwifty_national(frame)], how="horizontal")
    in_rib = pl.col("country").is_in(sorted(RIB_COUNTRIES))
    reason = (
        pl.when(pl.col("blank"))
        .then(pl.lit(None, dtype=pl.String))
        .when(~pl.col("alnum"))
        .then(pl.lit(REASON_IBAN_MALFORMED))
        .when(pl.col("too_long"))
        .then(pl.lit(REASON_IBAN_COUNTRY_OR_LENGTH))
        .when(pl.col("shaped") & ~pl.col("formatted"))
        .then(pl.lit(REASON_IBAN_MALFORMED))
        .when(pl.col("formatted") & ~pl.col("mod97"))
        .then(pl.lit(REASON_IBAN_MOD97))
        .when(pl.col("mod97") & ((in_rib & ~pl.col("rib")) | pl.col("national")))
        .then(pl.lit(REASON_IBAN_NATIONAL))
        .when(pl.col("mod97"))
        .then(pl.col("national_reason"))
    )
    valid = (
        pl.col("mod97")
        & ~pl.col("schwifty_only")
        & (~in_rib | pl.col("rib"))
        & ~pl.col("national")
        & pl.col("national_reason").is_null()
        & ~pl.col("undecided")
    )
    frame = frame.with_columns(reason=reason, canonical=pl.when(valid).then(text))
    frame = frame.with_columns(
        pending=~pl.col("blank") & pl.col("reason").is_null() & pl.col("canonical").is_null()
    )
    return fill_from_reference(frame, normalise_iban)
