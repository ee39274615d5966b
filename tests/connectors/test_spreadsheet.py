"""Spreadsheets: xlsx sheets as string tables, numbers and dates as text, XML bombs refused."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from connectors.base import ROW, Table
from connectors.files import acquire_path
from connectors.parse import parse_artifact
from core.errors import InputError


def _parse(path: Path, work: Path) -> list[tuple[Table, pl.DataFrame]]:
    (artifact,) = acquire_path(path)
    out = []
    for table in parse_artifact(artifact, batch_rows=2, work_dir=work):
        batches = list(table.batches())
        assert all(b.height <= 2 and b.columns == [ROW, *table.columns] for b in batches)
        out.append((table, pl.concat(batches)))
    return out


def _workbook(path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "clients"
    ws.append(["email", "telephone", "date_naissance", "score"])
    ws.append(["a@example.fr", 612345678, dt.date(1980, 5, 17), 1.5])
    ws.append(["b@example.fr", "0612345679", dt.datetime(1990, 1, 2, 0, 0), 3.0])
    ws.append([None, None, None, None])
    ws.append(["c@example.fr", None, None, 7])
    wb.create_sheet("vide")
    other = wb.create_sheet("notes")
    other.append(["x", "y"])
    other.append(["1", "2"])
    wb.save(path)
    return path


def test_xlsx_sheets_become_string_tables(tmp_path: Path) -> None:
    (t1, f1), (t2, f2) = _parse(_workbook(tmp_path / "leak.xlsx"), tmp_path / "work")
    assert t1.name == "clients" and t1.parser == "spreadsheet:xlsx" and t1.has_header
    assert f1.drop(ROW).rows() == [
        ("a@example.fr", "612345678", "1980-05-17", "1.5"),  # the leading zero was lost by Excel
        ("b@example.fr", "0612345679", "1990-01-02", "3"),
        ("c@example.fr", None, None, "7"),
    ]
    assert f1[ROW].to_list() == [1, 2, 3] and t1.rows_read == 3
    assert t2.name == "notes" and f2.height == 1


def _with_part(src: Path, dst: Path, name: str, data: bytes) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, data if info.filename == name else zin.read(info))
        if name not in zin.namelist():
            zout.writestr(name, data)
    return dst


def test_billion_laughs_shared_strings_is_refused(tmp_path: Path) -> None:
    lol = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE sst [{lol}]>'
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        "<si><t>&lol9;</t></si></sst>"
    ).encode()
    path = _with_part(
        _workbook(tmp_path / "ok.xlsx"), tmp_path / "bomb.xlsx", "xl/sharedStrings.xml", bomb
    )
    with pytest.raises(InputError) as err:
        _parse(path, tmp_path / "work")
    assert str(err.value) == (
        f"{path}!xl/sharedStrings.xml: XML document type declaration in a spreadsheet "
        "(entity expansion bomb refused)"
    )


def test_huge_sparse_sheet_is_refused_before_loading(tmp_path: Path) -> None:
    src = _workbook(tmp_path / "ok.xlsx")
    with zipfile.ZipFile(src) as zf:
        sheet = zf.read("xl/worksheets/sheet1.xml").decode()
    far = '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>'
    sheet = re.sub(r"</sheetData>", far + "</sheetData>", sheet)
    path = _with_part(src, tmp_path / "sparse.xlsx", "xl/worksheets/sheet1.xml", sheet.encode())
    with pytest.raises(InputError, match=r"sheet1\.xml: sheet larger than 50000000 cells"):
        _parse(path, tmp_path / "work")
