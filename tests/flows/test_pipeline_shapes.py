"""End to end without Prefect: for a leak in each supported shape, the export is exactly the truth."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from core.settings import Settings
from flows import steps
from flows.context import Runtime, load_pepper
from synthetic import make_customers, make_leak, write_delimited, write_json_array, write_jsonl

Writer = Callable[[pl.DataFrame, Path], Path]

SHAPES: dict[str, tuple[Writer, bool]] = {
    "comma-utf8": (lambda f, d: write_delimited(f, d / "leak.csv"), True),
    "semicolon-cp1252": (
        lambda f, d: write_delimited(f, d / "leak.csv", delimiter=";", encoding="cp1252"),
        True,
    ),
    "tab-utf16": (
        lambda f, d: write_delimited(f, d / "leak.tsv", delimiter="\t", encoding="utf-16"),
        True,
    ),
    "pipe-latin1": (
        lambda f, d: write_delimited(f, d / "leak.txt", delimiter="|", encoding="latin-1"),
        True,
    ),
    "comma-utf8-bom": (
        lambda f, d: write_delimited(f, d / "leak.csv", encoding="utf-8-sig"),
        True,
    ),
    "semicolon-no-header": (
        lambda f, d: write_delimited(f, d / "leak.csv", delimiter=";", header=False),
        False,
    ),
    "jsonl": (lambda f, d: write_jsonl(f, d / "leak.jsonl"), True),
    "json-array": (lambda f, d: write_json_array(f, d / "leak.json"), True),
    "json-under-key": (lambda f, d: write_json_array(f, d / "leak.json", under_key="users"), True),
}


@pytest.fixture(scope="module")
def operator() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    customers = make_customers(3_000, seed=11)
    leak = make_leak(customers, 2_500, overlap=0.3, seed=12)
    return customers, leak.frame, leak.truth


def _runtime(tmp_path: Path, leakwatch_env: Path) -> Runtime:
    settings = Settings()
    return Runtime(settings=settings, pepper=load_pepper(settings))


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_exposures_are_exactly_the_truth(
    shape: str,
    operator: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
    tmp_path: Path,
    leakwatch_env: Path,
) -> None:
    customers, leak, truth = operator
    writer, has_header = SHAPES[shape]
    rt = _runtime(tmp_path, leakwatch_env)
    customers.write_csv(tmp_path / "customers.csv")
    steps.load_customer_file(rt, tmp_path / "customers.csv")
    leak_dir = tmp_path / "leak"
    leak_dir.mkdir()
    writer(leak, leak_dir)

    report = steps.ingest_source(rt, str(leak_dir), "b1")
    assert report.errors == []
    assert report.rows_read == leak.height
    steps.match_breach(rt, "b1")
    steps.export_exposures(rt, "b1", tmp_path / "exposures.csv", "csv")
    got = pl.read_csv(tmp_path / "exposures.csv", infer_schema=False)

    assert got.columns == ["customer_id", "matched_on", "categories", "risk"]
    columns = (
        ["customer_id", "matched_on", "categories"] if has_header else ["customer_id", "matched_on"]
    )
    assert got.select(columns).sort("customer_id").equals(truth.select(columns).sort("customer_id"))
    assert set(got["risk"]) <= {"low", "medium", "high"}


def test_same_file_twice_adds_nothing(
    operator: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame], tmp_path: Path, leakwatch_env: Path
) -> None:
    _, leak, _ = operator
    rt = _runtime(tmp_path, leakwatch_env)
    write_delimited(leak, tmp_path / "a.csv")
    write_delimited(leak, tmp_path / "copy-with-another-name.csv")
    first = steps.ingest_source(rt, str(tmp_path / "a.csv"), "b1")
    again = steps.ingest_source(rt, str(tmp_path / "a.csv"), "b1")
    renamed = steps.ingest_source(rt, str(tmp_path / "copy-with-another-name.csv"), "b1")
    assert first.artifacts == 1 and first.keys > 0
    assert again.artifacts == 0 and again.skipped_known == 1
    assert renamed.artifacts == 0 and renamed.skipped_known == 1
