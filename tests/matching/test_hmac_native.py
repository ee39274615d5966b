"""The C keyed-hash path (SHA-NI and portable) agrees with Python's hmac byte for byte."""

from __future__ import annotations

import hashlib
import hmac
import random
import sys

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching.keyed_hash import (
    KEY_BYTES,
    Pepper,
    _hmac_batch_native,
    _hmac_batch_python,
    _hmac_words_native,
    _words_frame,
    hash_keys,
    hmac_batch,
    key_bytes,
)
from schemas.vocab import KeyKind

native = pytest.importorskip(
    "matching._hmac", reason="C extension not built (pip install --no-deps -e .)"
)

PEPPER = Pepper("t1", bytes(range(32)))

PATHS = [
    pytest.param(
        False,
        id="sha-ni",
        marks=pytest.mark.skipif(
            not native.sha_ni_available(), reason="this CPU has no SHA extensions"
        ),
    ),
    pytest.param(True, id="portable"),
]

# Prefix lengths around the block size: the prefix tail plus the value cross 0, 1 or 2
# block boundaries, and prefixes of 64 bytes and more are absorbed into the inner state.
PREFIXES = [
    b"",
    b"phone:",
    b"p" * 47,
    b"q" * 55,
    b"r" * 56,
    b"s" * 63,
    b"t" * 64,
    b"u" * 70,
    b"v" * 130,
]


def expected(secret: bytes, prefix: bytes, values: list[str | None]) -> list[bytes | None]:
    return [
        None
        if v is None
        else hmac.new(secret, prefix + v.encode(), hashlib.sha256).digest()[:KEY_BYTES]
        for v in values
    ]


def run(
    values: pl.Series,
    *,
    portable: bool,
    prefix: bytes = b"phone:",
    pepper: Pepper = PEPPER,
    threads: int = 1,
) -> list[bytes | None]:
    out = _hmac_batch_native(pepper, prefix, values, threads=threads, portable=portable)
    assert out.dtype == pl.Binary
    assert out.name == values.name
    return out.to_list()


@pytest.mark.parametrize("portable", PATHS)
@pytest.mark.parametrize("prefix", PREFIXES, ids=lambda p: f"prefix{len(p)}")
def test_every_length_up_to_200_crossing_block_boundaries(portable: bool, prefix: bytes) -> None:
    values = ["".join(chr(0x61 + (i * 7 + j) % 26) for j in range(i)) for i in range(201)]
    got = run(pl.Series("v", values), portable=portable, prefix=prefix)
    assert got == expected(PEPPER.secret, prefix, values)


@pytest.mark.parametrize("portable", PATHS)
def test_empty_non_ascii_and_nulls(portable: bool) -> None:
    values = ["", None, "é", "Ελλάδα", "测试@例子.公司", "🙂" * 20, None, "", "+33612345678", None]
    got = run(pl.Series("id", values), portable=portable)
    assert got == expected(PEPPER.secret, b"phone:", values)


@pytest.mark.parametrize("portable", PATHS)
@pytest.mark.parametrize("secret_len", [32, 63, 64, 65, 100, 200])
def test_long_peppers_are_hashed_first_as_rfc2104_says(portable: bool, secret_len: int) -> None:
    pepper = Pepper("long", bytes((i * 31 + 7) % 256 for i in range(secret_len)))
    values = ["a@b.fr", "", "x" * 100]
    got = run(pl.Series("v", values), portable=portable, prefix=b"email:", pepper=pepper)
    assert got == expected(pepper.secret, b"email:", values)


@pytest.mark.parametrize("portable", PATHS)
@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.text(max_size=150)), max_size=40),
    prefix=st.binary(max_size=80),
)
def test_random_text_equals_reference(
    portable: bool, values: list[str | None], prefix: bytes
) -> None:
    got = run(pl.Series("v", values, dtype=pl.String), portable=portable, prefix=prefix)
    assert got == expected(PEPPER.secret, prefix, values)


def mixed_values(n: int, seed: int) -> list[str | None]:
    rng = random.Random(seed)
    out: list[str | None] = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.05:
            out.append(None)
        elif roll < 0.6:
            out.append(f"+336{rng.randrange(10**8):08d}")
        elif roll < 0.9:
            out.append(f"prenom{rng.randrange(10**4)}.nom@domaine.fr")
        else:
            out.append("x" * rng.randrange(200))
    return out


@pytest.mark.parametrize("portable", PATHS)
def test_threads_split_the_work_without_changing_it(portable: bool) -> None:
    values = mixed_values(70_000, seed=3)  # above the per-thread minimum, so threads really run
    series = pl.Series("v", values)
    one = run(series, portable=portable, threads=1)
    assert run(series, portable=portable, threads=2) == one
    assert run(series, portable=portable, threads=3) == one
    assert one == expected(PEPPER.secret, b"phone:", values)


def test_sha_ni_and_portable_agree() -> None:
    series = pl.Series("v", mixed_values(5_000, seed=4))
    assert run(series, portable=False) == run(series, portable=True)


@pytest.mark.parametrize("portable", PATHS)
def test_sliced_and_chunked_series(portable: bool) -> None:
    values = mixed_values(300, seed=5)
    series = pl.Series("v", values)
    assert run(series[13:211], portable=portable) == expected(
        PEPPER.secret, b"phone:", values[13:211]
    )
    chunked = pl.concat(
        [pl.Series("v", values[:100]), pl.Series("v", values[100:]).slice(5)], rechunk=False
    )
    assert chunked.n_chunks() == 2
    assert run(chunked, portable=portable) == expected(
        PEPPER.secret, b"phone:", values[:100] + values[105:]
    )


@pytest.mark.parametrize("portable", PATHS)
@pytest.mark.parametrize("start", [1, 8, 13])
def test_arrow_offsets_not_starting_at_zero(portable: bool, start: int) -> None:
    # polars hands over arrays starting at 0; the extension must also honour a sliced Arrow
    # array (offsets into the middle of the data, validity bits not byte aligned).
    values = mixed_values(80, seed=start)
    array = pa.array(values, pa.large_string()).slice(start, 50)
    validity, offsets, data = array.buffers()
    got = native.hmac_sha256_trunc16(
        PEPPER.secret,
        b"phone:",
        data,
        offsets.slice(array.offset * 8),
        validity,
        array.offset,
        len(array),
        1,
        portable,
    )
    want = expected(PEPPER.secret, b"phone:", values[start : start + 50])
    assert [got[16 * i : 16 * i + 16] for i in range(50)] == [
        w if w is not None else bytes(16) for w in want
    ]


def test_bad_offsets_are_refused_not_read() -> None:
    data = b"abcdef"
    with pytest.raises(ValueError, match="offsets"):
        native.hmac_sha256_trunc16(
            b"k" * 32, b"", data, pa.array([0, 4, 2], pa.int64()).buffers()[1], None, 0, 2
        )
    with pytest.raises(ValueError, match="offsets"):
        native.hmac_sha256_trunc16(
            b"k" * 32, b"", data, pa.array([0, 99], pa.int64()).buffers()[1], None, 0, 1
        )
    with pytest.raises(ValueError, match="n \\+ 1"):
        native.hmac_sha256_trunc16(
            b"k" * 32, b"", data, pa.array([0, 1], pa.int64()).buffers()[1], None, 0, 2
        )


def test_public_batch_path_uses_the_extension_and_matches_the_python_path() -> None:
    values = pl.Series("canonical", mixed_values(2_000, seed=6))
    fast = hmac_batch(PEPPER, b"email:", values)
    assert fast.name == "canonical"
    assert fast.null_count() == values.null_count()
    assert fast.to_list() == _hmac_batch_python(PEPPER, b"email:", values).to_list()
    words = hash_keys(PEPPER, KeyKind.EMAIL, values)
    assert words["k1"].null_count() == words["k2"].null_count() == values.null_count()
    assert [None if k1 is None else key_bytes(k1, k2) for k1, k2 in words.iter_rows()] == (
        fast.to_list()
    )


@pytest.mark.parametrize("portable", PATHS)
@pytest.mark.parametrize("threads", [1, 2])
def test_words_equal_the_reference_bytes(portable: bool, threads: int) -> None:
    # More than MIN_PER_THREAD values per thread, so two threads really split the batch.
    values = pl.Series("v", mixed_values(40_000, seed=9))
    words = _hmac_words_native(PEPPER, b"phone:", values, threads=threads, portable=portable)
    assert words.schema == {"k1": pl.UInt64, "k2": pl.UInt64}
    got = [None if k1 is None else key_bytes(k1, k2) for k1, k2 in words.iter_rows()]
    assert got == expected(PEPPER.secret, b"phone:", values.to_list())


def test_python_fallback_gives_the_same_words() -> None:
    values = pl.Series("v", mixed_values(500, seed=4))
    fallback = _words_frame(_hmac_batch_python(PEPPER, b"email:", values))
    assert fallback.equals(hash_keys(PEPPER, KeyKind.EMAIL, values))


def test_words_of_a_sliced_array_and_bad_offsets() -> None:
    values = mixed_values(80, seed=3)
    array = pa.array(values, pa.large_string()).slice(13, 50)
    validity, offsets, data = array.buffers()
    out = native.hmac_sha256_words(
        PEPPER.secret, b"iban:", data, offsets.slice(13 * 8), validity, 13, 50, 1, False
    )
    assert len(out) == 16 * 50
    k1 = [int.from_bytes(out[8 * i : 8 * i + 8], sys.byteorder) for i in range(50)]
    k2 = [int.from_bytes(out[400 + 8 * i : 408 + 8 * i], sys.byteorder) for i in range(50)]
    want = expected(PEPPER.secret, b"iban:", values[13:63])
    assert [key_bytes(a, b) for a, b in zip(k1, k2, strict=True)] == [
        w if w is not None else bytes(16) for w in want
    ]
    with pytest.raises(ValueError, match="offsets"):
        native.hmac_sha256_words(
            b"k" * 32, b"", b"abcdef", pa.array([0, 4, 2], pa.int64()).buffers()[1], None, 0, 2
        )


def test_empty_and_all_null_series() -> None:
    assert hmac_batch(PEPPER, b"x:", pl.Series("v", [], dtype=pl.String)).to_list() == []
    out = hmac_batch(PEPPER, b"x:", pl.Series("v", [None, None]))
    assert out.dtype == pl.Binary
    assert out.to_list() == [None, None]
