"""Spreadsheets (xlsx, ods) via python-calamine: one all-string Table per sheet holding data.

calamine reads a whole sheet into memory, so the workbook's XML is checked first, streamed
from the zip with caps: a part larger than ``MAX_XML_BYTES`` (a zip bomb), any DTD (entity
expansion, "billion laughs"), or an xlsx sheet whose cell references span more than
``MAX_SHEET_CELLS`` cells is refused with an InputError before calamine sees it.
Spreadsheets drop leading zeros of numbers typed as numbers (``0612…`` becomes ``612…``):
that loss happened before the leak reached us; the phone normaliser reads 9-digit French
numbers back.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import polars as pl
from python_calamine import CalamineError, CalamineWorkbook

from connectors.base import Artifact, RowReject, Table, record_batches
from connectors.delimited import _looks_like_header, clean_names
from core.errors import InputError

__all__ = ["MAX_SHEET_CELLS", "MAX_XML_BYTES", "read_spreadsheet", "spreadsheet_kind"]

# Not (yet) in Settings: parsers do not receive settings. A sheet of 50 M cells takes a few GB
# in calamine; leaks bigger than that arrive as CSV or SQL.
MAX_SHEET_CELLS = 50_000_000
MAX_XML_BYTES = 1024**3
_CHUNK = 1024 * 1024
_TAIL = 64
_ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"
_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_CELL_REF = re.compile(rb'<c\b[^>]{0,200}?\br="([A-Z]{1,3})([0-9]{1,7})"')
_CELL = re.compile(rb"<c[\s>/]")
_SAMPLE_ROWS = 500

Kind = Literal["xlsx", "ods"]
Cell = int | float | str | bool | dt.time | dt.date | dt.datetime | dt.timedelta


def spreadsheet_kind(path: Path) -> Kind | None:
    """``xlsx`` or ``ods`` when a zip file is a spreadsheet, else None (by content, not name)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "[Content_Types].xml" in names and "xl/workbook.xml" in names:
                return "xlsx"
            if "mimetype" in names and "content.xml" in names:
                with zf.open("mimetype") as f:
                    if f.read(len(_ODS_MIME)) == _ODS_MIME:
                        return "ods"
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError):
        return None
    return None


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n


def _check_part(zf: zipfile.ZipFile, info: zipfile.ZipInfo, display: str, sheet: bool) -> None:
    """Stream one XML part: refuse a DTD, an oversized part, or (sheets) too large a grid."""
    where = f"{display}!{info.filename}"
    total = max_row = max_col = cells = 0
    tail = b""
    try:
        with zf.open(info) as f:
            while True:
                chunk = f.read(_CHUNK)
                final = not chunk
                total += len(chunk)
                if total > MAX_XML_BYTES:
                    raise InputError(
                        f"spreadsheet XML part larger than {MAX_XML_BYTES} bytes (refused)",
                        file=where,
                    )
                buf = tail + chunk
                if _DTD.search(buf):
                    raise InputError(
                        "XML document type declaration in a spreadsheet "
                        "(entity expansion bomb refused)",
                        file=where,
                    )
                cut = len(buf) if final else max(0, len(buf) - _TAIL)
                if sheet:
                    for m in _CELL_REF.finditer(buf, 0, len(buf)):
                        if m.start() >= cut:
                            break
                        max_col = max(max_col, _column_number(m.group(1)))
                        max_row = max(max_row, int(m.group(2)))
                    cells += sum(1 for m in _CELL.finditer(buf) if m.start() < cut)
                    if max(max_row * max_col, cells) > MAX_SHEET_CELLS:
                        raise InputError(
                            f"sheet larger than {MAX_SHEET_CELLS} cells (refused)", file=where
                        )
                tail = buf[cut:]
                if final:
                    return
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
        raise InputError(
            f"unreadable spreadsheet part ({type(exc).__name__})", file=where
        ) from None


def _precheck(path: Path, kind: Kind, display: str) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename
                if not name.endswith((".xml", ".rels")):
                    continue
                is_sheet = kind == "xlsx" and name.startswith("xl/worksheets/")
                _check_part(zf, info, display, is_sheet)
    except zipfile.BadZipFile:
        raise InputError("unreadable spreadsheet (corrupt zip)", file=display) from None


def _text(cell: Cell) -> str | None:
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float):
        return str(int(cell)) if cell.is_integer() and abs(cell) < 1e16 else repr(cell)
    if isinstance(cell, int):
        return str(cell)
    if isinstance(cell, str):
        return cell if cell.strip() else None
    if isinstance(cell, dt.datetime):
        return cell.isoformat(sep=" ") if cell.time() != dt.time() else cell.date().isoformat()
    if isinstance(cell, dt.date | dt.time):
        return cell.isoformat()
    return str(cell)


def _sheet_table(
    wb: CalamineWorkbook, name: str, display: str, batch_rows: int, kind: Kind
) -> Table | None:
    try:
        sheet = wb.get_sheet_by_name(name)
    except CalamineError as exc:
        raise InputError(
            f"unreadable sheet ({type(exc).__name__})", file=f"{display}!{name}"
        ) from None
    if sheet.height * sheet.width > MAX_SHEET_CELLS:
        raise InputError(
            f"sheet larger than {MAX_SHEET_CELLS} cells (refused)", file=f"{display}!{name}"
        )
    rows = sheet.iter_rows()
    head: list[list[str | None]] = []
    for raw in rows:
        values = [_text(c) for c in raw]
        if not head and not any(values):
            continue  # blank rows above the data
        head.append(values)
        if len(head) >= _SAMPLE_ROWS:
            break
    if not head:
        return None
    width = max(len(r) for r in head)
    sample = [[v or "" for v in r] + [""] * (width - len(r)) for r in head]
    has_header = _looks_like_header(sample)
    columns = clean_names(sample[0]) if has_header else [f"col{i}" for i in range(1, width + 1)]
    data_head = head[1:] if has_header else head

    def produce(table: Table) -> Iterator[pl.DataFrame]:
        n = len(columns)

        def remaining() -> Iterator[list[str | None]]:
            yield from data_head
            for raw in rows:
                yield [_text(c) for c in raw]

        def records() -> Iterator[tuple[int, list[str | None]]]:
            row_no = 0
            for values in remaining():
                if not any(values):
                    continue  # empty spreadsheet rows are layout, not records
                row_no += 1
                if len(values) > n:
                    if any(values[n:]):
                        table.rejects.append(
                            RowReject(row=row_no, reason=f"expected {n} cells, found more")
                        )
                        continue
                    values = values[:n]
                yield row_no, values + [None] * (n - len(values))

        yield from record_batches(table, records(), batch_rows)

    return Table(
        name=name,
        columns=columns,
        has_header=has_header,
        parser=f"spreadsheet:{kind}",
        produce=produce,
    )


def read_spreadsheet(artifact: Artifact, batch_rows: int) -> Iterator[Table]:
    """Every sheet with data as a Table (named after the sheet), after the safety checks."""
    display = artifact.display
    kind = spreadsheet_kind(artifact.path)
    if kind is None:
        raise InputError(
            "zip file that is neither an archive to expand nor a spreadsheet", file=display
        )
    _precheck(artifact.path, kind, display)
    try:
        wb = CalamineWorkbook.from_path(str(artifact.path))
    except (CalamineError, OSError, ValueError) as exc:
        raise InputError(f"unreadable spreadsheet ({type(exc).__name__})", file=display) from None
    found = False
    with wb:
        for name in wb.sheet_names:
            table = _sheet_table(wb, name, display, batch_rows, kind)
            if table is not None:
                found = True
                yield table
    if not found:
        raise InputError("spreadsheet holds no data", file=display)
