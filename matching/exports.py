"""The exposures export of design.md §2: one row per exposed customer, in CSV, JSON or Parquet."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import polars as pl

from matching.sql import Statement
from matching.store import Store

__all__ = [
    "EXPORT_COLUMNS",
    "ExportFormat",
    "exposures_frame",
    "neutralise_cell",
    "spreadsheet_safe",
    "write_exposures",
]

ExportFormat = Literal["csv", "json", "parquet"]
EXPORT_COLUMNS = ("customer_id", "matched_on", "categories", "risk")

_EXPOSURES = Statement(
    "exposures export",
    """
    SELECT customer_id, matched_on, categories, risk FROM exposures
    WHERE breach_id = $breach_id ORDER BY customer_id
    """,
)


# OWASP "CSV Injection": a spreadsheet runs a cell that begins with = + - @ (or a tab, CR or
# other control character that hides one) as a formula. Such cells get a leading apostrophe.
_FORMULA_START = r"^[=+\-@\x00-\x1f\x7f]"


def neutralise_cell(value: str) -> str:
    """One cell as a spreadsheet shows it as text, never as a formula."""
    return (
        "'" + value
        if value and (value[0] in "=+-@" or value[0] < " " or value[0] == "\x7f")
        else value
    )


def spreadsheet_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Every string column neutralised like :func:`neutralise_cell`."""
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(_FORMULA_START))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.String
    )


def exposures_frame(store: Store, breach_id: str) -> pl.DataFrame:
    return store.frame(_EXPOSURES, {"breach_id": breach_id})


def write_exposures(frame: pl.DataFrame, path: Path, fmt: ExportFormat) -> Path:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "csv":
        spreadsheet_safe(frame).write_csv(tmp)
    elif fmt == "parquet":
        frame.write_parquet(tmp)
    else:
        tmp.write_text(json.dumps(frame.to_dicts(), ensure_ascii=False, indent=1) + "\n")
    os.replace(tmp, path)
    return path
