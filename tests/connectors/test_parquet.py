"""Parquet: every column as text, in bounded batches, row numbers from 1."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from connectors.base import ROW
from connectors.files import acquire_path
from connectors.parse import parse_artifact


def test_parquet_columns_become_strings_in_batches(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "email": ["a@x.fr", None, "c@x.fr", ""],
            "phone": ["0612345678", "0612345679", None, "0612345670"],
            "n": [1, 2, None, 4],
            "born": [dt.date(1980, 1, 2), None, None, dt.date(1999, 12, 31)],
            "tags": [["a", "b"], [], None, ["c"]],
        }
    )
    path = tmp_path / "leak.parquet"
    frame.write_parquet(path)
    (artifact,) = acquire_path(path)
    (table,) = parse_artifact(artifact, batch_rows=3, work_dir=tmp_path / "work")
    assert table.parser == "parquet" and table.name == "leak" and table.has_header
    batches = list(table.batches())
    assert [b.height for b in batches] == [3, 1]  # bounded, never the whole file
    got = pl.concat(batches)
    assert all(got.schema[c] == pl.String for c in table.columns)
    assert got[ROW].to_list() == [1, 2, 3, 4] and table.rows_read == 4
    assert got.drop(ROW).rows() == [
        ("a@x.fr", "0612345678", "1", "1980-01-02", '["a","b"]'),
        (None, "0612345679", "2", None, "[]"),
        ("c@x.fr", None, None, None, None),
        (None, "0612345670", "4", "1999-12-31", '["c"]'),
    ]
