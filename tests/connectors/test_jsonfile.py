"""JSON leaks: lines with a bad line, arrays, records under a key, flattening, deep nesting."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from connectors.base import ROW
from connectors.files import acquire_path
from connectors.parse import parse_artifact
from core.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))
from helpers import parse_file

RECORDS = [
    {"email": "a@example.fr", "phone": "0612345678", "address": {"city": "Lyon", "zip": "69001"}},
    {"email": "b@example.fr", "id": 12345678901234567890123, "score": 1.50, "tags": [1, "x"]},
]


def test_json_lines_with_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    lines = [json.dumps(RECORDS[0]), "{not json", "", json.dumps(RECORDS[1]), "[1, 2]"]
    path.write_text("\n".join(lines) + "\n")
    table, frame = parse_file(path, tmp_path)
    assert table.parser == "json:ndjson"
    assert frame.get_column(ROW).to_list() == [1, 3]
    assert [(r.row, r.reason) for r in table.rejects] == [
        (2, "invalid JSON"),
        (4, "record is not a JSON object"),
    ]
    assert frame.get_column("address.city").to_list() == ["Lyon", None]


def test_json_array_flattens_and_keeps_numbers_exact(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(
        '[{"email": "a@example.fr", "phone": "0612345678", "address": {"city": "Lyon"}},'
        ' {"email": "b@example.fr", "id": 12345678901234567890123, "score": 1.50,'
        ' "tags": [1, "x"], "ok": true, "none": null}]'
    )
    table, frame = parse_file(path, tmp_path)
    assert table.columns == ["email", "phone", "address.city", "id", "score", "tags", "ok", "none"]
    row = frame.row(1, named=True)
    assert row["id"] == "12345678901234567890123"
    assert row["score"] == "1.50"
    assert json.loads(row["tags"]) == [1, "x"]
    assert row["ok"] == "true"
    assert row["none"] is None
    assert frame.get_column("phone").to_list() == ["0612345678", None]


@pytest.mark.parametrize("key", ["data", "users"])
def test_records_under_a_key(tmp_path: Path, key: str) -> None:
    path = tmp_path / "k.json"
    doc = {"meta": {"count": 2}, "labels": ["x"], key: RECORDS, "tail": 1}
    path.write_text(json.dumps(doc, indent=2))
    table, frame = parse_file(path, tmp_path)
    assert frame.get_column("email").to_list() == ["a@example.fr", "b@example.fr"]
    assert table.rows_read == 2


def test_streamed_array_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    n = 30_000
    with path.open("w") as f:
        f.write('{"data": [')
        f.write(",".join(json.dumps({"i": i, "pad": "y" * 60}) for i in range(n)))
        f.write("]}")
    (artifact,) = acquire_path(path)
    (table,) = parse_artifact(artifact, batch_rows=10_000, work_dir=tmp_path)
    batches = list(table.batches())
    assert [b.height for b in batches] == [10_000] * 3
    assert batches[-1].get_column("i")[-1] == str(n - 1)


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deep_nesting_is_input_error(tmp_path: Path, opener: str) -> None:
    path = tmp_path / "deep.json"
    closer = "]" if opener == "[" else "}"
    path.write_text(opener * 100_000 + "1" + closer * 100_000)
    (artifact,) = acquire_path(path)

    def consume() -> None:
        for table in parse_artifact(artifact, work_dir=tmp_path):
            list(table.batches())

    with pytest.raises(InputError) as info:
        consume()
    assert info.value.file == str(path)


def test_object_without_records_is_input_error(tmp_path: Path) -> None:
    path = tmp_path / "cfg.json"
    path.write_text('{"a": 1,\n "b": [1, 2]}')
    (artifact,) = acquire_path(path)
    with pytest.raises(InputError, match="no array of objects"):
        list(parse_artifact(artifact, work_dir=tmp_path))
