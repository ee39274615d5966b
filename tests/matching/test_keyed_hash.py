"""The batch keyed hash agrees with Python's hmac byte for byte; the pepper never shows."""

from __future__ import annotations

import hashlib
import hmac
import sys
from array import array

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError
from matching.keyed_hash import (
    KEY_BYTES,
    Pepper,
    hash_keys,
    hash_words,
    hmac_batch,
    join_key,
    key_bytes,
    key_words,
    keyed_hash,
)
from schemas.vocab import KeyKind

PEPPER = Pepper("t1", bytes(range(32)))


def test_reference_is_rfc2104_hmac_sha256_over_kind_and_value() -> None:
    digest = keyed_hash(PEPPER, KeyKind.PHONE, "+33612345678")
    expected = hmac.new(bytes(range(32)), b"phone:+33612345678", hashlib.sha256).digest()
    assert digest == expected
    assert len(join_key(digest)) == KEY_BYTES


@given(st.lists(st.one_of(st.none(), st.text(max_size=80)), max_size=50), st.sampled_from(KeyKind))
def test_batch_path_equals_reference(values: list[str | None], kind: KeyKind) -> None:
    keys = hash_keys(PEPPER, kind, pl.Series("v", values, dtype=pl.String))
    assert keys.schema == {"k1": pl.UInt64, "k2": pl.UInt64}
    for value, (k1, k2) in zip(values, keys.iter_rows(), strict=True):
        if value is None:
            assert k1 is None and k2 is None
        else:
            assert key_bytes(k1, k2) == keyed_hash(PEPPER, kind, value)[:KEY_BYTES]


@given(st.lists(st.text(max_size=80), max_size=50), st.sampled_from(KeyKind), st.booleans())
def test_buffer_path_equals_reference(values: list[str], kind: KeyKind, native: bool) -> None:
    # the native scanner's way in: raw Arrow-layout buffers, k1 words then k2 words
    module = sys.modules[hash_words.__module__]
    encoded = [v.encode() for v in values]
    offsets = array("q", [0])
    for v in encoded:
        offsets.append(offsets[-1] + len(v))
    with pytest.MonkeyPatch.context() as patch:
        if not native:
            patch.setattr(module, "_native", None)  # the pure-Python fallback
        words = array("Q", hash_words(PEPPER, kind, b"".join(encoded), offsets.tobytes()))
    n = len(values)
    assert len(words) == 2 * n
    for i, value in enumerate(values):
        assert key_bytes(words[i], words[n + i]) == keyed_hash(PEPPER, kind, value)[:KEY_BYTES]


def test_key_words_are_the_two_big_endian_halves() -> None:
    key = bytes(range(0xF0, 0x100))
    assert key_words(key) == (0xF0F1F2F3F4F5F6F7, 0xF8F9FAFBFCFDFEFF)
    assert key_bytes(*key_words(key)) == key
    # k1's top 16 bits are the key's first two bytes: the shard prefix.
    assert key_words(key)[0] >> 48 == int.from_bytes(key[:2], "big")
    with pytest.raises(ValueError, match="16 bytes"):
        key_words(key[:15])


@given(
    st.binary(min_size=KEY_BYTES, max_size=KEY_BYTES),
    st.binary(min_size=KEY_BYTES, max_size=KEY_BYTES),
)
def test_key_words_round_trip_and_keep_the_order(a: bytes, b: bytes) -> None:
    k1, k2 = key_words(a)
    assert 0 <= k1 < 2**64 and 0 <= k2 < 2**64
    assert key_bytes(k1, k2) == a
    assert (key_words(a) < key_words(b)) == (a < b)


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
