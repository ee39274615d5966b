"""The customer filter: a bit set of the customer keys' first words, probed as leaks are ingested.

Bit ``k1 >> (64 - log2_bits)`` is set for every customer key. A leak key whose bit is clear
cannot match any of those customer keys, so ingestion marks each leak key with whether its bit
is set (``leak_keys.customer_hint``) and the link joins only the keys marked, when the customer
keys are still those the filter was built from (``matching.link``). At national scale that is
about a third of the leak keys, and the link needs no other narrowing.

The set has at least 16 bits per customer key (a power of two, 2^16 to 2^31 bits: 8 KiB to
256 MiB), so about one leak key in 16 that matches no customer is marked all the same: the
join drops it. A filter names its customer keys by their count and the xor of their first
words (:class:`FilterId`): what a link compares with the customer keys of the moment; any
change of those keys that two such numbers miss would take an HMAC collision.

The two loops are native (``matching._bits``) where built, numpy otherwise: the same bits.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from matching.native import bits_module as _native
from matching.sql import Statement
from matching.store import Store

__all__ = [
    "CustomerFilter",
    "FilterId",
    "build_filter",
    "current_id",
    "filter_for_ingest",
    "load_filter",
    "refresh_filter",
    "size_for",
]

MIN_LOG2_BITS = 16
MAX_LOG2_BITS = 31
BITS_PER_KEY_LOG2 = 4  # at least 16 bits per customer key
_READ_ROWS = 1 << 20  # customer keys read per Arrow batch while building

_COUNT_AND_XOR = Statement(
    "count and xor of the customer keys' first words",
    "SELECT count(*), coalesce(bit_xor(k1), 0) FROM customer_keys",
)
_FIRST_WORDS = Statement("customer keys' first words", "SELECT k1 FROM customer_keys")
_STORED = Statement(
    "the stored customer filter", "SELECT keys, key_xor, log2_bits FROM customer_filter"
)
_KEY_COUNT = Statement("count the customer keys", "SELECT count(*) FROM customer_keys")
_STORED_WORDS = Statement(
    "the stored customer filter's words", "SELECT n, word FROM customer_filter_words"
)
_REPLACE = Statement(
    "replace the customer filter",
    """
    DELETE FROM customer_filter;
    DELETE FROM customer_filter_words;
    INSERT INTO customer_filter VALUES ($keys, $key_xor, $log2_bits);
    INSERT INTO customer_filter_words SELECT n, word FROM filter_words;
    """,
)


@dataclass(frozen=True)
class FilterId:
    """The customer keys a filter describes: their count and the xor of their first words."""

    keys: int
    key_xor: int


@dataclass(frozen=True, eq=False)
class CustomerFilter:
    """A set of ``2 ** log2_bits`` bits over the first words of the keys ``id`` names.

    ``words``: the set as uint64 words, bit i being bit ``i % 64`` of word ``i // 64``.
    """

    id: FilterId
    log2_bits: int
    words: np.ndarray

    def probe(self, k1: np.ndarray) -> np.ndarray:
        """Whether each first word's bit is set (bool, one per first word)."""
        keys = np.ascontiguousarray(k1, dtype=np.uint64)
        native = _native()
        if native is not None:
            out = np.empty(len(keys), dtype=np.uint8)
            native.probe(self.words, keys, self.log2_bits, out)
            return out.view(np.bool_)
        slot = keys >> np.uint64(64 - self.log2_bits)
        word = self.words[(slot >> np.uint64(6)).astype(np.intp)]
        hits: np.ndarray = ((word >> (slot & np.uint64(63))) & np.uint64(1)).astype(np.bool_)
        return hits


def size_for(keys: int) -> int:
    """log2 of the bit count for ``keys`` customer keys."""
    wanted = max(keys, 1) << BITS_PER_KEY_LOG2
    return min(MAX_LOG2_BITS, max(MIN_LOG2_BITS, (wanted - 1).bit_length()))


def _set_bits(words: np.ndarray, keys: np.ndarray, log2_bits: int) -> None:
    native = _native()
    if native is not None:
        native.set_bits(words, keys, log2_bits)
        return
    slot = keys >> np.uint64(64 - log2_bits)
    index = (slot >> np.uint64(6)).astype(np.intp)
    bit = slot & np.uint64(63)
    for b in range(64):  # one bit position at a time: repeated words then set the same bit
        words[index[bit == b]] |= np.uint64(1 << b)


def _column(batch: pa.RecordBatch, i: int, dtype: type[np.generic]) -> np.ndarray:
    """Column ``i`` of ``batch`` (fixed width, no NULL) as a numpy view of its Arrow buffer.

    Not pyarrow's ``to_numpy()``: it imports pandas where pandas is installed, which took
    0.34 s at the start of every ingest and held up the main thread on the import lock.
    """
    column = batch.column(i)
    if column.null_count:
        raise ValueError(f"filter read: column {i} holds NULL")
    width = np.dtype(dtype).itemsize
    if column.type.bit_width != 8 * width:
        raise ValueError(f"filter read: column {i} is {column.type}, not {np.dtype(dtype)}")
    data = column.buffers()[1]
    return np.frombuffer(data, dtype=dtype, count=len(column), offset=column.offset * width)


def build_from(parts: Iterable[np.ndarray], keys: int) -> CustomerFilter:
    """The filter of ``keys`` first words given in parts (uint64 arrays)."""
    log2_bits = size_for(keys)
    words = np.zeros(1 << (log2_bits - 6), dtype=np.uint64)
    seen = 0
    xor = np.uint64(0)
    for part in parts:
        part = np.ascontiguousarray(part, dtype=np.uint64)
        _set_bits(words, part, log2_bits)
        xor ^= np.bitwise_xor.reduce(part) if len(part) else np.uint64(0)
        seen += len(part)
    return CustomerFilter(FilterId(seen, int(xor)), log2_bits, words)


def build_filter(store: Store) -> CustomerFilter:
    """The filter of the customer keys in the store now (read in batches, not all at once)."""
    keys = int(store.scalar(_KEY_COUNT))  # the size only: the xor is taken while reading
    batches = store.arrow_batches(_FIRST_WORDS, rows=_READ_ROWS)
    return build_from((_column(b, 0, np.uint64) for b in batches), keys)  # k1: never NULL


def current_id(store: Store) -> FilterId:
    """What the customer keys in the store now are, as a filter names them."""
    keys, xor = store.rows(_COUNT_AND_XOR)[0]
    return FilterId(int(keys), int(xor))


def save_filter(store: Store, built: CustomerFilter) -> None:
    """Replace the stored filter (in the caller's transaction, if any)."""
    frame = pl.DataFrame(
        {
            "n": pl.Series(np.arange(len(built.words), dtype=np.uint32)),
            "word": pl.Series(built.words),
        }
    )
    params = {"keys": built.id.keys, "key_xor": built.id.key_xor, "log2_bits": built.log2_bits}
    with store.registered("filter_words", frame):
        store.run(_REPLACE, params)


def refresh_filter(store: Store) -> CustomerFilter:
    """Build the filter of the customer keys now and store it; for whoever changed them."""
    built = build_filter(store)
    save_filter(store, built)
    return built


def load_filter(store: Store) -> CustomerFilter | None:
    """The stored filter, or None when there is none (or it is not whole)."""
    meta = store.rows(_STORED)
    if len(meta) != 1:
        return None
    keys, key_xor, log2_bits = (int(v) for v in meta[0])
    words = np.zeros(1 << (log2_bits - 6), dtype=np.uint64)
    seen = np.zeros(len(words), dtype=np.bool_)
    for batch in store.arrow_batches(_STORED_WORDS, rows=_READ_ROWS):
        n = _column(batch, 0, np.uint32)
        if len(n) and int(n.max()) >= len(words):
            return None
        words[n] = _column(batch, 1, np.uint64)
        seen[n] = True
    if not seen.all():  # a word missing: no filter rather than a wrong one
        return None
    return CustomerFilter(FilterId(keys, key_xor), log2_bits, words)


def filter_for_ingest(store: Store, pool: Executor) -> Future[CustomerFilter | None]:
    """The stored filter, read in ``pool`` on a connection of its own while the caller goes
    on (tens of MB read cold: half a second at national scale). Built and stored first, here,
    when there is none yet but there are customer keys (a store from before filters, or
    loaded by other means). None without customer keys.

    A stored filter is taken as it is: loading customers and rotating the pepper store a new
    one, and a link checks that the filter still names the customer keys before relying on it.
    """
    done: Future[CustomerFilter | None] = Future()
    if store.rows(_STORED):
        return pool.submit(_load_apart, store.cursor())
    if not int(store.scalar(_KEY_COUNT)):
        done.set_result(None)
        return done
    with store.transaction():
        done.set_result(refresh_filter(store))
    return done


def _load_apart(cursor: Store) -> CustomerFilter | None:
    try:
        return load_filter(cursor)
    finally:
        cursor.close()
