"""The bench's inputs: a synthetic operator and a messy leak, generated once and cached."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

__all__ = ["BREACH_ID", "LEAK_DELIMITER", "LEAK_ENCODING", "Inputs", "inputs"]

BREACH_ID = "bench"
LEAK_DELIMITER = ";"
LEAK_ENCODING = "cp1252"  # the demo's main dump: a French spreadsheet export
OVERLAP = 0.3
_FORMAT = 1  # bump when the cached files' shape changes


@dataclass(frozen=True)
class Inputs:
    """Where the cached files are, and what they hold."""

    folder: Path
    rows: int
    seed: int
    generated_s: float | None  # None when reused from the cache

    @property
    def customers(self) -> Path:
        return self.folder / "customers.csv"

    @property
    def leak(self) -> Path:
        return self.folder / "leak.csv"

    @property
    def truth(self) -> Path:
        return self.folder / "truth.parquet"


def _meta(rows: int, seed: int) -> dict[str, object]:
    return {"format": _FORMAT, "rows": rows, "seed": seed, "overlap": OVERLAP}


def inputs(cache: Path, rows: int, seed: int) -> Inputs:
    """The cached inputs for (rows, seed), generated now (atomically) when absent."""
    import time

    from synthetic import make_customers, make_leak, write_delimited

    folder = cache / f"{rows}-{seed}"
    marker = folder / "meta.json"
    if marker.is_file() and json.loads(marker.read_text()) == _meta(rows, seed):
        return Inputs(folder, rows, seed, None)
    started = time.perf_counter()
    tmp = cache / f".{rows}-{seed}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    customers = make_customers(rows, seed=seed)
    leak = make_leak(customers, rows, overlap=OVERLAP, seed=seed + 1)
    customers.write_csv(tmp / "customers.csv")
    del customers
    write_delimited(leak.frame, tmp / "leak.csv", delimiter=LEAK_DELIMITER, encoding=LEAK_ENCODING)
    leak.truth.write_parquet(tmp / "truth.parquet")
    del leak
    (tmp / "meta.json").write_text(json.dumps(_meta(rows, seed)))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return Inputs(folder, rows, seed, time.perf_counter() - started)


def truth(inputs: Inputs) -> pl.DataFrame:
    """The exposures the leak must produce: customer_id, matched_on, categories."""
    return pl.read_parquet(inputs.truth).select("customer_id", "matched_on", "categories")
