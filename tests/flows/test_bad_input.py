"""Bad input names the file, row and reason, and everything else is still processed."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from core.settings import Settings
from flows import steps
from flows.context import Runtime, load_pepper
from synthetic import make_customers, make_leak, write_delimited


def test_bad_files_are_refused_and_good_ones_processed(leakwatch_env: Path, tmp_path: Path) -> None:
    settings = Settings()
    rt = Runtime(settings=settings, pepper=load_pepper(settings))
    customers = make_customers(500, seed=31)
    leak = make_leak(customers, 400, overlap=0.5, seed=32)
    customers.write_csv(tmp_path / "customers.csv")
    steps.load_customer_file(rt, tmp_path / "customers.csv")

    folder = tmp_path / "leak"
    folder.mkdir()
    write_delimited(leak.frame, folder / "good.csv")
    (folder / "empty.csv").write_bytes(b"")
    (folder / "binary.dat").write_bytes(bytes(range(256)) * 64)
    # Broken quoting in the middle of an otherwise good file.
    lines = (folder / "good.csv").read_text().splitlines()
    broken = [*lines[:11], 'x,"unterminated,quote', *lines[11:21]]
    (folder / "broken.csv").write_text("\n".join(broken) + "\n")
    # A column of garbage next to a good phone column.
    garbage = pl.DataFrame(
        {"telephone": ["0612345678", "garbage!", "06 12 34 56 79"], "email": ["?", "@@", "x"]}
    )
    garbage.write_csv(folder / "garbage.csv")

    report = steps.ingest_source(rt, str(folder), "bad")
    errors = "\n".join(report.errors)
    assert "empty.csv" in errors
    assert "binary.dat" in errors
    # The good file and the good rows of the others went in.
    assert (
        report.rows_read >= leak.frame.height + 10 + 3 - 10
    )  # lines after an open quote may be one record
    assert report.rows_rejected >= 1  # the broken record, counted with its row
    assert report.values_rejected >= 4  # the garbage values
    steps.match_breach(rt, "bad")
    steps.export_exposures(rt, "bad", tmp_path / "x.csv", "csv")
    assert pl.read_csv(tmp_path / "x.csv", infer_schema=False).height == leak.truth.height
