"""The enumeration attack on stored phone keys: every French mobile, with and without the pepper.

An attacker holding the store but not the pepper hashes every French mobile (06 and 07: 2×10⁸
numbers) the ways the store might have: unkeyed SHA-256 of ``phone:+336…`` (our exact message)
and of the bare ``+336…``, truncated like our keys. That must recover nothing. The control, with
the pepper (the native HMAC over Arrow string arrays, chunk by chunk), must recover every
planted number: it proves the enumeration itself works.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from matching.keyed_hash import KEY_BYTES, Pepper, hmac_batch, key_bytes

__all__ = [
    "FULL_RANGE",
    "UNKEYED_PREFIXES",
    "MobileRange",
    "candidates",
    "reverse_keyed",
    "reverse_unkeyed",
    "stored_phone_keys",
]

UNKEYED_PREFIXES = (b"phone:", b"")


@dataclass(frozen=True)
class MobileRange:
    """``+33`` then ``digit`` then the 8-digit numbers ``start``..``stop - 1``."""

    digit: int
    start: int = 0
    stop: int = 100_000_000

    @property
    def size(self) -> int:
        return self.stop - self.start


FULL_RANGE = (MobileRange(6), MobileRange(7))


def stored_phone_keys(store: Path) -> set[bytes]:
    """Every phone key the store holds, customers' and leaks'."""
    con = duckdb.connect(str(store), read_only=True)
    try:
        rows = con.execute(
            "SELECT k1, k2 FROM customer_keys WHERE kind = 'phone' "
            "UNION SELECT k1, k2 FROM leak_keys WHERE kind = 'phone'"
        ).fetchall()
        return {key_bytes(k1, k2) for k1, k2 in rows}
    finally:
        con.close()


def candidates(r: MobileRange, start: int, stop: int) -> pl.Series:
    """E.164 strings for numbers ``start``..``stop - 1`` of the range, as one Arrow string array."""
    return pl.select(
        (pl.lit(f"+33{r.digit}") + pl.int_range(start, stop).cast(pl.String).str.zfill(8)).alias(
            "e164"
        )
    ).to_series()


def _chunks(ranges: Iterable[MobileRange], chunk: int) -> Iterable[tuple[MobileRange, int, int]]:
    for r in ranges:
        for start in range(r.start, r.stop, chunk):
            yield r, start, min(start + chunk, r.stop)


def reverse_keyed(
    keys: set[bytes], pepper: Pepper, ranges: Sequence[MobileRange], *, chunk: int = 4_000_000
) -> set[str]:
    """The control: numbers whose HMAC (with the pepper) is a stored key."""
    wanted = pl.Series("k", sorted(keys), dtype=pl.Binary)
    found: set[str] = set()
    for r, start, stop in _chunks(ranges, chunk):
        numbers = candidates(r, start, stop)
        hashed = hmac_batch(pepper, b"phone:", numbers)
        found.update(numbers.filter(hashed.is_in(wanted.implode())).to_list())
    return found


def _unkeyed_chunk(args: tuple[int, int, int, frozenset[bytes]]) -> list[str]:
    digit, start, stop, keys = args
    found = []
    for prefix in UNKEYED_PREFIXES:
        for high in range(start // 10_000, (stop + 9_999) // 10_000):
            head = hashlib.sha256(prefix + f"+33{digit}{high:04d}".encode())
            for low in range(max(0, start - high * 10_000), min(10_000, stop - high * 10_000)):
                h = head.copy()
                h.update(b"%04d" % low)
                if h.digest()[:KEY_BYTES] in keys:
                    found.append(f"{prefix.decode()}+33{digit}{high:04d}{low:04d}")
    return found


def reverse_unkeyed(
    keys: set[bytes], ranges: Sequence[MobileRange], *, processes: int = 2, chunk: int = 2_000_000
) -> list[str]:
    """The attack without the pepper: numbers whose unkeyed SHA-256 is a stored key (want none)."""
    frozen = frozenset(keys)
    jobs = [(r.digit, a, b, frozen) for r, a, b in _chunks(ranges, chunk)]
    if processes <= 1:
        return [n for job in jobs for n in _unkeyed_chunk(job)]
    with mp.get_context("spawn").Pool(processes) as pool:
        return [n for part in pool.imap_unordered(_unkeyed_chunk, jobs) for n in part]
