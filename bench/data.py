"""The bench's inputs: a synthetic operator and a messy leak, generated once and cached."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

__all__ = [
    "BREACH_ID",
    "LEAK_DELIMITER",
    "LEAK_ENCODING",
    "Inputs",
    "cached",
    "inputs",
    "inputs_apart",
    "size_name",
]

BREACH_ID = "bench"
LEAK_DELIMITER = ";"
LEAK_ENCODING = "cp1252"  # the demo's main dump: a French spreadsheet export
OVERLAP = 0.3
_FORMAT = 1  # bump when the cached files' shape changes


@dataclass(frozen=True)
class Inputs:
    """Where the cached files are, and what they hold."""

    folder: Path
    rows: int  # customers
    leak_rows: int
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


def size_name(rows: int, leak_rows: int) -> str:
    """``<rows>``, or ``<rows>x<leak_rows>`` for a leak of another size than the base."""
    return f"{rows}" if leak_rows == rows else f"{rows}x{leak_rows}"


def _meta(rows: int, leak_rows: int, seed: int) -> dict[str, object]:
    meta: dict[str, object] = {"format": _FORMAT, "rows": rows, "seed": seed, "overlap": OVERLAP}
    if leak_rows != rows:  # a leak of another size than the base: named apart
        meta["leak_rows"] = leak_rows
    return meta


def _folder_name(rows: int, leak_rows: int, seed: int) -> str:
    """The cache folder of these inputs (``<size>-<seed>``)."""
    return f"{size_name(rows, leak_rows)}-{seed}"


def cached(cache: Path, rows: int, seed: int, leak_rows: int | None = None) -> Inputs | None:
    """The inputs :func:`inputs` would return, if they are in the cache already; else None."""
    leak_rows = rows if leak_rows is None else leak_rows
    folder = cache / _folder_name(rows, leak_rows, seed)
    marker = folder / "meta.json"
    if marker.is_file() and json.loads(marker.read_text()) == _meta(rows, leak_rows, seed):
        return Inputs(folder, rows, leak_rows, seed, None)
    return None


def inputs(cache: Path, rows: int, seed: int, leak_rows: int | None = None) -> Inputs:
    """The cached inputs for ``rows`` customers and ``leak_rows`` leaked rows (by default as
    many) from ``seed``, generated now (atomically) when absent.

    The customers of (rows, seed) are the same whatever the leak's size; the leak's own rows
    are drawn for its size, about 30 % of them customers'.
    """
    import time

    from synthetic import make_customers, make_leak, write_delimited

    leak_rows = rows if leak_rows is None else leak_rows
    found = cached(cache, rows, seed, leak_rows)
    if found is not None:
        return found
    name = _folder_name(rows, leak_rows, seed)
    folder = cache / name
    started = time.perf_counter()
    tmp = cache / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    customers = make_customers(rows, seed=seed)
    leak = make_leak(customers, leak_rows, overlap=OVERLAP, seed=seed + 1)
    customers.write_csv(tmp / "customers.csv")
    del customers
    write_delimited(leak.frame, tmp / "leak.csv", delimiter=LEAK_DELIMITER, encoding=LEAK_ENCODING)
    leak.truth.write_parquet(tmp / "truth.parquet")
    del leak
    (tmp / "meta.json").write_text(json.dumps(_meta(rows, leak_rows, seed)))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return Inputs(folder, rows, leak_rows, seed, time.perf_counter() - started)


def inputs_apart(cache: Path, rows: int, seed: int, leak_rows: int | None = None) -> Inputs:
    """:func:`inputs`, generated where absent in a process of its own, which ends with it.

    Generating 20 M rows took 19 GB at its peak, and the process that did it still held 5.9 GB
    once it returned (measured here): a bench that generated its inputs itself then measured
    every step beside that memory, on a machine with less of it free.
    """
    found = cached(cache, rows, seed, leak_rows)
    if found is not None:
        return found
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of ours shared
    with ProcessPoolExecutor(1, mp_context=spawn) as generator:
        return generator.submit(inputs, cache, rows, seed, leak_rows).result()


def truth(inputs: Inputs) -> pl.DataFrame:
    """The exposures the leak must produce: customer_id, matched_on, categories."""
    return pl.read_parquet(inputs.truth).select("customer_id", "matched_on", "categories")
