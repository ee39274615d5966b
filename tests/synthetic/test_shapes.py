"""The leak writers: every shape reads back to the same values."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import polars as pl
import pytest

from synthetic import (
    ENCODINGS,
    make_customers,
    make_leak,
    shapes,
    write_delimited,
    write_json_array,
    write_jsonl,
)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    leak = make_leak(make_customers(500, seed=4), 400, seed=4).frame
    # Values a writer must quote: delimiters, quotes, a newline, and non-ASCII text.
    tricky = pl.DataFrame(
        {c: ["a,b;c\td", 'say "hi"', "two\nlines", "Noël Müller àéçÿ", ""] for c in leak.columns}
    )
    return pl.concat([leak, tricky])


def _rows(frame: pl.DataFrame) -> list[list[str]]:
    """Rows as text readers see them: a null and an empty string are both empty."""
    return [[v or "" for v in row] for row in frame.iter_rows()]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimited_round_trips(
    frame: pl.DataFrame,
    tmp_path: Path,
    encoding: str,
    delimiter: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shapes, "_CHUNK_ROWS", 97)  # several chunks, one header, one BOM
    path = write_delimited(frame, tmp_path / "leak.csv", delimiter=delimiter, encoding=encoding)
    raw = path.read_bytes()
    if encoding == "utf-16":
        assert raw.startswith(b"\xff\xfe")
        assert raw.count(b"\xff\xfe") == 1
    if encoding == "utf-8-sig":
        assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode(encoding)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    assert rows[0] == frame.columns
    assert rows[1:] == _rows(frame)
    back = pl.read_csv(io.StringIO(text), separator=delimiter, infer_schema=False)
    assert back.equals(frame)


def test_delimited_without_header(frame: pl.DataFrame, tmp_path: Path) -> None:
    path = write_delimited(frame, tmp_path / "leak.txt", encoding="cp1252", header=False)
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("cp1252"), newline="")))
    assert rows == _rows(frame)


def test_cp1252_refuses_what_it_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(UnicodeEncodeError):
        write_delimited(pl.DataFrame({"nom": ["Ωmega"]}), tmp_path / "x.csv", encoding="latin-1")


def test_jsonl_round_trips(frame: pl.DataFrame, tmp_path: Path) -> None:
    path = write_jsonl(frame, tmp_path / "leak.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == frame.to_dicts()
    assert pl.read_ndjson(path, schema=frame.schema).equals(frame)


@pytest.mark.parametrize("under_key", [None, "customers"])
def test_json_array_round_trips(
    frame: pl.DataFrame, tmp_path: Path, under_key: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shapes, "_CHUNK_ROWS", 97)
    path = write_json_array(frame, tmp_path / "leak.json", under_key=under_key)
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = data if under_key is None else data[under_key]
    assert rows == frame.to_dicts()


def test_empty_frame_writes_header_or_empty_array(tmp_path: Path) -> None:
    empty = pl.DataFrame(schema={"nom": pl.String, "email": pl.String})
    path = write_delimited(empty, tmp_path / "e.csv", encoding="utf-16")
    assert path.read_bytes().decode("utf-16").strip() == "nom,email"
    assert json.loads(write_json_array(empty, tmp_path / "e.json").read_text()) == []
