"""The demo runs the whole response through Prefect and its results equal the synthetic truth."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console

pytestmark = pytest.mark.prefect


def test_demo_produces_exact_results(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.demo import run_demo

    monkeypatch.delenv("LEAKWATCH_PEPPER", raising=False)
    buffer = io.StringIO()
    output = tmp_path / "demo-output"
    run_demo(
        output,
        n_customers=2_000,
        n_leaked=1_500,
        seed=5,
        console=Console(file=buffer, width=200),
    )
    text = buffer.getvalue()
    exposures = pl.read_csv(output / "exposures.csv", infer_schema=False)
    assert exposures.height > 0
    assert f"{exposures.height:,} of {exposures.height:,} exposed customers found" in " ".join(
        text.split()
    )
    assert "0 missed, 0 wrongly flagged" in " ".join(text.split())
    assert (output / "dossier" / "dossier.json").exists()
    assert (output / "evidence" / "manifest.json.asc").exists()
    assert (output / "report.html").stat().st_size > 1_000
    emails = len(list((output / "outbox").glob("*.eml")))
    assert 0 < emails <= exposures.height
