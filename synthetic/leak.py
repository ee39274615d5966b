"""A messy leaked file drawn from a customer file, with the exact exposures it must produce.

Truth rules (computed from how each value was generated, never with ``matching/``):

* A leaked row is a *customer row* when it was drawn from a customer; other rows are strangers
  whose e-mail, phone and IBAN are redrawn until their canonical form (below) belongs to no
  customer and to no other stranger, so a stranger never matches anybody.
* Canonical forms: e-mail = the value with surrounding whitespace removed, lower-cased; phone =
  E.164, where a national ``0…`` number is ``+33`` except the overseas mobile prefixes of
  ``OVERSEAS_CALLING_CODES`` (``0692…`` = ``+262692…``, ``0690…`` = ``+590690…``, ``0694…`` =
  ``+594694…``, ``0696/0697…`` = ``+596…``, ``0639…`` = ``+262639…``); IBAN = upper case without
  spaces or dashes, valid only when mod-97 and the national check (RIB key…) pass.
* An identifier cell of a customer row is *valid* iff the customer has that identifier and the
  cell holds one of its valid spellings: e-mail as-is, upper-cased, title-cased, or padded with
  spaces; phone as ``0612345678``, ``06 12 34 56 78``, ``06.12.34.56.78``, ``06-12-34-56-78``,
  ``+33 6 12 34 56 78``, ``+33 (0)6 12 34 56 78``, ``+33612345678``, ``0033612345678``,
  ``33612345678`` or ``612345678`` (metropolitan numbers), and ``0692123456``,
  ``06 92 12 34 56``, ``+262 692 12 34 56`` or ``+262692123456`` (overseas); IBAN compact, in
  groups of four separated by spaces or dashes, upper or lower case, possibly padded with spaces.
  Never valid: an empty cell (null, ``""`` or whitespace), an e-mail with its ``@`` removed, a
  phone with one digit after the leading ``0`` removed (eight-digit national number), an IBAN
  with one of its last ten digits changed (mod-97 always fails on a single changed digit).
* A customer is exposed iff at least one of their rows has a valid cell. ``matched_on`` = the
  sorted ``;``-joined kinds with a valid cell in any of their rows.
* A row is *matched* when it has a valid cell. ``categories`` = the sorted ``;``-joined union,
  over the customer's matched rows only, of the categories of the columns that are non-empty
  (not null and not only whitespace) in that row: ``COLUMN_CATEGORIES`` gives each column's
  category. A corrupted e-mail, phone or IBAN still counts as its category there.

Every generated character is representable in cp1252 and latin-1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from schemas.vocab import Category, KeyKind
from synthetic.operator import (
    OVERSEAS_CALLING_CODES,
    Ints,
    bic_of_iban,
    by_group,
    draw_emails,
    draw_ibans,
    draw_phones,
    fresh,
    pools,
    rng_for,
)

__all__ = ["COLUMN_CATEGORIES", "LEAK_COLUMNS", "Leak", "make_leak"]

COLUMN_CATEGORIES: dict[str, Category] = {
    "id_client": Category.CUSTOMER_NUMBER,
    "civilite": Category.NAME,
    "nom": Category.NAME,
    "prenom": Category.NAME,
    "email": Category.EMAIL,
    "telephone": Category.PHONE,
    "iban": Category.IBAN,
    "bic": Category.BIC,
    "adresse": Category.POSTAL_ADDRESS,
    "code_postal": Category.POSTAL_ADDRESS,
    "ville": Category.POSTAL_ADDRESS,
    "date_naissance": Category.BIRTH_DATE,
}
LEAK_COLUMNS = tuple(COLUMN_CATEGORIES)
_KEY_COLUMNS = {KeyKind.EMAIL: "email", KeyKind.PHONE: "telephone", KeyKind.IBAN: "iban"}

# Share of customer rows that are a second row of an already drawn customer.
_REPEAT_SHARE = 0.03


@dataclass(frozen=True)
class Leak:
    """Leaked rows as the attacker's file holds them, and the exposures they must produce."""

    frame: pl.DataFrame
    truth: pl.DataFrame


Spelling = Callable[[pl.Expr], pl.Expr]


def _pairs(digits: pl.Expr, sep: str, width: int = 10) -> pl.Expr:
    """``digits`` (``width`` characters) in pairs; slices, because a regex here costs 5x more."""
    return pl.concat_str([digits.str.slice(i, 2) for i in range(0, width, 2)], separator=sep)


def _metro(i: int) -> Spelling:
    def spell(national: pl.Expr) -> pl.Expr:
        nsn = national.str.slice(1)
        rest = _pairs(nsn.str.slice(1), " ", 8)
        forms = (
            national,
            _pairs(national, " "),
            _pairs(national, "."),
            _pairs(national, "-"),
            "+33 " + nsn.str.head(1) + " " + rest,
            "+33 (0)" + nsn.str.head(1) + " " + rest,
            "+33" + nsn,
            "0033" + nsn,
            "33" + nsn,
            nsn,
        )
        return forms[i]

    return spell


_METRO_SPELLINGS = 10
_OVERSEAS_SPELLINGS = 4


def _overseas(i: int) -> Spelling:
    codes = list(OVERSEAS_CALLING_CODES)

    def spell(national: pl.Expr) -> pl.Expr:
        nsn = national.str.slice(1)
        code = nsn.str.head(3).replace_strict(
            codes, list(OVERSEAS_CALLING_CODES.values()), default=None
        )
        forms = (
            national,
            _pairs(national, " "),
            "+" + code + " " + nsn.str.head(3) + " " + _pairs(nsn.str.slice(3), " ", 6),
            "+" + code + nsn,
        )
        return forms[i]

    return spell


def _is_overseas(national: pl.Expr) -> pl.Expr:
    return national.str.slice(1, 3).is_in(list(OVERSEAS_CALLING_CODES))


def _grouped(iban: pl.Expr, sep: str) -> pl.Expr:
    """Groups of four (IBANs are at most 34 characters); empty trailing groups are stripped."""
    groups = [iban.str.slice(i, 4) for i in range(0, 36, 4)]
    return pl.concat_str(groups, separator=sep).str.strip_chars_end(sep)


_IBAN_SPELLINGS: tuple[Spelling, ...] = (
    lambda v: v,
    lambda v: _grouped(v, " "),
    lambda v: v.str.to_lowercase(),
    lambda v: _grouped(v, " ").str.to_lowercase(),
    lambda v: _grouped(v, "-"),
    lambda v: "  " + _grouped(v, " ") + " ",
)
_EMAIL_SPELLINGS: tuple[Spelling, ...] = (
    lambda v: v,
    lambda v: v.str.to_uppercase(),
    lambda v: v.str.to_titlecase(),
    lambda v: " " + v + "  ",
    lambda v: v + " ",
)
_EMPTIES = (pl.lit(None, dtype=pl.String), pl.lit(""), pl.lit(" "))


def _modes(
    rng: np.random.Generator, n: int, messy: bool, valid: Sequence[float], corrupt: float
) -> Ints:
    """Per row: index of a valid spelling, or len(valid) = corrupted, or len(valid)+1.. = empty."""
    if not messy:
        return np.zeros(n, dtype=np.int64)
    empty = max(0.0, 1.0 - sum(valid) - corrupt)
    weights = np.array([*valid, corrupt, empty / 2, empty / 4, empty / 4])
    return rng.choice(weights.size, size=n, p=weights / weights.sum()).astype(np.int64)


def _spell(
    source: pl.Series,
    modes: Ints,
    spellings: Sequence[Callable[[pl.Series, Ints], pl.Expr]],
) -> pl.Series:
    """Row i is ``spellings[modes[i]]`` of ``source[i]``; null sources stay null."""

    def build(g: int, rows: Ints) -> pl.Series:
        sub = source.gather(rows)
        return pl.select(spellings[g](sub, rows)).to_series()

    return by_group(modes, len(spellings), build)


def _plain(spelling: Spelling) -> Callable[[pl.Series, Ints], pl.Expr]:
    return lambda sub, _rows: spelling(pl.lit(sub))


def _empty(value: pl.Expr) -> Callable[[pl.Series, Ints], pl.Expr]:
    return lambda sub, _rows: pl.repeat(value, sub.len())


def _empties() -> list[Callable[[pl.Series, Ints], pl.Expr]]:
    return [_empty(e) for e in _EMPTIES]


def _mess_emails(
    rng: np.random.Generator, source: pl.Series, messy: bool
) -> tuple[pl.Series, Ints]:
    modes = _modes(rng, source.len(), messy, [0.5, 0.06, 0.07, 0.08, 0.06], 0.07)
    spellings = [_plain(s) for s in _EMAIL_SPELLINGS]
    spellings.append(_plain(lambda v: v.str.replace("@", "", literal=True)))
    return _spell(source, modes, [*spellings, *_empties()]), modes


def _mess_phones(
    rng: np.random.Generator, source: pl.Series, messy: bool
) -> tuple[pl.Series, Ints]:
    weights = [0.30, 0.12, 0.08, 0.04, 0.06, 0.05, 0.05, 0.03, 0.03, 0.04]
    modes = _modes(rng, source.len(), messy, weights, 0.07)
    cut = rng.integers(1, 10, source.len(), dtype=np.int64)

    def spelling(i: int) -> Callable[[pl.Series, Ints], pl.Expr]:
        def spell(sub: pl.Series, _rows: Ints) -> pl.Expr:
            v = pl.lit(sub)
            far = _overseas(i % _OVERSEAS_SPELLINGS)(v)
            return pl.when(_is_overseas(v)).then(far).otherwise(_metro(i)(v))

        return spell

    def corrupt(sub: pl.Series, rows: Ints) -> pl.Expr:
        at = pl.lit(pl.Series(cut[rows], dtype=pl.Int64))
        v = pl.lit(sub)
        return pl.concat_str([v.str.head(at), v.str.slice(at + 1)])

    spellings = [spelling(i) for i in range(_METRO_SPELLINGS)]
    return _spell(source, modes, [*spellings, corrupt, *_empties()]), modes


def _mess_ibans(rng: np.random.Generator, source: pl.Series, messy: bool) -> tuple[pl.Series, Ints]:
    modes = _modes(rng, source.len(), messy, [0.40, 0.18, 0.05, 0.05, 0.05, 0.07], 0.08)
    back = rng.integers(1, 11, source.len(), dtype=np.int64)
    shift = rng.integers(1, 10, source.len(), dtype=np.int64)

    def near_miss(sub: pl.Series, rows: Ints) -> pl.Expr:
        v = pl.lit(sub)
        at = v.str.len_chars().cast(pl.Int64) - pl.lit(pl.Series(back[rows], dtype=pl.Int64))
        digit = v.str.slice(at, 1).cast(pl.Int64)
        changed = (digit + pl.lit(pl.Series(shift[rows], dtype=pl.Int64))) % 10
        return pl.concat_str([v.str.head(at), changed.cast(pl.String), v.str.slice(at + 1)])

    spellings = [_plain(s) for s in _IBAN_SPELLINGS]
    return _spell(source, modes, [*spellings, near_miss, *_empties()]), modes


def _blank(rng: np.random.Generator, values: pl.Series, share: float, messy: bool) -> pl.Series:
    """``values`` with a ``share`` of cells emptied (null, "" or " ") when messy."""
    if not messy:
        return values
    n = values.len()
    mode = pl.lit(pl.Series(np.where(rng.random(n) < share, rng.integers(1, 4, n), 0)))
    blanked = (
        pl.when(mode == 0)
        .then(pl.lit(values))
        .when(mode == 1)
        .then(_EMPTIES[0])
        .when(mode == 2)
        .then(_EMPTIES[1])
        .otherwise(_EMPTIES[2])
    )
    return pl.select(blanked).to_series()


def _national(phone: pl.Expr) -> pl.Expr:
    """A customer phone as a national ``0…`` number, to keep strangers off customers' numbers."""
    digits = phone.str.replace_all(r"\D", "")
    return (
        pl.when(digits.str.starts_with("0033"))
        .then("0" + digits.str.slice(4))
        .when(phone.str.starts_with("+33") | (digits.str.len_chars() == 11))
        .then("0" + digits.str.slice(2))
        .when(phone.str.strip_chars().str.starts_with("+"))
        .then("0" + digits.str.slice(3))
        .when(digits.str.len_chars() == 9)
        .then("0" + digits)
        .otherwise(digits)
    )


def _strangers(customers: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    p = pools(seed)
    rng = rng_for(seed, "strangers")
    first = rng.integers(0, p.first_names.len(), n, dtype=np.int64)
    last = rng.integers(0, p.last_names.len(), n, dtype=np.int64)
    first_folded, last_folded = p.first_folded.gather(first), p.last_folded.gather(last)
    email_rng, phone_rng, iban_rng = (
        rng_for(seed, "stranger-email"),
        rng_for(seed, "stranger-phone"),
        rng_for(seed, "stranger-iban"),
    )
    taken = customers.select(
        email=pl.col("email").str.strip_chars().str.to_lowercase(),
        phone=_national(pl.col("phone")),
        iban=pl.col("iban").str.replace_all(r"[\s-]", "").str.to_uppercase(),
    )
    emails = fresh(
        lambda rows, attempt: draw_emails(
            email_rng, first_folded.gather(rows), last_folded.gather(rows), attempt
        ),
        n,
        taken["email"],
    )
    phones = fresh(lambda rows, _: draw_phones(phone_rng, rows.size), n, taken["phone"])
    ibans = fresh(lambda rows, _: draw_ibans(iban_rng, rows.size), n, taken["iban"])
    return pl.DataFrame(
        {
            "customer_id": pl.repeat(None, n, dtype=pl.String, eager=True),
            "id_client": pl.select(
                pl.lit("EXT") + pl.int_range(1, n + 1, dtype=pl.Int64).cast(pl.String).str.zfill(8)
            ).to_series(),
            "email": emails.zip_with(
                pl.Series(rng.random(n) < 0.9), pl.repeat(None, n, dtype=pl.String, eager=True)
            ),
            "phone": phones.zip_with(
                pl.Series(rng.random(n) < 0.95), pl.repeat(None, n, dtype=pl.String, eager=True)
            ),
            "iban": ibans.zip_with(
                pl.Series(rng.random(n) < 0.6), pl.repeat(None, n, dtype=pl.String, eager=True)
            ),
            "first_name": p.first_names.gather(first),
            "last_name": p.last_names.gather(last),
        }
    )


def _customer_rows(customers: pl.DataFrame, n: int, rng: np.random.Generator) -> pl.DataFrame:
    """``n`` rows of distinct customers, ~3 % of them a second row of a customer already drawn."""
    total = customers.height
    if n == 0 or total == 0:
        return customers.clear().select(
            "customer_id",
            "email",
            "phone",
            "iban",
            "first_name",
            "last_name",
            id_client=pl.col("customer_id"),
        )
    distinct = min(total, n - round(n * _REPEAT_SHARE))
    distinct = max(distinct, 1)
    chosen = rng.choice(total, size=distinct, replace=False).astype(np.int64)
    repeats = n - distinct
    again = chosen[rng.choice(distinct, size=repeats, replace=repeats > distinct)]
    rows = pl.Series(np.concatenate([chosen, again]))
    return customers.select(
        pl.col("customer_id", "email", "phone", "iban", "first_name", "last_name").gather(rows),
        id_client=pl.col("customer_id").gather(rows),
    )


def _civilite(first_name: pl.Series, rng: np.random.Generator, seed: int) -> pl.Series:
    p = pools(seed)
    known = dict(zip(p.first_names.to_list(), p.male.tolist(), strict=True))
    male = first_name.replace_strict(known, default=None, return_dtype=pl.Boolean)
    coin = pl.Series(rng.random(first_name.len()) < 0.5)
    return pl.select(
        pl.when(pl.lit(male).fill_null(pl.lit(coin))).then(pl.lit("M.")).otherwise(pl.lit("Mme"))
    ).to_series()


def _dates(rng: np.random.Generator, n: int, messy: bool) -> pl.Series:
    start, end = date(1940, 1, 1).toordinal(), date(2007, 12, 31).toordinal()
    days = rng.integers(start, end + 1, n) - date(1970, 1, 1).toordinal()
    born = pl.Series(days.astype(np.int32)).cast(pl.Date)
    french = pl.Series(rng.random(n) < (0.5 if messy else 0.0))
    return pl.select(
        pl.when(pl.lit(french))
        .then(pl.lit(born).dt.strftime("%d/%m/%Y"))
        .otherwise(pl.lit(born).dt.strftime("%Y-%m-%d"))
    ).to_series()


def make_leak(
    customers: pl.DataFrame,
    n_rows: int,
    *,
    overlap: float = 0.3,
    seed: int = 0,
    messy: bool = True,
) -> Leak:
    """``n_rows`` leaked rows, ``overlap`` of them customers'; the truth follows the module rules.

    ``customers`` is a frame of ``make_customers`` (identifiers as it writes them). With
    ``messy=False`` every identifier is written as in the customer file and no cell is emptied.
    """
    if not 0.0 <= overlap <= 1.0:
        raise ValueError("overlap must be between 0 and 1")
    rng = rng_for(seed, "leak")
    n_customer_rows = round(overlap * n_rows) if customers.height else 0
    base = pl.concat(
        [
            _customer_rows(customers, n_customer_rows, rng),
            _strangers(customers, n_rows - n_customer_rows, seed),
        ],
        how="diagonal",
    )
    n = base.height
    p = pools(seed)
    email, email_mode = _mess_emails(rng, base["email"], messy)
    phone, phone_mode = _mess_phones(rng, base["phone"], messy)
    iban, iban_mode = _mess_ibans(rng, base["iban"], messy)
    address = rng.integers(0, p.streets.len(), n, dtype=np.int64)
    upper_name = pl.Series(rng.random(n) < (0.4 if messy else 0.0))
    nom = pl.select(
        pl.when(pl.lit(upper_name))
        .then(pl.lit(base["last_name"]).str.to_uppercase())
        .otherwise(pl.lit(base["last_name"]))
    ).to_series()
    bic = pl.select(bic_of_iban(pl.lit(base["iban"]))).to_series()
    frame = pl.DataFrame(
        {
            "id_client": _blank(rng, base["id_client"], 0.05, messy),
            "civilite": _blank(rng, _civilite(base["first_name"], rng, seed), 0.15, messy),
            "nom": _blank(rng, nom, 0.03, messy),
            "prenom": _blank(rng, base["first_name"], 0.05, messy),
            "email": email,
            "telephone": phone,
            "iban": iban,
            "bic": _blank(rng, bic, 0.3, messy),
            "adresse": _blank(rng, p.streets.gather(address), 0.1, messy),
            "code_postal": _blank(rng, p.postcodes.gather(address), 0.1, messy),
            "ville": _blank(rng, p.cities.gather(address), 0.1, messy),
            "date_naissance": _blank(rng, _dates(rng, n, messy), 0.25, messy),
        }
    )
    valid = pl.DataFrame(
        {
            "customer_id": base["customer_id"],
            KeyKind.EMAIL.value: (email_mode < len(_EMAIL_SPELLINGS))
            & base["email"].is_not_null().to_numpy(),
            KeyKind.PHONE.value: (phone_mode < _METRO_SPELLINGS)
            & base["phone"].is_not_null().to_numpy(),
            KeyKind.IBAN.value: (iban_mode < len(_IBAN_SPELLINGS))
            & base["iban"].is_not_null().to_numpy(),
        }
    )
    order = pl.Series(rng.permutation(n).astype(np.int64))
    return Leak(frame=frame[order], truth=_truth(frame, valid))


def _truth(frame: pl.DataFrame, valid: pl.DataFrame) -> pl.DataFrame:
    kinds = sorted(KeyKind, key=str)
    categories = sorted(set(COLUMN_CATEGORIES.values()), key=str)
    present = {
        c: pl.any_horizontal(
            [
                pl.col(col).is_not_null() & (pl.col(col).str.strip_chars() != "")
                for col, cat in COLUMN_CATEGORIES.items()
                if cat == c
            ]
        ).alias(f"cat_{c}")
        for c in categories
    }
    rows = (
        pl.concat([valid, frame.select(present.values())], how="horizontal")
        .filter(pl.col("customer_id").is_not_null())
        .filter(pl.any_horizontal([pl.col(k.value) for k in kinds]))
    )
    per_customer = rows.group_by("customer_id").agg(
        [pl.col(k.value).any() for k in kinds] + [pl.col(f"cat_{c}").any() for c in categories]
    )
    return per_customer.select(
        "customer_id",
        matched_on=pl.concat_str(
            [pl.when(pl.col(k.value)).then(pl.lit(k.value)) for k in kinds],
            separator=";",
            ignore_nulls=True,
        ),
        categories=pl.concat_str(
            [pl.when(pl.col(f"cat_{c}")).then(pl.lit(c.value)) for c in categories],
            separator=";",
            ignore_nulls=True,
        ),
    ).sort("customer_id")
