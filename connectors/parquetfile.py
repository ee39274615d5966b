"""Parquet files, read in row batches with pyarrow and every column cast to strings."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.base import ROW, Artifact, Table
from connectors.delimited import clean_names
from core.errors import InputError

__all__ = ["read_parquet"]

# Record batches pyarrow decodes at once; rows are re-cut to ``batch_rows`` after casting.
_READ_ROWS = 65_536


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as ``pl.String``: lists and structs as JSON text, dates as ISO text."""
    out = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.String:
            out.append(col)
        elif isinstance(dtype, pl.List | pl.Array | pl.Struct):
            out.append(_nested_json(name))
        elif dtype == pl.Binary:
            out.append(col.bin.encode("hex"))
        else:
            out.append(col.cast(pl.String))
    return frame.select(out)


def _nested_json(name: str) -> pl.Expr:
    # json_encode works on structs: wrap the value as {"v": value} and cut the wrapper off.
    wrapped = pl.struct(pl.col(name).alias("v")).struct.json_encode()
    text = wrapped.str.slice(5).str.head(-1)
    return pl.when(pl.col(name).is_not_null()).then(text).alias(name)


def read_parquet(artifact: Artifact, batch_rows: int) -> Iterator[Table]:
    """One Table over the file; batches of at most ``batch_rows`` rows, never the whole file."""
    display = artifact.display
    try:
        pf = pq.ParquetFile(artifact.path)
        names = list(pf.schema_arrow.names)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"unreadable Parquet file ({type(exc).__name__})", file=display) from None
    if not names:
        raise InputError("Parquet file without columns", file=display)
    columns = clean_names(names)

    def produce(table: Table) -> Iterator[pl.DataFrame]:
        row = 0
        try:
            for batch in pf.iter_batches(batch_size=min(batch_rows, _READ_ROWS)):
                frame = pl.from_arrow(pa.Table.from_batches([batch]))
                assert isinstance(frame, pl.DataFrame)
                frame = _as_text(frame)
                frame.columns = columns
                frame = frame.select(
                    pl.int_range(row + 1, row + 1 + frame.height, dtype=pl.UInt64).alias(ROW),
                    *[pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in columns],
                )
                row += frame.height
                table.rows_read += frame.height
                yield frame
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise InputError(
                f"unreadable Parquet data after row {row} ({type(exc).__name__})", file=display
            ) from None

    yield Table(
        name=(artifact.inner_path or artifact.path.name).rsplit("/", 1)[-1].rsplit(".", 1)[0]
        or "table",
        columns=columns,
        has_header=True,
        parser="parquet",
        produce=produce,
    )
