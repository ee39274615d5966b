"""The keyed hash of identifiers: HMAC-SHA256 over ``kind:canonical`` with a rotating pepper.

Python's ``hmac`` module is the reference (``keyed_hash``). ``hash_keys`` is the batch path
used everywhere else; it precomputes the inner and outer SHA-256 states once per pepper so
each value costs two compressions, and is tested byte for byte against the reference. The
work is done by the C extension ``matching._hmac`` over the Arrow buffers (SHA-NI where the
CPU has it, GIL released, two threads), or by ``_hmac_batch_python`` when it is not built.

Stored join keys are the first 16 bytes of the HMAC (RFC 2104 §5 allows truncation to at
least half the output): 128 bits keeps accidental collisions out of reach at national scale
(~10⁻²⁴ for 20 M × 20 M) while halving the store and the join. The store holds them as two
unsigned 64-bit numbers, ``k1`` = bytes 0-7 and ``k2`` = bytes 8-15, each read big-endian
(``key_words``): so ``k1 >> 48`` is the key's first two bytes (the shard prefix) and (k1, k2)
sorts like the 16 bytes. DuckDB joins on a 64-bit ``k1`` much faster than on a BLOB; ``k2`` is
checked on every match, so nothing is lost of the 128 bits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib
import os
import secrets
from dataclasses import dataclass, field
from types import ModuleType

import polars as pl
import pyarrow as pa

from core.errors import ConfigError
from schemas.vocab import KeyKind

__all__ = [
    "KEY_BYTES",
    "KEY_COLUMNS",
    "KIND_DTYPE",
    "Pepper",
    "hash_keys",
    "hash_words",
    "hmac_batch",
    "join_key",
    "key_bytes",
    "key_words",
    "keyed_hash",
]

KEY_BYTES = 16
KEY_COLUMNS = ("k1", "k2")
# The key kinds in the order of the store's key_kind ENUM (migration 0001).
KIND_DTYPE = pl.Enum([k.value for k in KeyKind])
_BLOCK = 64


def _load_native() -> ModuleType | None:
    try:
        return importlib.import_module("matching._hmac")
    except ImportError:  # extension not built: the Python path is just as correct, only slower
        return None


_native = _load_native()


@dataclass(frozen=True)
class Pepper:
    """A 256-bit secret and the id it is stored under, so the pepper can rotate."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < 32:
            raise ConfigError("the pepper must be at least 256 bits (32 bytes)")
        if not self.key_id or len(self.key_id) > 32 or not self.key_id.isascii():
            raise ConfigError("the pepper key id must be 1-32 ASCII characters")

    def __repr__(self) -> str:
        return f"Pepper(key_id={self.key_id!r}, secret=<redacted>)"

    @classmethod
    def generate(cls, key_id: str = "k1") -> Pepper:
        return cls(key_id, secrets.token_bytes(32))

    @classmethod
    def from_text(cls, text: str, key_id: str) -> Pepper:
        """Hex (64 characters) or base64 of at least 32 bytes."""
        text = text.strip()
        try:
            secret = (
                bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
            )
        except (ValueError, binascii.Error):
            raise ConfigError("the pepper is neither 64 hex digits nor base64") from None
        return cls(key_id, secret)

    def to_text(self) -> str:
        return self.secret.hex()


def keyed_hash(pepper: Pepper, kind: KeyKind, canonical: str) -> bytes:
    """Reference: the full 32-byte HMAC-SHA256 of ``kind:canonical``."""
    message = f"{kind.value}:{canonical}".encode()
    return hmac.new(pepper.secret, message, hashlib.sha256).digest()


def join_key(digest: bytes) -> bytes:
    """The stored join key: the first 16 bytes of the HMAC."""
    return digest[:KEY_BYTES]


def key_words(key: bytes) -> tuple[int, int]:
    """The stored join key as (k1, k2): its two 8-byte halves read as big-endian numbers."""
    if len(key) < KEY_BYTES:
        raise ValueError(f"a join key has {KEY_BYTES} bytes")
    return int.from_bytes(key[:8], "big"), int.from_bytes(key[8:KEY_BYTES], "big")


def key_bytes(k1: int, k2: int) -> bytes:
    """The 16-byte join key back from its two stored words (the inverse of ``key_words``)."""
    return k1.to_bytes(8, "big") + k2.to_bytes(8, "big")


def _pads(secret: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    key = hashlib.sha256(secret).digest() if len(secret) > _BLOCK else secret
    key = key.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def hash_keys(pepper: Pepper, kind: KeyKind, canonical: pl.Series) -> pl.DataFrame:
    """Join keys of a series of canonical identifiers: columns k1, k2 (UInt64), a row each.

    A null identifier gives a null k1 and k2. The native path writes both columns straight
    from the HMAC state, with no 16-byte value in between.
    """
    prefix = f"{kind.value}:".encode()
    if _native is None:
        return _words_frame(_hmac_batch_python(pepper, prefix, _as_strings(canonical)))
    return _hmac_words_native(pepper, prefix, canonical, threads=None, portable=False)


def hash_words(
    pepper: Pepper, kind: KeyKind, data: bytes, offsets: bytes, *, threads: int = 1
) -> bytes:
    """Join keys of the UTF-8 strings ``data[offsets[i]:offsets[i + 1]]`` (Arrow layout, n + 1
    native int64 offsets starting at 0): n k1 words, then n k2 words, native uint64.

    For callers that hold identifiers in raw buffers (the native scanner); the same keys as
    ``hash_keys``. Single-threaded by default: such callers already run beside other work.
    """
    n = len(offsets) // 8 - 1
    if n <= 0:
        return b""
    prefix = f"{kind.value}:".encode()
    if _native is not None:
        words: bytes = _native.hmac_sha256_words(
            pepper.secret, prefix, data, offsets, None, 0, n, threads, False
        )
        return words
    bounds = memoryview(offsets).cast("q")
    values = pl.Series([data[bounds[i] : bounds[i + 1]].decode() for i in range(n)])
    frame = _words_frame(_hmac_batch_python(pepper, prefix, values))
    return frame["k1"].to_numpy().tobytes() + frame["k2"].to_numpy().tobytes()


def _words_frame(keys: pl.Series) -> pl.DataFrame:
    """(k1, k2) of 16-byte binary keys, the reference conversion."""
    words = [None if k is None else key_words(k) for k in keys.to_list()]
    return pl.DataFrame(
        {
            "k1": pl.Series([None if w is None else w[0] for w in words], dtype=pl.UInt64),
            "k2": pl.Series([None if w is None else w[1] for w in words], dtype=pl.UInt64),
        }
    )


def hmac_batch(
    pepper: Pepper, prefix: bytes, values: pl.Series, *, threads: int | None = None
) -> pl.Series:
    """Truncated HMAC-SHA256 of ``prefix + value`` for each string of ``values``; null stays null.

    Uses the C extension (SHA-NI where the CPU has it) when built, else the Python path.
    """
    if _native is None:
        return _hmac_batch_python(pepper, prefix, values)
    return _hmac_batch_native(pepper, prefix, values, threads=threads, portable=False)


def _default_threads() -> int:
    # Two is what the target machine has; more would only oversubscribe shared workers.
    return max(1, min(2, len(os.sched_getaffinity(0))))


def _as_strings(values: pl.Series) -> pl.Series:
    if values.dtype == pl.Null:
        return values.cast(pl.String)
    if values.dtype != pl.String:
        raise TypeError(f"hmac_batch needs a String series, got {values.dtype}")
    return values


def _arrow_strings(values: pl.Series) -> pa.LargeStringArray:
    """One contiguous large_string array (polars copies its string views)."""
    array = _as_strings(values).to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.type != pa.large_string():
        array = array.cast(pa.large_string())
    return array


def _native_args(
    pepper: Pepper, prefix: bytes, array: pa.LargeStringArray, threads: int | None, portable: bool
) -> tuple[tuple[object, ...], pa.Buffer | None]:
    """The extension's arguments for ``array``, and the validity bitmap of its output."""
    n = len(array)
    validity, offsets, data = array.buffers()
    if array.null_count == 0:
        validity = None
    args = (
        pepper.secret,
        prefix,
        data if data is not None else b"",
        offsets.slice(array.offset * 8, (n + 1) * 8),
        validity,
        array.offset,
        n,
        threads if threads is not None else _default_threads(),
        portable,
    )
    out_validity = None if validity is None else array.is_valid().buffers()[1]
    return args, out_validity


def _hmac_batch_native(
    pepper: Pepper, prefix: bytes, values: pl.Series, *, threads: int | None, portable: bool
) -> pl.Series:
    """The C path over the Arrow buffers; ``portable`` forces the non-SHA-NI code (for tests)."""
    assert _native is not None
    array = _arrow_strings(values)
    n = len(array)
    if n == 0:
        return pl.Series(values.name, [], dtype=pl.Binary)
    args, out_validity = _native_args(pepper, prefix, array, threads, portable)
    digests = _native.hmac_sha256_trunc16(*args)
    keys = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(KEY_BYTES), n, [out_validity, pa.py_buffer(digests)]
    )
    # binary_view is what polars holds; from a fixed-size array the cast is cheap and the
    # import zero-copy, where large_binary would be copied value by value.
    return pl.Series(values.name, keys.cast(pa.binary_view()), dtype=pl.Binary)


def _hmac_words_native(
    pepper: Pepper, prefix: bytes, values: pl.Series, *, threads: int | None, portable: bool
) -> pl.DataFrame:
    """The C path writing k1 and k2 as two uint64 arrays; polars takes them without a copy."""
    assert _native is not None
    array = _arrow_strings(values)
    n = len(array)
    if n == 0:
        return pl.DataFrame(schema={"k1": pl.UInt64, "k2": pl.UInt64})
    args, out_validity = _native_args(pepper, prefix, array, threads, portable)
    buffer = pa.py_buffer(_native.hmac_sha256_words(*args))
    half = 8 * n
    columns = {
        name: pl.Series(
            name,
            pa.UInt64Array.from_buffers(
                pa.uint64(), n, [out_validity, buffer.slice(i * half, half)]
            ),
        )
        for i, name in enumerate(KEY_COLUMNS)
    }
    return pl.DataFrame(columns)


def _hmac_batch_python(pepper: Pepper, prefix: bytes, values: pl.Series) -> pl.Series:
    """Reference batch path: hashlib copies of the precomputed pad states, one value at a time."""
    values = _as_strings(values)
    inner, outer = _pads(pepper.secret)
    inner.update(prefix)
    out: list[bytes | None] = []
    append = out.append
    for value in values.to_list():
        if value is None:
            append(None)
            continue
        i = inner.copy()
        i.update(value.encode())
        o = outer.copy()
        o.update(i.digest())
        append(o.digest()[:KEY_BYTES])
    return pl.Series(values.name, out, dtype=pl.Binary)
