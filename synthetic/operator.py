"""A synthetic operator's customer file, and the vectorised identifier generators it is made of."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np
import polars as pl
from faker import Faker
from faker.providers.person.fr_FR import Provider as FrenchNames
from numpy.typing import NDArray

__all__ = [
    "CUSTOMER_COLUMNS",
    "OVERSEAS_CALLING_CODES",
    "Pools",
    "bic_of_iban",
    "by_group",
    "draw_emails",
    "draw_ibans",
    "draw_phones",
    "fresh",
    "make_customers",
    "pools",
    "rng_for",
]

CUSTOMER_COLUMNS = (
    "customer_id",
    "email",
    "phone",
    "iban",
    "first_name",
    "last_name",
    "language",
    "status",
    "contract_end",
)

Ints = NDArray[np.int64]

# National significant number prefix (the digits after the trunk 0) -> calling code, for the
# overseas mobiles; every other number we generate is metropolitan (+33). design.md §4: these
# belong to +262/+590/+594/+596, never to +33.
OVERSEAS_CALLING_CODES: dict[str, str] = {
    "692": "262",
    "693": "262",
    "639": "262",
    "690": "590",
    "694": "594",
    "696": "596",
    "697": "596",
}

# (prefix after the trunk 0, weight). Only ranges where phonenumbers says every completion is a
# valid number, so the tail digits can be drawn freely.
_MOBILE_PREFIXES = [("6" + d, 0.6 / 8) for d in "01245678"] + [
    ("7" + d, 0.4 / 7) for d in "3456789"
]
_OVERSEAS_PREFIXES = (
    [("692", 0.35), ("690", 0.2), ("696", 0.15), ("697", 0.05)]
    + [("693" + d + "0", 0.1 / 10) for d in "0123456789"]
    + [("694" + d, 0.1 / 3) for d in "012"]
    + [("639" + d, 0.05 / 3) for d in "267"]
)
_LANDLINE_PREFIXES = (
    [("1", 0.3), ("3", 0.15), ("9", 0.15)]
    + [("2" + d, 0.1 / 9) for d in "012345789"]
    + [("4" + d, 0.15 / 9) for d in "123456789"]
    + [("5" + d, 0.15 / 9) for d in "012345678"]
)
_PHONE_KINDS = ((_MOBILE_PREFIXES, 0.87), (_OVERSEAS_PREFIXES, 0.03), (_LANDLINE_PREFIXES, 0.10))


@dataclass(frozen=True)
class _Bank:
    country: str
    code: str
    bic: str
    weight: float


# Real bank codes, so BICs and bank names look right. German banks all use check method 00,
# the only German method implemented here (schwifty picks the method by bank code).
_BANKS = (
    _Bank("FR", "30004", "BNPAFRPP", 0.16),
    _Bank("FR", "30003", "SOGEFRPP", 0.13),
    _Bank("FR", "20041", "PSSTFRPP", 0.13),
    _Bank("FR", "18206", "AGRIFRPP882", 0.12),
    _Bank("FR", "30002", "CRLYFRPP", 0.07),
    _Bank("FR", "10278", "CMCIFR2A", 0.09),
    _Bank("FR", "30066", "CMCIFRPP", 0.04),
    _Bank("FR", "10107", "BREDFRPP", 0.04),
    _Bank("FR", "15589", "CMBRFR2B", 0.05),
    _Bank("FR", "16218", "BFBKFRP1", 0.03),
    _Bank("FR", "30056", "CCFRFRPP", 0.04),
    _Bank("DE", "26650001", "NOLADE21EMS", 0.005),
    _Bank("DE", "35450000", "WELADED1MOR", 0.005),
    _Bank("DE", "48050161", "SPBIDE3BXXX", 0.005),
    _Bank("DE", "67450048", "SOLADES1MOS", 0.005),
    _Bank("ES", "0049", "BSCHESMM", 0.006),
    _Bank("ES", "2100", "CAIXESBB", 0.007),
    _Bank("ES", "0182", "BBVAESMM", 0.007),
    _Bank("IT", "03069", "BCITITMM", 0.01),
    _Bank("IT", "02008", "UNCRITMM", 0.01),
    _Bank("BE", "001", "GEBABEBB", 0.007),
    _Bank("BE", "310", "BBRUBEBB", 0.007),
    _Bank("BE", "735", "KREDBEBB", 0.006),
)
# Where the bank code sits in each country's IBAN (after country and check digits).
_BANK_CODE_SLICE = {"FR": (4, 5), "DE": (4, 8), "ES": (4, 4), "IT": (5, 5), "BE": (4, 3)}

_EMAIL_DOMAINS = (
    ("gmail.com", 0.3),
    ("orange.fr", 0.15),
    ("free.fr", 0.1),
    ("sfr.fr", 0.07),
    ("laposte.net", 0.07),
    ("hotmail.fr", 0.1),
    ("yahoo.fr", 0.08),
    ("outlook.fr", 0.05),
    ("wanadoo.fr", 0.05),
    ("icloud.com", 0.03),
)


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """An independent generator per (seed, purpose), so adding a draw never shifts another."""
    return np.random.default_rng([seed, *stream.encode()])


def _weighted(rng: np.random.Generator, weights: Sequence[float], n: int) -> Ints:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(p), size=n, p=p / p.sum()).astype(np.int64)


def _portable(text: str) -> bool:
    """True when ``text`` encodes in both cp1252 and latin-1 (U+0020..U+00FF without C1)."""
    return all(0x20 <= ord(c) <= 0xFF and not 0x7F <= ord(c) < 0xA0 for c in text)


def _fold(text: str) -> str:
    """Lower-case ASCII letters of ``text``, for e-mail local parts."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in ascii_text.lower() if c.isalpha())


@dataclass(frozen=True)
class Pools:
    """Small Faker fr_FR pools that every row draws from by index (never Faker per row)."""

    first_names: pl.Series
    first_folded: pl.Series
    male: NDArray[np.bool_]
    last_names: pl.Series
    last_folded: pl.Series
    streets: pl.Series
    postcodes: pl.Series
    cities: pl.Series


@lru_cache(maxsize=8)
def pools(seed: int = 0) -> Pools:
    """Name and address pools; every value is representable in cp1252 and latin-1."""
    male = [n for n in dict.fromkeys(FrenchNames.first_names_male) if _portable(n)]
    female = [n for n in dict.fromkeys(FrenchNames.first_names_female) if _portable(n)]
    female = [n for n in female if n not in male]
    last = [n for n in dict.fromkeys(FrenchNames.last_names) if _portable(n) and _fold(n)]
    fake = Faker("fr_FR")
    fake.seed_instance(seed)
    addresses: list[tuple[str, str, str]] = []
    while len(addresses) < 3000:
        entry = (fake.street_address(), fake.postcode(), fake.city())
        if all(_portable(x) for x in entry):
            addresses.append(entry)
    firsts = male + female
    return Pools(
        first_names=pl.Series(firsts, dtype=pl.String),
        first_folded=pl.Series([_fold(n) for n in firsts], dtype=pl.String),
        male=np.array([True] * len(male) + [False] * len(female)),
        last_names=pl.Series(last, dtype=pl.String),
        last_folded=pl.Series([_fold(n) for n in last], dtype=pl.String),
        streets=pl.Series([a[0] for a in addresses], dtype=pl.String),
        postcodes=pl.Series([a[1] for a in addresses], dtype=pl.String),
        cities=pl.Series([a[2] for a in addresses], dtype=pl.String),
    )


def by_group(groups: Ints, n_groups: int, build: Callable[[int, Ints], pl.Series]) -> pl.Series:
    """One Series whose row i comes from ``build(groups[i], rows of that group)``.

    Each builder only sees its own rows, so a frame with ten spellings costs one spelling per row.
    """
    order = np.argsort(groups, kind="stable").astype(np.int64)
    counts = np.bincount(groups, minlength=n_groups)
    parts: list[pl.Series] = []
    start = 0
    for g in range(n_groups):
        rows = order[start : start + counts[g]]
        start += int(counts[g])
        if rows.size:
            parts.append(build(g, rows).cast(pl.String).rename("v"))
    if not parts:
        return pl.Series("v", [], dtype=pl.String)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size, dtype=np.int64)
    return pl.concat(parts).gather(inverse)


def fresh(
    draw: Callable[[Ints, int], pl.Series], n: int, taken: pl.Series | None = None
) -> pl.Series:
    """``n`` values of ``draw(rows, attempt)``, distinct and not in ``taken`` (clashes redrawn)."""
    out = draw(np.arange(n, dtype=np.int64), 0).rename("v")
    # Compared by 64-bit hash: equal values always clash; a rare hash collision only costs a redraw.
    taken_hashes = None if taken is None else taken.drop_nulls().hash(_HASH_SEED).implode()
    for attempt in range(1, 64):
        hashes = out.hash(_HASH_SEED)
        clash = ~hashes.is_first_distinct()
        if taken_hashes is not None:
            clash = clash | hashes.is_in(taken_hashes)
        rows = np.flatnonzero(clash.to_numpy()).astype(np.int64)
        if rows.size == 0:
            return out
        out = out.scatter(rows, draw(rows, attempt))
    raise RuntimeError("could not draw enough distinct identifiers; the space is exhausted")


_HASH_SEED = 20261123


def _digits(values: Ints, width: int) -> pl.Expr:
    return pl.lit(pl.Series(values, dtype=pl.Int64)).cast(pl.String).str.zfill(width)


# ---- phones ---------------------------------------------------------------------------------


def draw_phones(rng: np.random.Generator, n: int) -> pl.Series:
    """``n`` valid French numbers written nationally (``0612345678``, ``0692123456``)."""
    prefixes = [p for table, _ in _PHONE_KINDS for p, _ in table]
    weights = [w * kind_w for table, kind_w in _PHONE_KINDS for _, w in table]
    which = _weighted(rng, weights, n)
    prefix_value = np.array([int(p) for p in prefixes], dtype=np.int64)[which]
    tail_width = np.array([9 - len(p) for p in prefixes], dtype=np.int64)[which]
    scale = np.power(10, tail_width).astype(np.int64)
    nsn = prefix_value * scale + rng.integers(0, scale, dtype=np.int64)
    return pl.select(pl.lit("0") + _digits(nsn, 9)).to_series().rename("v")


# ---- IBANs ----------------------------------------------------------------------------------


def _mod97(parts: Sequence[tuple[Ints, int]]) -> Ints:
    """The remainder mod 97 of the decimal concatenation of ``parts`` (value, digit width)."""
    r = np.zeros_like(parts[0][0])
    for values, width in parts:
        r = (r * 10**width + values) % 97
    return r


_COUNTRY_DIGITS = {"FR": 1527, "DE": 1314, "ES": 1428, "IT": 1829, "BE": 1114}


def _iban_check(bban_parts: Sequence[tuple[Ints, int]], country: str) -> Ints:
    n = bban_parts[0][0].size
    tail = np.full(n, _COUNTRY_DIGITS[country] * 100, dtype=np.int64)
    return 98 - _mod97([*bban_parts, (tail, 6)])


def _weighted_sum(values: Ints, width: int, weights: Sequence[int]) -> Ints:
    """Sum of the ``width`` decimal digits of ``values`` (left to right) times ``weights``."""
    total = np.zeros_like(values)
    for i, w in enumerate(weights):
        total += (values // 10 ** (width - 1 - i)) % 10 * w
    return total


def _french(bank: Ints, rng: np.random.Generator) -> tuple[list[tuple[Ints, int]], list[pl.Expr]]:
    branch = rng.integers(0, 10**5, bank.size, dtype=np.int64)
    account = rng.integers(0, 10**11, bank.size, dtype=np.int64)
    key = 97 - (89 * bank + 15 * branch + 3 * account) % 97
    parts = [(bank, 5), (branch, 5), (account, 11), (key, 2)]
    return parts, [_digits(v, w) for v, w in parts]


def _german(bank: Ints, rng: np.random.Generator) -> tuple[list[tuple[Ints, int]], list[pl.Expr]]:
    base = rng.integers(0, 10**9, bank.size, dtype=np.int64)
    # Bundesbank method 00: weights 2,1,2,… from the right, products reduced to their digit sum.
    total = np.zeros_like(base)
    for k in range(9):
        product = (base // 10**k) % 10 * (2 if k % 2 == 0 else 1)
        total += product // 10 + product % 10
    account = base * 10 + (10 - total % 10) % 10
    parts = [(bank, 8), (account, 10)]
    return parts, [_digits(v, w) for v, w in parts]


_ES_WEIGHTS = (1, 2, 4, 8, 5, 10, 9, 7, 3, 6)


def _spanish_digit(values: Ints) -> Ints:
    d = 11 - _weighted_sum(values, 10, _ES_WEIGHTS) % 11
    return np.where(d == 11, 0, np.where(d == 10, 1, d))


def _spanish(bank: Ints, rng: np.random.Generator) -> tuple[list[tuple[Ints, int]], list[pl.Expr]]:
    branch = rng.integers(0, 10**4, bank.size, dtype=np.int64)
    account = rng.integers(0, 10**10, bank.size, dtype=np.int64)
    control = _spanish_digit(bank * 10**4 + branch) * 10 + _spanish_digit(account)
    parts = [(bank, 4), (branch, 4), (control, 2), (account, 10)]
    return parts, [_digits(v, w) for v, w in parts]


_IT_ODD = np.array([1, 0, 5, 7, 9, 13, 15, 17, 19, 21], dtype=np.int64)


def _italian(bank: Ints, rng: np.random.Generator) -> tuple[list[tuple[Ints, int]], list[pl.Expr]]:
    branch = rng.integers(0, 10**5, bank.size, dtype=np.int64)
    account = rng.integers(0, 10**12, bank.size, dtype=np.int64)
    total = np.zeros_like(bank)
    for values, width, offset in ((bank, 5, 0), (branch, 5, 5), (account, 12, 10)):
        for i in range(width):
            digit = (values // 10 ** (width - 1 - i)) % 10
            # Positions counted from 1: odd ones go through the CIN table.
            total += _IT_ODD[digit] if (offset + i) % 2 == 0 else digit
    cin = total % 26
    letters = pl.lit(pl.Series(cin, dtype=pl.Int64)).replace_strict(
        list(range(26)), [chr(65 + i) for i in range(26)], return_dtype=pl.String
    )
    parts = [(cin + 10, 2), (bank, 5), (branch, 5), (account, 12)]
    return parts, [letters, *(_digits(v, w) for v, w in parts[1:])]


def _belgian(bank: Ints, rng: np.random.Generator) -> tuple[list[tuple[Ints, int]], list[pl.Expr]]:
    account = rng.integers(0, 10**7, bank.size, dtype=np.int64)
    check = (bank * 10**7 + account) % 97
    check = np.where(check == 0, 97, check)
    parts = [(bank, 3), (account, 7), (check, 2)]
    return parts, [_digits(v, w) for v, w in parts]


_BUILDERS = {"FR": _french, "DE": _german, "ES": _spanish, "IT": _italian, "BE": _belgian}
_COUNTRIES = tuple(_BUILDERS)


def draw_ibans(rng: np.random.Generator, n: int) -> pl.Series:
    """``n`` valid IBANs in compact upper case, national check digits included (RIB key…)."""
    bank_of_row = _weighted(rng, [b.weight for b in _BANKS], n)
    country_of_bank = np.array([_COUNTRIES.index(b.country) for b in _BANKS], dtype=np.int64)
    bank_codes = np.array([int(b.code) for b in _BANKS], dtype=np.int64)

    def build(g: int, rows: Ints) -> pl.Series:
        country = _COUNTRIES[g]
        parts, text = _BUILDERS[country](bank_codes[bank_of_row[rows]], rng)
        check = _iban_check(parts, country)
        return pl.select(pl.concat_str([pl.lit(country), _digits(check, 2), *text])).to_series()

    return by_group(country_of_bank[bank_of_row], len(_COUNTRIES), build)


def bic_of_iban(iban: pl.Expr) -> pl.Expr:
    """The BIC of the bank of a compact IBAN we generated (null for any other bank)."""
    country = iban.str.head(2)
    bank: pl.Expr = pl.lit(None, dtype=pl.String)
    for code, (start, width) in _BANK_CODE_SLICE.items():
        bank = pl.when(country == code).then(iban.str.slice(start, width)).otherwise(bank)
    keys = [b.country + b.code for b in _BANKS]
    return (country + bank).replace_strict(keys, [b.bic for b in _BANKS], default=None)


# ---- e-mails --------------------------------------------------------------------------------


def draw_emails(
    rng: np.random.Generator, first_folded: pl.Series, last_folded: pl.Series, attempt: int
) -> pl.Series:
    """Lower-case addresses built from folded names; later attempts add long numbers to converge."""
    n = first_folded.len()
    domain_names = pl.Series([d for d, _ in _EMAIL_DOMAINS], dtype=pl.String)
    frame = pl.DataFrame(
        {
            "first": first_folded,
            "last": last_folded,
            "pattern": rng.integers(0, 5, n, dtype=np.int64),
            "number": rng.integers(1, 10**6 if attempt else 10**4, n, dtype=np.int64),
            "bare": rng.random(n) < (0.0 if attempt else 0.45),
            "domain": domain_names.gather(_weighted(rng, [w for _, w in _EMAIL_DOMAINS], n)),
        }
    )
    first, last, pattern = pl.col("first"), pl.col("last"), pl.col("pattern")
    # Patterns: first.last, flast, firstlast, first_last, last.first.
    head = (
        pl.when(pattern == 1).then(first.str.head(1)).when(pattern == 4).then(last).otherwise(first)
    )
    sep = (
        pl.when(pattern.is_in([0, 4]))
        .then(pl.lit("."))
        .when(pattern == 3)
        .then(pl.lit("_"))
        .otherwise(pl.lit(""))
    )
    tail = pl.when(pattern == 4).then(first).otherwise(last)
    number = pl.when(pl.col("bare")).then(pl.lit("")).otherwise(pl.col("number").cast(pl.String))
    local = pl.concat_str([head, sep, tail, number])
    return frame.select(local + "@" + pl.col("domain")).to_series().rename("v")


# ---- the customer file ----------------------------------------------------------------------


def _iso_dates(rng: np.random.Generator, start: date, end: date, n: int) -> pl.Series:
    days = rng.integers(start.toordinal(), end.toordinal() + 1, n) - date(1970, 1, 1).toordinal()
    return pl.Series(days.astype(np.int32)).cast(pl.Date).cast(pl.String)


def make_customers(n: int, *, seed: int = 0) -> pl.DataFrame:
    """The customer file of design.md §2 (all pl.String), deterministic for ``seed``.

    ~90 % fr / 10 % en; ~85 % active; phones written nationally: ~87 % metropolitan mobiles,
    ~3 % overseas mobiles, ~10 % landlines, ~1 % none; ~95 % have an e-mail (~5 % of them with
    capitals); ~70 % an IBAN (~92 % French with a valid RIB key, the rest DE/ES/IT/BE). Every
    identifier is unique across customers by canonical form (e-mail lower case; phone as written,
    which is canonical for national numbers; IBAN compact upper case).
    """
    p = pools(seed)
    rng = rng_for(seed, "customers")
    first = rng.integers(0, p.first_names.len(), n, dtype=np.int64)
    last = rng.integers(0, p.last_names.len(), n, dtype=np.int64)
    first_folded, last_folded = p.first_folded.gather(first), p.last_folded.gather(last)

    email_rng, phone_rng, iban_rng = (
        rng_for(seed, "email"),
        rng_for(seed, "phone"),
        rng_for(seed, "iban"),
    )
    emails = fresh(
        lambda rows, attempt: draw_emails(
            email_rng, first_folded.gather(rows), last_folded.gather(rows), attempt
        ),
        n,
    )
    phones = fresh(lambda rows, _: draw_phones(phone_rng, rows.size), n)
    ibans = fresh(lambda rows, _: draw_ibans(iban_rng, rows.size), n)

    has_email = rng.random(n) < 0.95
    capitals = rng.random(n) < 0.05
    has_phone = rng.random(n) < 0.99
    has_iban = rng.random(n) < 0.70
    english = rng.random(n) < 0.10
    former = rng.random(n) >= 0.85
    committed = rng.random(n) < 0.25
    ended = _iso_dates(rng, date(2018, 1, 1), date(2026, 10, 31), n)
    commitment_end = _iso_dates(rng, date(2026, 12, 1), date(2029, 6, 30), n)

    frame = pl.DataFrame(
        {
            "i": pl.int_range(1, n + 1, eager=True, dtype=pl.Int64),
            "email": emails,
            "phone": phones,
            "iban": ibans,
            "first_name": p.first_names.gather(first),
            "last_name": p.last_names.gather(last),
            "has_email": has_email,
            "capitals": capitals,
            "has_phone": has_phone,
            "has_iban": has_iban,
            "english": english,
            "former": former,
            "committed": committed,
            "ended": ended,
            "commitment_end": commitment_end,
        }
    )
    email = pl.when(pl.col("capitals")).then(pl.col("email").str.to_titlecase()).otherwise("email")
    return frame.select(
        customer_id=pl.lit("C") + pl.col("i").cast(pl.String).str.zfill(9),
        email=pl.when("has_email").then(email),
        phone=pl.when("has_phone").then("phone"),
        iban=pl.when("has_iban").then("iban"),
        first_name="first_name",
        last_name="last_name",
        language=pl.when("english").then(pl.lit("en")).otherwise(pl.lit("fr")),
        status=pl.when("former").then(pl.lit("former")).otherwise(pl.lit("active")),
        contract_end=pl.when("former")
        .then("ended")
        .when("committed")
        .then("commitment_end")
        .otherwise(pl.lit(None, dtype=pl.String)),
    )
