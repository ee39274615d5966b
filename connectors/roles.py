"""Which data category each column holds: from overrides, header names, then sampled values."""

from __future__ import annotations

import ipaddress
import itertools
import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import polars as pl

from core.errors import InputError
from schemas.vocab import Category

__all__ = [
    "VALUE_THRESHOLD",
    "RoleDecision",
    "detect_roles",
    "header_category",
    "normalise_header",
    "parse_overrides",
    "value_shares",
]

VALUE_THRESHOLD = 0.6  # share of sampled values that must fit a shape for values to decide
CONTRADICTION = 0.9  # values overrule a header only when this share fits another kind...
HEADER_MISFIT = 0.1  # ...and (for kinds we can check) under this share fits the header's kind
SAMPLE_VALUES = 2000
IGNORE = "ignore"

_C = Category
# Normalised header names (accents, case and punctuation folded to "_"), per category.
_HEADERS: dict[Category, tuple[str, ...]] = {
    _C.EMAIL: (
        "email",
        "e_mail",
        "mail",
        "courriel",
        "adresse_mail",
        "adresse_email",
        "email_address",
        "mail_address",
        "adresse_e_mail",
    ),
    _C.IBAN: ("iban", "rib", "rib_iban", "compte_bancaire", "bank_account", "numero_iban"),
    _C.CUSTOMER_NUMBER: (
        "customer_id",
        "id_client",
        "num_client",
        "numero_client",
        "client_id",
        "account_id",
        "customer_number",
        "no_client",
        "ref_client",
    ),
    _C.IP_ADDRESS: ("ip", "ip_address", "adresse_ip", "ip_addr", "ipv4", "ipv6"),
    _C.BIRTH_DATE: (
        "date_naissance",
        "date_de_naissance",
        "ne_le",
        "nee_le",
        "dob",
        "birth_date",
        "birthdate",
        "date_of_birth",
        "birthday",
    ),
    _C.BIRTH_PLACE: (
        "lieu_naissance",
        "lieu_de_naissance",
        "birth_place",
        "birthplace",
        "place_of_birth",
    ),
    _C.PASSWORD: ("password", "mot_de_passe", "mdp", "pwd", "hash", "passwd", "password_hash"),
    _C.PHONE: (
        "telephone",
        "tel",
        "tel_mobile",
        "portable",
        "mobile",
        "msisdn",
        "gsm",
        "numero",
        "phone",
        "phone_number",
        "num_tel",
        "numero_telephone",
        "tel_fixe",
        "cellphone",
    ),
    _C.BIC: ("bic", "swift", "bic_swift", "code_bic"),
    _C.ID_DOCUMENT: (
        "cni",
        "passport",
        "passeport",
        "piece_identite",
        "piece_d_identite",
        "id_document",
        "numero_cni",
        "carte_identite",
    ),
    _C.CONTRACT: ("contrat", "contract", "offre", "abonnement", "forfait", "plan", "subscription"),
    _C.POSTAL_ADDRESS: (
        "adresse",
        "address",
        "rue",
        "street",
        "code_postal",
        "cp",
        "zip",
        "postcode",
        "zip_code",
        "postal_code",
        "ville",
        "city",
        "commune",
    ),
    _C.NAME: (
        "nom",
        "prenom",
        "nom_complet",
        "full_name",
        "first_name",
        "last_name",
        "surname",
        "name",
        "civilite",
        "firstname",
        "lastname",
        "nom_de_famille",
        "fullname",
    ),
}
_EXACT: dict[str, Category] = {h: c for c, names in _HEADERS.items() for h in names}
# For compound names ("email_pro", "phone_number_2"), the most specific category wins.
_TOKEN_ORDER = tuple(_HEADERS)

_EMAIL = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
_PHONE = r"^(?:\+|00)\d{8,15}$|^0\d{9}$"
_PHONE_STRIP = r"[\s.\-()/]"
_IBAN_SHAPE = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$")
_DATE = r"^(?:(\d{4})[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](\d{4}))$"
_IPV4 = r"^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$"

# Value kinds we can recognise, the category they give, and whether their shape is distinctive
# enough to overrule a header naming another category (phone shapes collide with numeric ids).
_VALUE_CATEGORY: dict[str, Category] = {
    "email": _C.EMAIL,
    "iban": _C.IBAN,
    "phone": _C.PHONE,
    "ip": _C.IP_ADDRESS,
    "birth_date": _C.BIRTH_DATE,
}
_DISTINCTIVE = {"email", "iban", "ip"}


@dataclass(frozen=True)
class RoleDecision:
    """The category decided for one column, where the decision came from and how sure it is."""

    column: str
    category: Category | None  # None = ignored
    source: Literal["override", "header", "values", "none"]
    confidence: float  # share of sampled non-empty values that fit, or 1.0 for header/override


def normalise_header(name: str) -> str:
    """Lower case, accents removed, every run of punctuation or spaces turned into one '_'."""
    text = unicodedata.normalize("NFKD", name.replace("\ufeff", ""))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def header_category(name: str) -> Category | None:
    """The category a header name announces, or None when it announces none we know."""
    norm = normalise_header(name)
    if not norm:
        return None
    if norm in _EXACT:
        return _EXACT[norm]
    stripped = re.sub(r"_?\d+$", "", norm)  # "email_2", "tel1"
    if stripped in _EXACT:
        return _EXACT[stripped]
    tokens = norm.split("_")
    grams = set(tokens) | {f"{a}_{b}" for a, b in itertools.pairwise(tokens)}
    found = {_EXACT[g] for g in grams if g in _EXACT}
    for category in _TOKEN_ORDER:
        if category in found:
            return category
    return None


_LETTER_DIGITS = {ord(ch): str(int(ch, 36)) for ch in string.ascii_uppercase}  # A=10 ... Z=35


def _iban_ok(value: str) -> bool:
    v = value.replace(" ", "").upper()
    if not _IBAN_SHAPE.match(v):
        return False
    return int((v[4:] + v[:4]).translate(_LETTER_DIGITS)) % 97 == 1


def _ip_ok(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def value_shares(values: pl.Series) -> dict[str, float]:
    """Share of non-empty sampled values fitting each value kind (cheap shape checks only)."""
    s = values.cast(pl.String).drop_nulls().str.strip_chars()
    s = s.filter(s != "").head(SAMPLE_VALUES)
    if s.len() == 0:
        return {}
    n = s.len()
    compact = s.str.replace_all(_PHONE_STRIP, "")
    shares = {
        "email": float(s.str.contains(_EMAIL).sum()) / n,
        "phone": float(compact.str.contains(_PHONE).sum()) / n,
    }
    maybe_iban = s.str.replace_all(" ", "").str.to_uppercase()
    candidates = maybe_iban.filter(maybe_iban.str.contains(_IBAN_SHAPE.pattern))
    shares["iban"] = sum(_iban_ok(v) for v in candidates.to_list()) / n
    v4 = s.str.contains(_IPV4)
    v6 = s.filter(~v4 & s.str.contains(":")).to_list()
    shares["ip"] = (float(v4.sum()) + sum(_ip_ok(v) for v in v6)) / n
    # A birth date: a date without time whose year is plausible for a living adult.
    years = s.str.extract_groups(_DATE)
    year = years.struct.field("1").fill_null(years.struct.field("2")).cast(pl.Int32, strict=False)
    this_year = datetime.now(UTC).year
    shares["birth_date"] = float(year.is_between(1900, this_year - 10).sum()) / n
    return shares


def _from_values(shares: Mapping[str, float]) -> tuple[str, float] | None:
    if not shares:
        return None
    kind, share = max(shares.items(), key=lambda kv: kv[1])
    return (kind, share) if share >= VALUE_THRESHOLD else None


def _resolve_override(columns: Sequence[str], key: str) -> str:
    if key in columns:
        return key
    norm = normalise_header(key)
    matches = [c for c in columns if normalise_header(c) == norm]
    if len(matches) != 1:
        raise InputError("--map names a column the file does not have", column=key)
    return matches[0]


def detect_roles(
    columns: Sequence[str],
    sample: pl.DataFrame,
    *,
    has_header: bool,
    overrides: Mapping[str, str] | None = None,
) -> list[RoleDecision]:
    """Decide each column's category.

    Order: an override wins; else a header name we know wins, unless the values clearly
    contradict it (≥ 0.9 of them fit a distinctive other kind — e-mail, IBAN, IP — and, when the
    header's own kind can be checked, < 0.1 fit it); else values decide when ≥ 0.6 fit one kind;
    else ``other`` if the column has values, ``None`` if it is empty.
    """
    forced: dict[str, str] = {}
    for key, kind in (overrides or {}).items():
        forced[_resolve_override(columns, key)] = kind
    decisions: list[RoleDecision] = []
    for column in columns:
        if column in forced:
            kind = forced[column]
            category = None if kind == IGNORE else Category(kind)
            decisions.append(RoleDecision(column, category, "override", 1.0))
            continue
        values = (
            sample.get_column(column)
            if column in sample.columns
            else pl.Series([], dtype=pl.String)
        )
        shares = value_shares(values)
        by_values = _from_values(shares)
        named = header_category(column) if has_header else None
        if named is not None:
            own = next((k for k, c in _VALUE_CATEGORY.items() if c == named), None)
            contradicted = (
                by_values is not None
                and by_values[0] in _DISTINCTIVE
                and _VALUE_CATEGORY[by_values[0]] != named
                and by_values[1] >= CONTRADICTION
                and (own is None or shares.get(own, 0.0) < HEADER_MISFIT)
            )
            if not contradicted:
                decisions.append(RoleDecision(column, named, "header", 1.0))
                continue
        if by_values is not None:
            kind, share = by_values
            decisions.append(RoleDecision(column, _VALUE_CATEGORY[kind], "values", share))
        elif shares:
            decisions.append(RoleDecision(column, Category.OTHER, "none", 0.0))
        else:
            decisions.append(RoleDecision(column, None, "none", 0.0))
    return decisions


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """``COLUMN=KIND`` strings (from ``--map``) -> {column: kind}; KIND a category or 'ignore'."""
    allowed = {c.value for c in Category} | {IGNORE}
    out: dict[str, str] = {}
    for item in items:
        column, sep, kind = item.partition("=")
        column, kind = column.strip(), kind.strip().lower()
        if not sep or not column or not kind:
            raise InputError(f"--map expects COLUMN=KIND, got {item!r}")
        if kind not in allowed:
            raise InputError(
                f"--map {column}: unknown kind {kind!r}; use one of {', '.join(sorted(allowed))}",
                column=column,
            )
        if column in out:
            raise InputError("--map names this column twice", column=column)
        out[column] = kind
    return out
