"""The synthetic customer file: shape, determinism, unique and valid identifiers."""

from __future__ import annotations

import phonenumbers
import polars as pl
import pytest
from schwifty import IBAN

from synthetic import CUSTOMER_COLUMNS, OVERSEAS_CALLING_CODES, make_customers

_REGION_OF_CODE = {"262": ("RE", "YT"), "590": ("GP",), "594": ("GF",), "596": ("MQ",)}


@pytest.fixture(scope="module")
def customers() -> pl.DataFrame:
    return make_customers(5_000, seed=7)


def test_columns_are_the_customer_file_all_strings(customers: pl.DataFrame) -> None:
    assert customers.columns == list(CUSTOMER_COLUMNS)
    assert all(dtype == pl.String for dtype in customers.dtypes)
    assert customers.height == 5_000


def test_same_seed_same_file_other_seed_other_file() -> None:
    assert make_customers(300, seed=3).equals(make_customers(300, seed=3))
    assert not make_customers(300, seed=3).equals(make_customers(300, seed=4))


def test_identifiers_are_unique_by_canonical_form(customers: pl.DataFrame) -> None:
    canonical = customers.select(
        "customer_id",
        email=pl.col("email").str.strip_chars().str.to_lowercase(),
        phone="phone",
        iban=pl.col("iban").str.replace_all(" ", "").str.to_uppercase(),
    )
    for column in canonical.columns:
        values = canonical[column].drop_nulls()
        assert values.n_unique() == values.len(), column


def test_every_iban_is_valid_including_the_national_check(customers: pl.DataFrame) -> None:
    ibans = customers["iban"].drop_nulls().to_list()
    for value in ibans:
        IBAN(value, validate_bban=True)
    countries = {v[:2] for v in ibans}
    assert countries == {"FR", "DE", "ES", "IT", "BE"}
    assert sum(v.startswith("FR") for v in ibans) / len(ibans) > 0.85
    assert 0.65 < len(ibans) / customers.height < 0.75


def _region(national: str) -> str:
    code = OVERSEAS_CALLING_CODES.get(national[1:4])
    return "FR" if code is None else _REGION_OF_CODE[code][0]


def test_every_phone_is_a_valid_french_or_overseas_number(customers: pl.DataFrame) -> None:
    phones = customers["phone"].drop_nulls().to_list()
    kinds = {"mobile": 0, "overseas": 0, "landline": 0}
    for national in phones:
        assert len(national) == 10
        assert national.isdigit()
        number = phonenumbers.parse(national, _region(national))
        assert phonenumbers.is_valid_number(number), national
        if national[1:4] in OVERSEAS_CALLING_CODES:
            assert (
                phonenumbers.region_code_for_number(number)
                in _REGION_OF_CODE[str(number.country_code)]
            )
            kinds["overseas"] += 1
        elif national[1] in "67":
            kinds["mobile"] += 1
        else:
            kinds["landline"] += 1
    share = {k: v / len(phones) for k, v in kinds.items()}
    assert share["mobile"] > 0.8
    assert 0.01 < share["overseas"] < 0.06
    assert 0.06 < share["landline"] < 0.15


def test_proportions_and_vocabulary(customers: pl.DataFrame) -> None:
    n = customers.height
    assert set(customers["language"]) == {"fr", "en"}
    assert 0.85 < (customers["language"] == "fr").sum() / n < 0.95
    assert set(customers["status"]) == {"active", "former"}
    assert 0.8 < (customers["status"] == "active").sum() / n < 0.9
    assert 0.93 < customers["email"].is_not_null().sum() / n < 0.97
    assert customers["phone"].null_count() > 0
    former = customers.filter(pl.col("status") == "former")
    assert former["contract_end"].null_count() == 0
    assert former["contract_end"].str.to_date("%Y-%m-%d").max() is not None


def test_text_fits_cp1252_and_latin1(customers: pl.DataFrame) -> None:
    text = customers.write_csv()
    text.encode("cp1252")
    text.encode("latin-1")
