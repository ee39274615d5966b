"""IBANs to compact upper case after mod-97 and national checks: schwifty reference, polars path.

The reference is schwifty's ``IBAN(x, validate_bban=True)`` after our own clean-up (spaces, tabs,
no-break spaces, dashes and dots removed; ASCII letters and digits only; at most 34 characters),
with one addition: schwifty checks the French RIB key only for FR and MC, while the French
overseas territories whose BBAN is the French one (RIB_COUNTRIES) carry the same key unchecked;
we check it there too, so an IBAN with a wrong RIB key never matches whatever its prefix.

The fast path decides shape, length, BBAN format, mod-97 and the RIB key in polars; rows of
countries for which schwifty has its own national algorithm (DE, ES, IT, BE…) take the reference.
"""

from __future__ import annotations

import re
import warnings
from functools import cache
from itertools import product

import polars as pl
from schwifty import IBAN, exceptions, registry
from schwifty.checksum import algorithms

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
    except (exceptions.InvalidCountryCode, exceptions.InvalidLength):
        return None, REASON_IBAN_COUNTRY_OR_LENGTH
    except exceptions.InvalidChecksumDigits:
        return None, REASON_IBAN_MOD97
    except exceptions.InvalidBBANChecksum:
        return None, REASON_IBAN_NATIONAL
    except exceptions.SchwiftyException:
        return None, REASON_IBAN_MALFORMED
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


@cache
def _reference_only_countries() -> frozenset[str]:
    """Countries with a schwifty national algorithm we do not reimplement."""
    with_algorithm = {key.split(":", 1)[0] for key in algorithms}
    return frozenset(with_algorithm - RIB_COUNTRIES)


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
        .when(pl.col("mod97") & in_rib & ~pl.col("rib"))
        .then(pl.lit(REASON_IBAN_NATIONAL))
    )
    valid = pl.col("mod97") & ~pl.col("schwifty_only") & (~in_rib | pl.col("rib"))
    frame = frame.with_columns(reason=reason, canonical=pl.when(valid).then(text))
    frame = frame.with_columns(
        pending=~pl.col("blank") & pl.col("reason").is_null() & pl.col("canonical").is_null()
    )
    return fill_from_reference(frame, normalise_iban)
