"""Archives: every format expands; every hostile member is refused by name and the rest goes on."""

from __future__ import annotations

import gzip
import io
import os
import struct
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import py7zr
import pytest

from connectors.acquire import AcquireOptions, Refusal, acquire
from connectors.base import Artifact
from core.settings import Settings

CSV = b"email,phone\na@example.fr,0612345678\n"


def _options(tmp_path: Path, password: str | None = None, **limits: float) -> AcquireOptions:
    settings = Settings(work_dir=tmp_path / "work", **limits)  # type: ignore[arg-type]
    return AcquireOptions(work_dir=settings.work_dir, settings=settings, password=password)


def _run(source: Path, options: AcquireOptions) -> tuple[dict[str, bytes], dict[str, str]]:
    """{display: content} of artifacts (read before moving on) and {display: reason}."""
    got: dict[str, bytes] = {}
    refused: dict[str, str] = {}
    for item in acquire(str(source), options):
        if isinstance(item, Refusal):
            refused[item.display] = item.reason
        else:
            assert isinstance(item, Artifact)
            assert item.path.resolve().is_relative_to(options.work_dir.resolve()) or (
                item.inner_path is None
            )
            got[item.display] = item.path.read_bytes()
    return got, refused


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _no_files_left(work: Path) -> None:
    leftovers = [p for p in (work / "extract").rglob("*") if p.is_file()] if work.exists() else []
    assert leftovers == [], "extracted members are deleted once consumed"


def test_zip_tar_gz_7z_and_nesting_expand(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tf:
        info = tarfile.TarInfo("data/users.csv")
        info.size = len(CSV)
        tf.addfile(info, io.BytesIO(CSV))
    leak = _zip(tmp_path / "leak.zip", {"inner.tar.gz": inner.getvalue(), "a.csv": CSV})
    (tmp_path / "one.csv.gz").write_bytes(gzip.compress(CSV))
    with py7zr.SevenZipFile(tmp_path / "s.7z", "w") as z:
        z.writestr(CSV, "x/b.csv")
    opts = _options(tmp_path)
    got, refused = _run(leak, opts)
    assert refused == {}
    assert got == {f"{leak}!inner.tar.gz/data/users.csv": CSV, f"{leak}!a.csv": CSV}
    got, refused = _run(tmp_path / "one.csv.gz", opts)
    assert got == {f"{tmp_path / 'one.csv.gz'}!one.csv": CSV} and refused == {}
    got, refused = _run(tmp_path / "s.7z", opts)
    assert got == {f"{tmp_path / 's.7z'}!x/b.csv": CSV} and refused == {}
    _no_files_left(opts.work_dir)


def test_zip_slip_absolute_and_duplicates_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../evil.csv", CSV)
        zf.writestr("/abs/evil2.csv", CSV)
        zf.writestr("C:/win/evil3.csv", CSV)
        zf.writestr("ok.csv", CSV)
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("ok.csv", b"second")
        link = zipfile.ZipInfo("link.csv")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    got, refused = _run(path, _options(tmp_path))
    assert got == {f"{path}!ok.csv": CSV}
    assert (
        refused
        == {
            f"{path}!../../evil.csv": "member path contains '..' (escapes the extraction folder)",
            f"{path}!/abs/evil2.csv": "member path is absolute (escapes the extraction folder)",
            f"{path}!C:/win/evil3.csv": "member path is absolute (escapes the extraction folder)",
            f"{path}!ok.csv": "duplicate member name (only the first is extracted)",
            f"{path}!link.csv": "symbolic link member (not followed)",
        }
        or len(refused) == 5
    )
    assert not (tmp_path.parent / "evil.csv").exists() and not Path("/abs/evil2.csv").exists()


def test_tar_links_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "links.tar"
    with tarfile.open(path, "w") as tf:
        sym = tarfile.TarInfo("escape")
        sym.type, sym.linkname = tarfile.SYMTYPE, "../../../etc"
        tf.addfile(sym)
        hard = tarfile.TarInfo("hard.csv")
        hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
        tf.addfile(hard)
        ok = tarfile.TarInfo("ok.csv")
        ok.size = len(CSV)
        tf.addfile(ok, io.BytesIO(CSV))
    got, refused = _run(path, _options(tmp_path))
    assert got == {f"{path}!ok.csv": CSV}
    assert refused == {
        f"{path}!escape": "symbolic link member (not followed)",
        f"{path}!hard.csv": "hard link member (not followed)",
    }


def _zeros(total: int) -> Iterator[bytes]:
    block = bytes(1 << 20)
    for _ in range(total // len(block)):
        yield block


def test_one_gigabyte_of_zeros_is_refused_early(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("zeros.csv", "w") as w:
            for block in _zeros(1 << 30):
                w.write(block)
        zf.writestr("ok.csv", CSV)
    assert path.stat().st_size < 2 * 1024 * 1024
    got, refused = _run(path, _options(tmp_path))
    assert got == {f"{path}!ok.csv": CSV}
    assert refused == {
        f"{path}!zeros.csv": "decompression bomb: member expands more than 200 times its "
        "compressed size"
    }
    _no_files_left(tmp_path / "work")


def test_gzip_bomb_and_size_limits(tmp_path: Path) -> None:
    path = tmp_path / "zeros.csv.gz"
    with gzip.open(path, "wb", compresslevel=9) as gz:
        for block in _zeros(64 << 20):
            gz.write(block)
    _, refused = _run(path, _options(tmp_path))
    assert list(refused.values()) == [
        "decompression bomb: member expands more than 200 times its compressed size"
    ]
    leak = _zip(tmp_path / "two.zip", {"a.csv": CSV * 40, "b.csv": CSV * 40})
    got, refused = _run(leak, _options(tmp_path, archive_max_total_bytes=len(CSV) * 50))
    assert list(got) == [f"{leak}!a.csv"]
    assert list(refused.values()) == [
        f"decompression bomb: archives expand to more than {len(CSV) * 50} bytes in total: "
        "the rest of the archive is not extracted"
    ]
    got, refused = _run(leak, _options(tmp_path, archive_max_member_bytes=len(CSV)))
    assert got == {} and len(refused) == 2


def test_hundred_levels_of_nesting_stop_at_the_depth_limit(tmp_path: Path) -> None:
    data = CSV
    name = "core.csv"
    for level in range(100):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr(name, data)
            if level == 99:
                zf.writestr("top.csv", CSV)
        data, name = buf.getvalue(), f"level{level}.zip"
    path = tmp_path / "deep.zip"
    path.write_bytes(data)
    got, refused = _run(path, _options(tmp_path))
    assert got == {f"{path}!top.csv": CSV}
    ((where, reason),) = refused.items()
    assert where == f"{path}!level98.zip/level97.zip/level96.zip/level95.zip/level94.zip"
    assert reason == "archive nested more than 5 levels deep: not opened"


def test_overlapping_zip_entries_are_refused(tmp_path: Path) -> None:
    path = _zip(tmp_path / "overlap.zip", {"k1.csv": CSV, "k2.csv": CSV, "ok.csv": CSV})
    raw = bytearray(path.read_bytes())
    # point k2.csv's central-directory entry at k1.csv's local header (offset 0)
    pos = raw.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", raw, pos + 28)[0]
        if bytes(raw[pos + 46 : pos + 46 + name_len]) == b"k2.csv":
            struct.pack_into("<I", raw, pos + 42, 0)
        pos = raw.find(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(raw))
    got, refused = _run(path, _options(tmp_path))
    assert got == {f"{path}!ok.csv": CSV}
    assert refused == {
        f"{path}!k1.csv": "overlapping zip entries (zip bomb): not extracted",
        f"{path}!k2.csv": "overlapping zip entries (zip bomb): not extracted",
    }


def test_encrypted_members(tmp_path: Path) -> None:
    with py7zr.SevenZipFile(tmp_path / "locked.7z", "w", password="s3cret") as z:
        z.writestr(CSV, "b.csv")
    got, refused = _run(tmp_path / "locked.7z", _options(tmp_path))
    assert got == {} and "no password given" in next(iter(refused.values()))
    got, refused = _run(tmp_path / "locked.7z", _options(tmp_path, password="s3cret"))
    assert list(got.values()) == [CSV] and refused == {}
    got, refused = _run(tmp_path / "locked.7z", _options(tmp_path, password="wrong"))
    assert got == {} and refused


def test_corrupt_member_is_reported_and_others_go_on(tmp_path: Path) -> None:
    path = _zip(tmp_path / "crc.zip", {"bad.csv": CSV * 10, "ok.csv": CSV})
    raw = bytearray(path.read_bytes())
    raw[40] ^= 0xFF  # inside bad.csv's compressed data
    path.write_bytes(bytes(raw))
    got, refused = _run(path, _options(tmp_path))
    assert got == {f"{path}!ok.csv": CSV}
    assert list(refused) == [f"{path}!bad.csv"]
    assert refused[f"{path}!bad.csv"].startswith("unreadable member (")


def test_folder_expands_archives_and_refuses_escaping_links(tmp_path: Path) -> None:
    folder = tmp_path / "leak"
    folder.mkdir()
    _zip(folder / "a.zip", {"x.csv": CSV})
    (folder / "plain.csv").write_bytes(CSV)
    outside = tmp_path / "secret.csv"
    outside.write_bytes(CSV)
    os.symlink(outside, folder / "link.csv")
    got, refused = _run(folder, _options(tmp_path))
    assert got == {f"{folder / 'a.zip'}!x.csv": CSV, str(folder / "plain.csv"): CSV}
    assert refused == {
        str(folder / "link.csv"): "symbolic link pointing outside the folder (not followed)"
    }
