"""The customer-file reader (CSV, Parquet) and file/folder acquisition."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from connectors.base import ROW
from connectors.customers import CUSTOMER_COLUMNS, OPTIONAL_CUSTOMER_COLUMNS, read_customers
from connectors.files import acquire_path
from core.errors import InputError

ALL = [ROW, *CUSTOMER_COLUMNS, *OPTIONAL_CUSTOMER_COLUMNS]
HEADER = "customer_id;email;phone;iban;first_name;last_name;language;extra\n"


def test_customers_csv_cp1252(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    rows = "".join(f"00{i};c{i}@ex.fr;0612345{i:03d};;Hélène;Dupré;fr;z\n" for i in range(25))
    path.write_bytes((HEADER + rows).encode("cp1252"))
    table = read_customers(path, batch_rows=10, work_dir=tmp_path / "w")
    batches = list(table.batches())
    assert [b.height for b in batches] == [10, 10, 5]
    frame = pl.concat(batches)
    assert frame.columns == ALL
    assert all(frame.schema[c] == pl.String for c in ALL[1:])
    assert frame.get_column("customer_id")[0] == "000"
    assert frame.get_column("first_name")[0] == "Hélène"
    assert frame.get_column("status").null_count() == 25
    assert table.rows_read == 25


def test_customers_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("customer_id,email,first_name,last_name\n1,a@b.fr,A,B\n")
    with pytest.raises(InputError) as info:
        read_customers(path, work_dir=tmp_path)
    assert "phone" in info.value.reason
    assert "iban" in info.value.reason
    assert "language" in info.value.reason
    assert info.value.file == str(path)


def test_customers_parquet(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    pl.DataFrame(
        {
            "customer_id": ["0001", "0002", "0003"],
            "email": ["a@b.fr", None, "c@d.fr"],
            "phone": ["0612345678", "0712345678", None],
            "iban": [None, None, "FR1420041010050500013M02606"],
            "first_name": ["A", "B", "C"],
            "last_name": ["X", "Y", "Z"],
            "language": ["fr", "en", "fr"],
            "status": ["active", "former", "active"],
            "score": [1, 2, 3],
        }
    ).write_parquet(path)
    table = read_customers(path, batch_rows=2, work_dir=tmp_path)
    batches = list(table.batches())
    assert [b.height for b in batches] == [2, 1]
    frame = pl.concat(batches)
    assert frame.columns == ALL
    assert frame.get_column(ROW).to_list() == [1, 2, 3]
    assert frame.get_column("customer_id").to_list() == ["0001", "0002", "0003"]
    assert frame.get_column("contract_end").null_count() == 3


def test_acquire_file_and_folder(tmp_path: Path) -> None:
    root = tmp_path / "drop"
    (root / "sub").mkdir(parents=True)
    (root / "b.csv").write_text("a,b\n1,2\n")
    (root / "sub" / "a.json").write_text('[{"a": 1}]')
    (root / "sub" / "z.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    (root / ".hidden").write_text("x")
    outside = tmp_path / "secret.txt"
    outside.write_text("no")
    (root / "link").symlink_to(outside)
    arts = list(acquire_path(root))
    assert [Path(a.source).relative_to(root).as_posix() for a in arts] == [
        "b.csv",
        "sub/a.json",
        "sub/z.jsonl",
    ]
    assert [a.media_type for a in arts] == ["text/csv", "application/json", "application/x-ndjson"]
    first = arts[0]
    assert first.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert first.size == 8
    assert first.acquired_at.tzinfo is not None
    (single,) = acquire_path(root / "b.csv")
    assert single.source == str(root / "b.csv")


def test_acquire_missing(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        list(acquire_path(tmp_path / "nope.csv"))
    assert info.value.file == str(tmp_path / "nope.csv")
