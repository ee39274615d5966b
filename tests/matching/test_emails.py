"""E-mail normalisation: examples and vectorised == reference."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching.emails import REASON_EMAIL_INVALID, normalise_email, normalise_emails


def vectorised(values: Sequence[str | None]) -> list[tuple[str | None, ...]]:
    frame = normalise_emails(pl.Series(list(values), dtype=pl.String))
    assert frame.columns == ["canonical", "reason"]
    assert frame.schema == pl.Schema({"canonical": pl.String, "reason": pl.String})
    assert frame.height == len(values)
    return list(frame.iter_rows())


def assert_same(values: Sequence[str | None]) -> None:
    assert vectorised(values) == [normalise_email(v) for v in values]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Jean.Dupont@Example.FR", "jean.dupont@example.fr"),
        ("  jean+promo@mail.example.com\t", "jean+promo@mail.example.com"),
        ("o'brien@sub-domain.example.co.uk", "o'brien@sub-domain.example.co.uk"),
        ("x@a.b", "x@a.b"),
        ("élodie@example.fr", "élodie@example.fr"),
        ("ÉLODIE@EXAMPLE.FR", "élodie@example.fr"),
        ("a" * 64 + "@example.fr", "a" * 64 + "@example.fr"),
    ],
)
def test_valid(value: str, expected: str) -> None:
    assert normalise_email(value) == (expected, None)
    assert vectorised([value]) == [(expected, None)]


@pytest.mark.parametrize(
    "value",
    [
        "jean.dupont",
        "jean@@example.fr",
        "jean@dupont@example.fr",
        "@example.fr",
        "jean@",
        "jean@localhost",
        "jean dupont@example.fr",
        "jean\x00@example.fr",
        "jean@exa mple.fr",
        "jean@example..fr",
        "jean@.example.fr",
        "jean@example.fr.",
        "jean@-example.fr",
        "jean@example-.fr",
        "jean@exämple.fr",
        "jean@example_fr.com",
        "a" * 65 + "@example.fr",
        "a@" + "b" * 250 + ".fr",
        "jean\u00a0x@example.fr",
    ],
)
def test_invalid(value: str) -> None:
    assert normalise_email(value) == (None, REASON_EMAIL_INVALID)
    assert vectorised([value]) == [(None, REASON_EMAIL_INVALID)]


@pytest.mark.parametrize("blank", [None, "", "   ", "\t\n", "\u3000"])
def test_blank(blank: str | None) -> None:
    assert normalise_email(blank) == (None, None)
    assert vectorised([blank]) == [(None, None)]


def test_mixed_frame_keeps_order() -> None:
    assert_same(["A@B.CO", None, "nope", "", "élodie@example.fr", " z@y.xx "])


_LOCAL = st.text(alphabet=st.characters(codec="ascii"), min_size=0, max_size=70)
_DOMAIN = st.from_regex(r"[A-Za-z0-9\-_.]{0,20}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.emails(), st.text(max_size=40)), max_size=20))
def test_vectorised_equals_reference(values: list[str | None]) -> None:
    assert_same(values)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(_LOCAL, _DOMAIN, st.sampled_from(["", " ", "\t", "\x1f", "\x0b"])), max_size=20
    )
)
def test_vectorised_equals_reference_on_address_shapes(parts: list[tuple[str, str, str]]) -> None:
    assert_same([pad + local + "@" + domain + pad for local, domain, pad in parts])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.emails(), max_size=20))
def test_normalising_a_canonical_value_gives_itself(values: list[str]) -> None:
    canonical = [c for c, _ in vectorised(values) if c is not None]
    assert [c for c, _ in vectorised(canonical)] == canonical
