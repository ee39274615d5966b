"""What every connector speaks: acquired artifacts, parsed tables of string batches, row rejects."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from connectors.delimited import Dialect

__all__ = ["ROW", "Artifact", "DelimitedLayout", "Digest", "RowReject", "Table", "record_batches"]

# Every parsed batch carries this UInt64 column: the 1-based number of the data record in its
# table (a header line is not counted). Errors and rejects cite it as "row N".
ROW = "__row"


class Digest:
    """An artifact's SHA-256 (hex): known when it was acquired, or computed in the background.

    A local file is hashed on a thread of its own (``connectors.files``) while it is parsed:
    hashing 2.6 GB from disk took 5.4 s before the first row could be read. ``background``
    says which of the two it is (fixed when acquired, whether or not the thread is done);
    ``value`` waits for it and raises what hashing raised (an ``InputError`` naming the file).
    """

    def __init__(self, future: Future[str], *, background: bool) -> None:
        self._future = future
        self.background = background

    @classmethod
    def known(cls, sha256: str) -> Digest:
        future: Future[str] = Future()
        future.set_result(sha256)
        return cls(future, background=False)

    def value(self) -> str:
        return self._future.result()


@dataclass(frozen=True)
class Artifact:
    """A file acquired onto local disk, with what the evidence manifest needs to know about it."""

    path: Path
    source: str
    digest: Digest
    size: int
    acquired_at: datetime
    media_type: str = "application/octet-stream"
    inner_path: str | None = None
    telegram: dict[str, Any] | None = None

    @property
    def sha256(self) -> str:
        """The content's SHA-256 (hex), waiting for it if it is still being computed."""
        return self.digest.value()

    @property
    def display(self) -> str:
        """How errors and reports name this artifact: the source, then the path inside archives."""
        return f"{self.source}!{self.inner_path}" if self.inner_path else self.source


@dataclass(frozen=True)
class RowReject:
    """A record, or one value of it, that was refused: where, and why (never the value)."""

    row: int | None
    reason: str
    column: str | None = None


@dataclass(frozen=True)
class DelimitedLayout:
    """A delimited text file as it lies on disk: what a native reader needs to scan it itself."""

    path: Path
    encoding: str
    dialect: Dialect


@dataclass
class Table:
    """One table of an artifact: column names and a generator of bounded all-string batches.

    ``batches()`` may be consumed once. Each batch is a ``pl.DataFrame`` with the ``ROW``
    column first (UInt64) and then one ``pl.String`` column per name in ``columns``, at most
    ``batch_rows`` rows. ``rejects`` and ``rows_read`` grow while the batches are consumed.
    """

    name: str
    columns: list[str]
    has_header: bool
    parser: str
    produce: Callable[[Table], Iterator[pl.DataFrame]]
    rejects: list[RowReject] = field(default_factory=list)
    rows_read: int = 0
    encoding: str | None = None
    # Delimited text only: the file's layout, for a native reader that takes the place of
    # ``batches()``, and its first records (``head(n)``, parsed as ``batches()`` would) to
    # decide the column roles before.
    layout: DelimitedLayout | None = None
    head: Callable[[int], pl.DataFrame] | None = None

    def batches(self) -> Iterator[pl.DataFrame]:
        return self.produce(self)


def record_batches(
    table: Table, records: Iterable[tuple[int, Sequence[str | None]]], batch_rows: int
) -> Iterator[pl.DataFrame]:
    """Bounded batches of ``(row number, values in column order)`` records; counts rows read."""
    numbers: list[int] = []
    rows: list[Sequence[str | None]] = []
    for number, values in records:
        numbers.append(number)
        rows.append(values)
        if len(rows) >= batch_rows:
            yield _frame(table, numbers, rows)
            numbers, rows = [], []
    if rows:
        yield _frame(table, numbers, rows)


def _frame(table: Table, numbers: list[int], rows: list[Sequence[str | None]]) -> pl.DataFrame:
    data = {ROW: pl.Series(ROW, numbers, dtype=pl.UInt64)}
    for i, column in enumerate(table.columns):
        data[column] = pl.Series(column, [r[i] for r in rows], dtype=pl.String)
    table.rows_read += len(numbers)
    return pl.DataFrame(data)
