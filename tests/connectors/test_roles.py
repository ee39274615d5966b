"""Column roles: header names (French and English), value shapes, overrides."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.roles import _iban_ok, detect_roles, header_category, parse_overrides
from core.errors import InputError
from schemas.vocab import Category

C = Category
HEADERS = {
    C.PHONE: [
        "Téléphone",
        "tel",
        "tél",
        "tel_mobile",
        "portable",
        "mobile",
        "msisdn",
        "gsm",
        "numero",
        "phone",
        "Phone Number",
    ],
    C.IBAN: ["iban", "rib", "rib_iban", "compte_bancaire", "bank_account", "IBAN"],
    C.BIC: ["bic", "swift"],
    C.EMAIL: ["email", "e-mail", "mail", "courriel", "adresse_mail", "E-Mail ", "email_pro"],
    C.NAME: [
        "nom",
        "prenom",
        "prénom",
        "nom complet",
        "full_name",
        "first_name",
        "last_name",
        "surname",
        "name",
        "civilite",
        "Civilité",
    ],
    C.POSTAL_ADDRESS: [
        "adresse",
        "address",
        "rue",
        "street",
        "code_postal",
        "cp",
        "zip",
        "postcode",
        "ville",
        "city",
    ],
    C.BIRTH_DATE: ["date_naissance", "ne_le", "né le", "dob", "birth_date", "birthdate"],
    C.BIRTH_PLACE: ["lieu_naissance", "birth_place"],
    C.PASSWORD: ["password", "mot_de_passe", "mdp", "pwd", "hash"],
    C.IP_ADDRESS: ["ip", "ip_address", "adresse_ip"],
    C.CUSTOMER_NUMBER: [
        "customer_id",
        "id_client",
        "num_client",
        "numero_client",
        "client_id",
        "account_id",
    ],
    C.CONTRACT: ["contrat", "contract", "offre", "abonnement", "forfait"],
    C.ID_DOCUMENT: ["cni", "passport", "piece_identite", "id_document", "pièce d'identité"],
}


@pytest.mark.parametrize(
    ("name", "category"), [(n, c) for c, names in HEADERS.items() for n in names]
)
def test_header_names(name: str, category: Category) -> None:
    assert header_category(name) == category


@pytest.mark.parametrize("name", ["col3", "field_a", "foo", "", "created"])
def test_meaningless_headers(name: str) -> None:
    assert header_category(name) is None


VALID_IBANS = ["FR1420041010050500013M02606", "DE89370400440532013000", "GB82WEST12345698765432"]


def _sample(**cols: Sequence[str | None]) -> pl.DataFrame:
    return pl.DataFrame({k: pl.Series(v, dtype=pl.String) for k, v in cols.items()})


def test_roles_from_values_with_meaningless_headers() -> None:
    n = 30
    sample = _sample(
        col1=[f"user{i}@example.com" for i in range(n)],
        col2=[f"06 12 34 56 {i:02d}" for i in range(n)],
        col3=[VALID_IBANS[i % 3] for i in range(n)],
        field_a=[f"{1950 + i}-03-{(i % 28) + 1:02d}" for i in range(n)],
        field_b=[f"10.0.0.{i}" for i in range(n)],
        field_c=[f"zz{i}" for i in range(n)],
        field_d=[None] * n,
    )
    got = {
        d.column: (d.category, d.source)
        for d in detect_roles(sample.columns, sample, has_header=True)
    }
    assert got == {
        "col1": (C.EMAIL, "values"),
        "col2": (C.PHONE, "values"),
        "col3": (C.IBAN, "values"),
        "field_a": (C.BIRTH_DATE, "values"),
        "field_b": (C.IP_ADDRESS, "values"),
        "field_c": (C.OTHER, "none"),
        "field_d": (None, "none"),
    }


def test_invalid_ibans_are_not_ibans() -> None:
    sample = _sample(col1=["FR1420041010050500013M02607"] * 10)  # mod-97 fails
    (d,) = detect_roles(["col1"], sample, has_header=False)
    assert d.category is not C.IBAN


@given(
    st.from_regex(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", fullmatch=True)
    | st.sampled_from(["FR1420041010050500013M02607", "FR76 3000 6000 0112 3456 7890 189"])
)
def test_iban_check_agrees_with_digit_by_digit(value: str) -> None:
    v = value.replace(" ", "")
    digits = "".join(str(int(ch, 36)) for ch in v[4:] + v[:4])
    assert _iban_ok(value) == (int(digits) % 97 == 1)


def test_header_wins_unless_values_contradict() -> None:
    emails = [f"u{i}@example.com" for i in range(20)]
    sample = _sample(
        telephone=emails,  # header says phone, values are all e-mails: values win
        nom=["Martin"] * 20,
        customer_id=[f"06{i:08d}" for i in range(20)],  # phone-shaped ids: header kept
        email=emails[:12] + ["?"] * 8,
    )
    got = {
        d.column: (d.category, d.source, d.confidence)
        for d in detect_roles(sample.columns, sample, has_header=True)
    }
    assert got["telephone"] == (C.EMAIL, "values", 1.0)
    assert got["nom"] == (C.NAME, "header", 1.0)
    assert got["customer_id"] == (C.CUSTOMER_NUMBER, "header", 1.0)
    assert got["email"] == (C.EMAIL, "header", 1.0)


def test_no_header_ignores_names() -> None:
    sample = _sample(col1=["x"] * 5)
    (d,) = detect_roles(["col1"], sample, has_header=False)
    assert d.category is C.OTHER


def test_overrides_beat_everything() -> None:
    sample = _sample(email=["a@b.fr"] * 5, col2=["x"] * 5, Tel=["0612345678"] * 5)
    overrides = parse_overrides(["col2=iban", "email=ignore", "tel=password"])
    got = {
        d.column: (d.category, d.source)
        for d in detect_roles(sample.columns, sample, has_header=True, overrides=overrides)
    }
    assert got == {
        "email": (None, "override"),
        "col2": (C.IBAN, "override"),
        "Tel": (C.PASSWORD, "override"),
    }


@pytest.mark.parametrize("item", ["col2", "col2=", "=iban", "col2=banana"])
def test_bad_overrides(item: str) -> None:
    with pytest.raises(InputError):
        parse_overrides([item])


def test_override_of_unknown_column() -> None:
    with pytest.raises(InputError, match="column"):
        detect_roles(["a"], _sample(a=["x"]), has_header=True, overrides={"b": "email"})
