"""Dispatch by key kind."""

from __future__ import annotations

import polars as pl
import pytest

from matching.emails import normalise_emails
from matching.ibans import normalise_ibans
from matching.identity import normalise
from matching.phones import normalise_phones
from schemas.vocab import KeyKind

VALUES = pl.Series(
    ["06 12 34 56 78", "FR76 3000 4000 0012 3456 7890 188", "A@B.FR", None, "", "nonsense"]
)


@pytest.mark.parametrize(
    ("kind", "direct"),
    [
        (KeyKind.PHONE, normalise_phones),
        (KeyKind.IBAN, normalise_ibans),
        (KeyKind.EMAIL, normalise_emails),
    ],
)
def test_dispatch_matches_the_kind_function(kind: KeyKind, direct: object) -> None:
    assert callable(direct)
    assert normalise(kind, VALUES).equals(direct(VALUES))


def test_dispatch_accepts_the_string_value() -> None:
    assert normalise(KeyKind("email"), VALUES).get_column("canonical").to_list()[2] == "a@b.fr"


def test_default_region_reaches_phones() -> None:
    frame = normalise(KeyKind.PHONE, pl.Series(["02 555 12 12"]), default_region="BE")
    assert frame.get_column("canonical").to_list() == ["+3225551212"]


def test_empty_series() -> None:
    for kind in KeyKind:
        frame = normalise(kind, pl.Series([], dtype=pl.String))
        assert frame.schema == pl.Schema({"canonical": pl.String, "reason": pl.String})
        assert frame.height == 0
