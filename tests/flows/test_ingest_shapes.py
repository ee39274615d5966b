"""End to end: a leak as an SQL dump, a spreadsheet, Parquet or inside archives gives the exact truth;
hostile archives are refused by name while the rest of the source is still ingested."""

from __future__ import annotations

import io
import struct
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import openpyxl
import polars as pl
import py7zr
import pytest

from core.settings import Settings
from flows import steps
from flows.context import Runtime, load_pepper
from synthetic import make_customers, make_leak

sys.path.insert(0, str(Path(__file__).parents[1] / "connectors"))
from test_sqldump import write_mysql_dump, write_pg_dump

Writer = Callable[[pl.DataFrame, Path], Path]
PASSWORD = "infected"


def _csv_bytes(frame: pl.DataFrame) -> bytes:
    return frame.write_csv().encode("utf-8")


def _xlsx(frame: pl.DataFrame, d: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "export"
    ws.append(frame.columns)
    for row in frame.iter_rows():
        ws.append(list(row))
    wb.save(d / "leak.xlsx")
    return d / "leak.xlsx"


def _zip_of_csvs(frame: pl.DataFrame, d: Path) -> Path:
    half = frame.height // 2
    with zipfile.ZipFile(d / "leak.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("part1.csv", _csv_bytes(frame.head(half)))
        zf.writestr("sub/part2.csv", _csv_bytes(frame.tail(frame.height - half)))
    return d / "leak.zip"


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


def _zipcrypto(data: bytes, password: bytes, check: int) -> bytes:
    """Traditional PKWARE encryption (what ``zip -P`` writes): zipfile reads it, cannot write it."""
    table = _crc_table()
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(byte: int) -> None:
        keys[0] = (keys[0] >> 8) ^ table[(keys[0] ^ byte) & 0xFF]
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = (keys[2] >> 8) ^ table[(keys[2] ^ (keys[1] >> 24)) & 0xFF]

    for byte in password:
        update(byte)
    out = bytearray()
    for byte in bytes(11) + bytes([check]) + data:
        temp = (keys[2] | 2) & 0xFFFF
        out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
        update(byte)
    return bytes(out)


def _zip_with_password(frame: pl.DataFrame, d: Path) -> Path:
    data = _csv_bytes(frame)
    crc = zlib.crc32(data)
    body = _zipcrypto(data, PASSWORD.encode(), crc >> 24)
    name = b"leak.csv"
    fields = (crc, len(body), len(data), len(name), 0)
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 1, 0, 0, 0, *fields) + name
    central = (
        struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 1, 0, 0, 0, *fields, 0, 0, 0, 0, 0)
        + name
    )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(body), 0)
    (d / "locked.zip").write_bytes(local + body + central + end)
    return d / "locked.zip"


def _tar_gz(frame: pl.DataFrame, d: Path) -> Path:
    data = _csv_bytes(frame)
    with tarfile.open(d / "leak.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("dump/users.csv")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return d / "leak.tar.gz"


def _seven(frame: pl.DataFrame, d: Path) -> Path:
    with py7zr.SevenZipFile(d / "leak.7z", "w", password=PASSWORD) as z:
        z.writestr(_csv_bytes(frame), "users.csv")
    return d / "leak.7z"


def _zip_in_tar_gz(frame: pl.DataFrame, d: Path) -> Path:
    _zip_of_csvs(frame, d)
    data = (d / "leak.zip").read_bytes()
    (d / "leak.zip").unlink()
    with tarfile.open(d / "outer.tgz", "w:gz") as tf:
        info = tarfile.TarInfo("inner/leak.zip")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return d / "outer.tgz"


def _folder_of_archives(frame: pl.DataFrame, d: Path) -> Path:
    third = frame.height // 3
    folder = d / "folder"
    (folder / "nested").mkdir(parents=True)
    write_mysql_dump(frame.head(third), folder / "a.sql")
    part = frame.slice(third, third)
    with zipfile.ZipFile(folder / "nested" / "b.zip", "w") as zf:
        zf.writestr("b.csv", _csv_bytes(part))
    _tar_gz(frame.slice(2 * third), folder)
    return folder


SHAPES: dict[str, tuple[Writer, str | None]] = {
    "mysql-dump": (lambda f, d: write_mysql_dump(f, d / "dump.sql"), None),
    "postgres-dump": (lambda f, d: write_pg_dump(f, d / "dump.sql"), None),
    "xlsx": (_xlsx, None),
    "parquet": (lambda f, d: (f.write_parquet(d / "leak.parquet"), d / "leak.parquet")[1], None),
    "zip-of-csvs": (_zip_of_csvs, None),
    "zip-with-password": (_zip_with_password, PASSWORD),
    "tar-gz": (_tar_gz, None),
    "7z-with-password": (_seven, PASSWORD),
    "zip-in-tar-gz": (_zip_in_tar_gz, None),
    "folder-of-archives": (_folder_of_archives, None),
}


@pytest.fixture(scope="module")
def operator() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    customers = make_customers(1_500, seed=21)
    leak = make_leak(customers, 1_200, overlap=0.3, seed=22)
    return customers, leak.frame, leak.truth


def _runtime() -> Runtime:
    settings = Settings()
    return Runtime(settings=settings, pepper=load_pepper(settings))


def _export(rt: Runtime, tmp_path: Path) -> pl.DataFrame:
    steps.match_breach(rt, "b1")
    steps.export_exposures(rt, "b1", tmp_path / "exposures.csv", "csv")
    return pl.read_csv(tmp_path / "exposures.csv", infer_schema=False)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_shape_gives_exactly_the_truth(
    shape: str,
    operator: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
    tmp_path: Path,
    leakwatch_env: Path,
) -> None:
    customers, leak, truth = operator
    rt = _runtime()
    customers.write_csv(tmp_path / "customers.csv")
    steps.load_customer_file(rt, tmp_path / "customers.csv")
    d = tmp_path / "in"
    d.mkdir()
    writer, password = SHAPES[shape]
    source = writer(leak, d)

    report = steps.ingest_source(rt, str(source), "b1", password=password)
    assert report.errors == []
    assert report.rows_read == leak.height
    got = _export(rt, tmp_path)
    cols = ["customer_id", "matched_on", "categories"]
    assert got.select(cols).sort("customer_id").equals(truth.select(cols).sort("customer_id"))
    leftovers = [p for p in (tmp_path / "work").rglob("*") if p.is_file()]
    assert leftovers == [], "extracted and spilled files are removed after ingestion"


def test_hostile_members_are_refused_and_the_rest_ingested(
    operator: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
    tmp_path: Path,
    leakwatch_env: Path,
) -> None:
    customers, leak, truth = operator
    rt = _runtime()
    customers.write_csv(tmp_path / "customers.csv")
    steps.load_customer_file(rt, tmp_path / "customers.csv")
    box = tmp_path / "box"
    box.mkdir()
    src = box / "hostile.zip"
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("../../evil.csv", _csv_bytes(leak))
        zf.writestr("/tmp/evil-absolute.csv", _csv_bytes(leak))
        zf.writestr("leak.csv", _csv_bytes(leak))
        with zf.open("zeros.csv", "w") as w:
            for _ in range(64):
                w.write(bytes(1 << 20))
    report = steps.ingest_source(rt, str(src), "b1")
    assert sorted(report.errors) == sorted(
        [
            f"{src}!../../evil.csv: member path contains '..' (escapes the extraction folder)",
            f"{src}!/tmp/evil-absolute.csv: member path is absolute (escapes the extraction "
            "folder)",
            f"{src}!zeros.csv: decompression bomb: member expands more than 200 times its "
            "compressed size",
        ]
    )
    assert report.artifacts == 1 and report.rows_read == leak.height
    assert not (tmp_path / "evil.csv").exists() and not (tmp_path.parent / "evil.csv").exists()
    assert not Path("/tmp/evil-absolute.csv").exists()
    got = _export(rt, tmp_path)
    cols = ["customer_id", "matched_on", "categories"]
    assert got.select(cols).sort("customer_id").equals(truth.select(cols).sort("customer_id"))
