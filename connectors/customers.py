"""The operator's customer file (CSV or Parquet) read as bounded all-string batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl

from connectors.base import ROW, Table
from connectors.delimited import Rebatcher, read_delimited
from connectors.files import acquire_file
from connectors.parse import sniff_artifact
from core.errors import InputError

__all__ = ["CUSTOMER_COLUMNS", "OPTIONAL_CUSTOMER_COLUMNS", "read_customers"]

CUSTOMER_COLUMNS = ("customer_id", "email", "phone", "iban", "first_name", "last_name", "language")
OPTIONAL_CUSTOMER_COLUMNS = ("status", "contract_end")
_ALL = (*CUSTOMER_COLUMNS, *OPTIONAL_CUSTOMER_COLUMNS)


def _match(names: list[str], display: str) -> dict[str, str]:
    """{wanted column: column in the file}, matched case-insensitively; InputError if missing."""
    by_key = {n.strip().lower(): n for n in names}
    missing = [c for c in CUSTOMER_COLUMNS if c not in by_key]
    if missing:
        raise InputError(f"missing required column(s): {', '.join(missing)}", file=display)
    return {c: by_key[c] for c in _ALL if c in by_key}


def _shape(frame: pl.DataFrame, found: dict[str, str]) -> pl.DataFrame:
    return frame.select(
        pl.col(ROW).cast(pl.UInt64),
        *[
            pl.col(found[c]).cast(pl.String).alias(c)
            if c in found
            else pl.lit(None, dtype=pl.String).alias(c)
            for c in _ALL
        ],
    )


def _parquet(path: Path, display: str, batch_rows: int) -> Table:
    try:
        names = list(pl.scan_parquet(path).collect_schema().names())
    except pl.exceptions.PolarsError:
        raise InputError("unreadable Parquet file", file=display) from None
    found = _match(names, display)

    def produce(table: Table) -> Iterator[pl.DataFrame]:
        lf = (
            pl.scan_parquet(path)
            .select([pl.col(n) for n in found.values()])
            .with_row_index(ROW, offset=1)
        )
        rebatch = Rebatcher(batch_rows)
        for chunk in lf.collect_batches(chunk_size=batch_rows):
            for out in rebatch.push(_shape(chunk, found)):
                table.rows_read += out.height
                yield out
        for out in rebatch.flush():
            table.rows_read += out.height
            yield out

    return Table(
        name="customers", columns=list(_ALL), has_header=True, parser="parquet", produce=produce
    )


def read_customers(path: Path, *, batch_rows: int = 250_000, work_dir: Path) -> Table:
    """CSV (any encoding/delimiter the leak parser handles) or Parquet; header required.

    Batches hold ROW and every required and optional column as text (absent optional ones are
    null, extra columns dropped); identifiers are never read as numbers, so leading zeros stay.
    """
    display = str(path)
    if not path.is_file():
        raise InputError("no such file", file=display)
    artifact = acquire_file(path, display)
    sniffed = sniff_artifact(artifact)
    if sniffed.shape == "parquet":
        return _parquet(path, display, batch_rows)
    if sniffed.shape != "delimited" or sniffed.encoding is None:
        raise InputError("customer file must be CSV or Parquet", file=display)
    inner = read_delimited(
        path,
        name="customers",
        encoding=sniffed.encoding,
        sample=sniffed.sample,
        batch_rows=batch_rows,
        work_dir=work_dir,
        has_header=True,
    )
    found = _match(inner.columns, display)

    def produce(table: Table) -> Iterator[pl.DataFrame]:
        try:
            for chunk in inner.batches():
                out = _shape(chunk, found)
                table.rows_read += out.height
                yield out
        finally:
            table.rejects.extend(inner.rejects)

    return Table(
        name="customers",
        columns=list(_ALL),
        has_header=True,
        parser=inner.parser,
        produce=produce,
        encoding=sniffed.encoding,
    )
