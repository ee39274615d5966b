"""The synthetic leak: shape, determinism, and a truth that an independent oracle agrees with."""

from __future__ import annotations

import time

import phonenumbers
import polars as pl
import pytest
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from schemas.vocab import Category
from synthetic import (
    COLUMN_CATEGORIES,
    LEAK_COLUMNS,
    OVERSEAS_CALLING_CODES,
    Leak,
    make_customers,
    make_leak,
)

_OVERSEAS_REGION = {"262": "RE", "590": "GP", "594": "GF", "596": "MQ"}


def _phone(value: str | None) -> str | None:
    """E.164 by phonenumbers, national overseas prefixes read in their own region."""
    if value is None or not value.strip():
        return None
    compact = "".join(c for c in value if c.isdigit() or c == "+")
    code = OVERSEAS_CALLING_CODES.get(compact[1:4]) if compact.startswith("0") else None
    region = "FR" if code is None else _OVERSEAS_REGION[code]
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _iban(value: str | None) -> str | None:
    if value is None:
        return None
    compact = value.replace(" ", "").replace("-", "").upper()
    try:
        return str(IBAN(compact, validate_bban=True).compact)
    except SchwiftyException:
        return None


def _email(value: str | None) -> str | None:
    if value is None:
        return None
    canonical = value.strip().lower()
    return canonical if "@" in canonical else None


def _oracle(customers: pl.DataFrame, frame: pl.DataFrame) -> pl.DataFrame:
    """Exposures recomputed from the leaked values alone, with phonenumbers and schwifty."""
    owners: dict[tuple[str, str], str] = {}
    for row in customers.iter_rows(named=True):
        for kind, canonical in (
            ("email", _email(row["email"])),
            ("phone", _phone(row["phone"])),
            ("iban", _iban(row["iban"])),
        ):
            if canonical is not None:
                owners[(kind, canonical)] = row["customer_id"]
    matched: dict[str, set[str]] = {}
    categories: dict[str, set[str]] = {}
    for row in frame.iter_rows(named=True):
        hits = {
            kind: owners.get((kind, canonical))
            for kind, canonical in (
                ("email", _email(row["email"])),
                ("phone", _phone(row["telephone"])),
                ("iban", _iban(row["iban"])),
            )
            if canonical is not None
        }
        found = {kind: cid for kind, cid in hits.items() if cid is not None}
        if not found:
            continue
        assert len(set(found.values())) == 1, "one leaked row must point at one customer"
        customer = next(iter(found.values()))
        matched.setdefault(customer, set()).update(found)
        present = {COLUMN_CATEGORIES[c].value for c in LEAK_COLUMNS if (row[c] or "").strip() != ""}
        categories.setdefault(customer, set()).update(present)
    return pl.DataFrame(
        {
            "customer_id": sorted(matched),
            "matched_on": [";".join(sorted(matched[c])) for c in sorted(matched)],
            "categories": [";".join(sorted(categories[c])) for c in sorted(matched)],
        },
        schema={"customer_id": pl.String, "matched_on": pl.String, "categories": pl.String},
    )


@pytest.fixture(scope="module")
def customers() -> pl.DataFrame:
    return make_customers(4_000, seed=11)


@pytest.fixture(scope="module")
def leak(customers: pl.DataFrame) -> Leak:
    return make_leak(customers, 3_000, overlap=0.4, seed=11)


def test_frame_is_an_all_string_operator_dump(leak: Leak) -> None:
    assert leak.frame.columns == list(LEAK_COLUMNS)
    assert all(dtype == pl.String for dtype in leak.frame.dtypes)
    assert leak.frame.height == 3_000
    assert leak.truth.columns == ["customer_id", "matched_on", "categories"]


def test_same_seed_same_leak(customers: pl.DataFrame) -> None:
    a, b = make_leak(customers, 500, seed=2), make_leak(customers, 500, seed=2)
    assert a.frame.equals(b.frame)
    assert a.truth.equals(b.truth)
    assert not make_leak(customers, 500, seed=3).frame.equals(a.frame)


def test_truth_matches_an_independent_oracle(customers: pl.DataFrame, leak: Leak) -> None:
    assert leak.truth.equals(_oracle(customers, leak.frame))


def test_clean_leak_truth_matches_the_oracle_too(customers: pl.DataFrame) -> None:
    clean = make_leak(customers, 1_000, overlap=0.5, seed=5, messy=False)
    assert clean.truth.equals(_oracle(customers, clean.frame))
    customer_rows = clean.frame.filter(pl.col("id_client").str.starts_with("C"))
    assert clean.truth.height == customer_rows["id_client"].n_unique()


def test_truth_vocabulary_and_sorting(leak: Leak) -> None:
    assert leak.truth.height > 0
    assert leak.truth["customer_id"].is_sorted()
    assert leak.truth["customer_id"].n_unique() == leak.truth.height
    categories = {c.value for c in Category}
    for matched_on, cats in leak.truth.select("matched_on", "categories").iter_rows():
        kinds = matched_on.split(";")
        assert kinds == sorted(kinds)
        assert set(kinds) <= {"email", "iban", "phone"}
        assert set(kinds) <= set(cats.split(";"))
        assert cats.split(";") == sorted(cats.split(";"))
        assert set(cats.split(";")) <= categories


def test_the_leak_is_messy(leak: Leak) -> None:
    phones = leak.frame["telephone"].drop_nulls()
    for needle in (" ", ".", "+33 (0)", "0033", "+262"):
        assert phones.str.contains(needle, literal=True).any(), needle
    assert phones.str.contains(r"^[1-9]\d{8}$").any()  # leading zero lost
    assert phones.str.contains(r"^0\d{8}$").any()  # a digit removed
    ibans = leak.frame["iban"].drop_nulls()
    assert ibans.str.contains("-", literal=True).any()
    assert ibans.str.contains("^fr").any()
    emails = leak.frame["email"].drop_nulls()
    assert emails.str.contains("^ ").any()
    assert (~emails.str.contains("@", literal=True) & (emails.str.strip_chars() != "")).any()
    for column in LEAK_COLUMNS:
        assert leak.frame[column].null_count() > 0
        assert (leak.frame[column] == "").any()


def test_strangers_never_hold_a_customer_identifier(customers: pl.DataFrame, leak: Leak) -> None:
    strangers = leak.frame.filter(pl.col("id_client").str.starts_with("EXT"))
    assert strangers.height > 1_500
    taken = {_phone(p) for p in customers["phone"].drop_nulls()}
    assert not ({_phone(p) for p in strangers["telephone"]} - {None}) & taken
    taken = {_iban(i) for i in customers["iban"].drop_nulls()}
    assert not ({_iban(i) for i in strangers["iban"]} - {None}) & taken


def test_some_customers_leak_twice(leak: Leak) -> None:
    ids = leak.frame["id_client"].drop_nulls().filter(leak.frame["id_client"].drop_nulls() != "")
    counts = ids.filter(ids.str.starts_with("C")).value_counts()
    assert counts["count"].max() == 2


def test_generation_speed_200k(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    customers = make_customers(200_000, seed=1)
    made = time.perf_counter()
    leak = make_leak(customers, 200_000, seed=1)
    done = time.perf_counter()
    with capsys.disabled():
        print(
            f"\n200k customers {made - start:.2f}s, 200k leaked rows {done - made:.2f}s "
            f"({leak.truth.height} exposed)"
        )
    assert leak.frame.height == 200_000
