"""Shared helpers for connector tests: write a file, acquire it, parse it whole."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from connectors.base import ROW, Table
from connectors.files import acquire_path
from connectors.parse import parse_artifact


def parse_file(path: Path, work_dir: Path, batch_rows: int = 250_000) -> tuple[Table, pl.DataFrame]:
    (artifact,) = acquire_path(path)
    (table,) = parse_artifact(artifact, batch_rows=batch_rows, work_dir=work_dir)
    batches = list(table.batches())
    for b in batches:
        assert b.columns == [ROW, *table.columns]
        assert b.schema[ROW] == pl.UInt64
        assert all(b.schema[c] == pl.String for c in table.columns)
    frame = pl.concat(batches) if batches else pl.DataFrame()
    return table, frame
