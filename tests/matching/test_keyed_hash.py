"""The batch keyed hash agrees with Python's hmac byte for byte; the pepper never shows."""

from __future__ import annotations

import hashlib
import hmac

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError
from matching.keyed_hash import KEY_BYTES, Pepper, hash_keys, hmac_batch, join_key, keyed_hash
from schemas.vocab import KeyKind

PEPPER = Pepper("t1", bytes(range(32)))


def test_reference_is_rfc2104_hmac_sha256_over_kind_and_value() -> None:
    digest = keyed_hash(PEPPER, KeyKind.PHONE, "+33612345678")
    expected = hmac.new(bytes(range(32)), b"phone:+33612345678", hashlib.sha256).digest()
    assert digest == expected
    assert len(join_key(digest)) == KEY_BYTES


@given(st.lists(st.one_of(st.none(), st.text(max_size=80)), max_size=50), st.sampled_from(KeyKind))
def test_batch_path_equals_reference(values: list[str | None], kind: KeyKind) -> None:
    keys = hash_keys(PEPPER, kind, pl.Series("v", values, dtype=pl.String)).to_list()
    for value, key in zip(values, keys, strict=True):
        if value is None:
            assert key is None
        else:
            assert key == keyed_hash(PEPPER, kind, value)[:KEY_BYTES]


def test_long_secrets_are_hashed_first_as_rfc2104_says() -> None:
    pepper = Pepper("long", bytes(range(100)))
    got = hmac_batch(pepper, b"email:", pl.Series(["a@b.fr"])).item()
    assert got == hmac.new(bytes(range(100)), b"email:a@b.fr", hashlib.sha256).digest()[:16]


def test_kinds_are_separated() -> None:
    value = "123456789"
    assert keyed_hash(PEPPER, KeyKind.PHONE, value) != keyed_hash(PEPPER, KeyKind.IBAN, value)


def test_pepper_never_printed() -> None:
    pepper = Pepper.generate("k9")
    assert pepper.secret.hex() not in repr(pepper)
    assert pepper.secret.hex() not in str(pepper)


def test_pepper_from_hex_and_base64() -> None:
    import base64

    secret = bytes(range(32))
    assert Pepper.from_text(secret.hex(), "a").secret == secret
    assert Pepper.from_text(base64.b64encode(secret).decode(), "a").secret == secret


@pytest.mark.parametrize("text", ["", "zz" * 32, "c2hvcnQ="])
def test_bad_peppers_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        Pepper.from_text(text, "a")
    if text:
        assert text not in str(info.value)
