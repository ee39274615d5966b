"""Delimited leaks: delimiters x encodings x header, quoting, rejects, batches, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import ROW
from connectors.delimited import FIELD_CAP
from connectors.files import acquire_path
from connectors.parse import parse_artifact
from core.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))
from helpers import parse_file

ROWS = [
    ("Hélène", "0612345678", "helene@example.fr"),
    ("Zoë Ærø", "+33712345678", "zoe@example.com"),
    ("Bob", "0033612345678", ""),
]
HEADER = ("prénom", "téléphone", "email")


def _text(delim: str, header: bool) -> str:
    lines = [delim.join(HEADER)] if header else []
    lines += [delim.join(r) for r in ROWS]
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize("delim", [",", ";", "\t", "|"])
@pytest.mark.parametrize(
    "encoding", ["utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16", "utf-16-le", "utf-16-be"]
)
@pytest.mark.parametrize("header", [True, False])
def test_delimiters_encodings_header(
    tmp_path: Path, delim: str, encoding: str, header: bool
) -> None:
    path = tmp_path / "leak.csv"
    path.write_bytes(_text(delim, header).encode(encoding))
    work = tmp_path / "work"
    table, frame = parse_file(path, work)
    assert table.has_header is header
    assert table.columns == (list(HEADER) if header else ["col1", "col2", "col3"])
    got = [tuple(v or "" for v in r[1:]) for r in frame.rows()]
    assert got == ROWS
    assert frame.get_column(ROW).to_list() == [1, 2, 3]
    assert table.rows_read == 3
    assert table.rejects == []
    assert not work.exists() or list(work.iterdir()) == []  # temp transcodes removed


def test_embedded_quotes_and_newlines(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text(
        'id,comment,phone\n1,"a, ""quoted"" text",0612345678\n2,"two\nlines",0712345678\n3,x,0\n',
        encoding="utf-8",
    )
    table, frame = parse_file(path, tmp_path)
    assert frame.get_column("comment").to_list() == ['a, "quoted" text', "two\nlines", "x"]
    assert frame.get_column(ROW).to_list() == [1, 2, 3]
    assert table.rejects == []


def test_ragged_rows_rejected_rest_parses(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("id,email,phone\n1,a@b.fr,06\n2,c@d.fr\n3,e@f.fr,07,extra\n4,g@h.fr,08\n")
    table, frame = parse_file(path, tmp_path)
    assert frame.get_column("id").to_list() == ["1", "4"]
    assert frame.get_column(ROW).to_list() == [1, 4]
    assert [(r.row, r.reason) for r in table.rejects] == [
        (2, "expected 3 fields, found 2"),
        (3, "expected 3 fields, found 4"),
    ]
    assert table.rows_read + len(table.rejects) == 4


def test_broken_quoting_fast_and_slow_paths(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    # row 2 has text after a closing quote; row 4 spans two lines; row 6 never closes its quote
    path.write_text(
        'id,name,phone\n1,a,06\n2,"ab"x,07\n3,c,08\n4,"multi\nline",09\n5,e,10\n6,"open,11\n'
    )
    table, frame = parse_file(path, tmp_path)
    assert frame.get_column("id").to_list() == ["1", "3", "4", "5"]
    assert frame.get_column(ROW).to_list() == [1, 3, 4, 5]
    assert frame.get_column("name").to_list()[2] == "multi\nline"
    reasons = {r.row: r.reason for r in table.rejects}
    assert reasons[2] == "broken quoting"
    assert reasons[6].startswith("broken quoting")
    assert table.rows_read + len(table.rejects) == 6
    for r in table.rejects:
        assert "open" not in r.reason
        assert "ab" not in r.reason


def test_field_cap_rejects_record_not_file(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    big = "x" * (FIELD_CAP + 10)
    path.write_text(f"id,blob\n1,ok\n2,{big}\n3,ok\n")
    table, frame = parse_file(path, tmp_path)
    assert frame.get_column("id").to_list() == ["1", "3"]
    assert [(r.row, r.column) for r in table.rejects] == [(2, "blob")]


def test_invalid_utf8_bytes_keep_rows(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    body = b"".join(
        b"%d,nom\xc3\xa9%s,06\n" % (i, b"\xff" if i % 7 == 0 else b"") for i in range(200)
    )
    path.write_bytes(b"id,name,phone\n" + body)
    table, frame = parse_file(path, tmp_path)
    assert frame.height == 200
    assert table.rejects == []


def test_leading_zeros_and_empty_fields(tmp_path: Path) -> None:
    path = tmp_path / "z.csv"
    path.write_text("customer_id,phone,iban\n000123,0612345678,\n")
    _, frame = parse_file(path, tmp_path)
    assert frame.row(0) == (1, "000123", "0612345678", None)


def test_batches_bounded(tmp_path: Path) -> None:
    path = tmp_path / "many.csv"
    path.write_text("id,phone\n" + "".join(f"{i},06{i:08d}\n" for i in range(5000)))
    (artifact,) = acquire_path(path)
    (table,) = parse_artifact(artifact, batch_rows=1000, work_dir=tmp_path)
    batches = list(table.batches())
    assert [b.height for b in batches] == [1000] * 5
    assert batches[3].get_column(ROW).to_list() == list(range(3001, 4001))
    assert batches[4].get_column("phone")[-1] == "0600004999"
    assert table.rows_read == 5000


def test_batches_bounded_on_slow_path(tmp_path: Path) -> None:
    path = tmp_path / "slow.csv"
    path.write_text('id,note\n1,"a\nb"\n' + "".join(f"{i},n{i}\n" for i in range(2, 2501)))
    (artifact,) = acquire_path(path)
    (table,) = parse_artifact(artifact, batch_rows=1000, work_dir=tmp_path)
    batches = list(table.batches())
    assert [b.height for b in batches] == [1000, 1000, 500]
    assert batches[2].get_column(ROW).to_list() == list(range(2001, 2501))


def test_empty_and_binary_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    binary = tmp_path / "blob.csv"
    binary.write_bytes(bytes(range(256)) * 40)
    for path in (empty, binary):
        (artifact,) = acquire_path(path)
        with pytest.raises(InputError) as info:
            list(parse_artifact(artifact, work_dir=tmp_path))
        assert info.value.file == str(path)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
            st.text(alphabet="0123456789+ ", max_size=12),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_roundtrip_any_text(tmp_path: Path, rows: list[tuple[str, str]]) -> None:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["name", "phone"])
    writer.writerows(rows)
    path = tmp_path / "h.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    table, frame = parse_file(path, tmp_path / "w")
    assert table.rejects == []
    assert [(a or "", b or "") for _, a, b in frame.rows()] == rows
