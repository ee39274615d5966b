"""Builds the hostile files into a temporary folder, one folder per class, nothing committed.

Each case names the source to ingest (or the customer file to load) and what must happen:
``refused`` — the file or member is refused, the message names it and gives the reason;
``rows`` — the file is read but the hostile records are refused with a reason;
``values`` — the file is read but the hostile values are refused one by one and never hashed;
``inert`` — the file is read and stored as data: nothing it says is executed or followed.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["CLASSES", "Expect", "HostileCase", "build_corpus"]

CSV = b"email,phone\nalice@example.fr,0612345678\n"
SQL_INJECTION = (
    "'); DROP TABLE customers; --",
    "' OR '1'='1",
    "1; DELETE FROM leak_keys WHERE 1=1; --",
    "\"); ATTACH '/tmp/x.duckdb' AS x; --",
    "$breach_id",
    "'||(SELECT sha256('x'))||'",
)


@dataclass(frozen=True)
class Expect:
    kind: Literal["refused", "rows", "values", "inert"]
    reasons: tuple[str, ...] = ()  # substrings of the refusal messages, each must appear
    names: tuple[str, ...] = ()  # file or member names the messages must carry


@dataclass(frozen=True)
class HostileCase:
    cls: str
    label: str
    source: Path
    expect: Expect
    customers: bool = False  # load as a customer file instead of ingesting as a leak
    extra: dict[str, str] = field(default_factory=dict)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _zip_slip(folder: Path) -> list[HostileCase]:
    path = folder / "slip.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../evil.csv", CSV)
        zf.writestr("/abs/evil2.csv", CSV)
        link = zipfile.ZipInfo("link.csv")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    tar = folder / "links.tar"
    with tarfile.open(tar, "w") as tf:
        sym = tarfile.TarInfo("escape")
        sym.type, sym.linkname = tarfile.SYMTYPE, "../../../etc"
        tf.addfile(sym)
        hard = tarfile.TarInfo("hard.csv")
        hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
        tf.addfile(hard)
    linked = folder / "linked"
    linked.mkdir()
    outside = folder / "outside-secret.csv"
    outside.write_bytes(CSV)
    os.symlink(outside, linked / "link.csv")
    return [
        HostileCase(
            "zip_slip_and_symlinks",
            "zip members escaping",
            path,
            Expect(
                "refused",
                ("contains '..'", "is absolute", "symbolic link member"),
                ("../../evil.csv", "/abs/evil2.csv", "link.csv"),
            ),
        ),
        HostileCase(
            "zip_slip_and_symlinks",
            "tar links",
            tar,
            Expect("refused", ("symbolic link member", "hard link member"), ("escape", "hard.csv")),
        ),
        HostileCase(
            "zip_slip_and_symlinks",
            "folder symlink out",
            linked,
            Expect("refused", ("symbolic link pointing outside the folder",), ("link.csv",)),
        ),
    ]


def _bombs(folder: Path) -> list[HostileCase]:
    gz = folder / "zeros.csv.gz"
    block = bytes(1 << 20)
    with gzip.open(gz, "wb", compresslevel=9) as out:
        for _ in range(64):
            out.write(block)
    zbomb = folder / "bomb.zip"
    with (
        zipfile.ZipFile(zbomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open("zeros.csv", "w") as w,
    ):
        for _ in range(64):
            w.write(block)
    overlap = _zip(folder / "overlap.zip", {"k1.csv": CSV, "k2.csv": CSV})
    raw = bytearray(overlap.read_bytes())
    pos = raw.find(b"PK\x01\x02")
    while pos >= 0:  # point k2.csv's central-directory entry at k1.csv's local header
        name_len = struct.unpack_from("<H", raw, pos + 28)[0]
        if bytes(raw[pos + 46 : pos + 46 + name_len]) == b"k2.csv":
            struct.pack_into("<I", raw, pos + 42, 0)
        pos = raw.find(b"PK\x01\x02", pos + 4)
    overlap.write_bytes(bytes(raw))
    nested = CSV
    name = "core.csv"
    for level in range(12):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr(name, nested)
        nested, name = buf.getvalue(), f"level{level}.zip"
    deep = folder / "deep.zip"
    deep.write_bytes(nested)
    return [
        HostileCase(
            "decompression_bombs",
            "gzip bomb",
            gz,
            Expect("refused", ("decompression bomb",), ("zeros.csv",)),
        ),
        HostileCase(
            "decompression_bombs",
            "zip bomb",
            zbomb,
            Expect("refused", ("decompression bomb",), ("zeros.csv",)),
        ),
        HostileCase(
            "decompression_bombs",
            "overlapping entries",
            overlap,
            Expect("refused", ("overlapping zip entries",), ("k1.csv", "k2.csv")),
        ),
        HostileCase(
            "decompression_bombs",
            "nesting",
            deep,
            Expect("refused", ("nested more than",), ("level",)),
        ),
    ]


def _huge_field(folder: Path) -> list[HostileCase]:
    path = folder / "huge-field.csv"
    with path.open("wb") as out:
        out.write(b"email,phone,notes\n")
        out.write(b'bob@example.fr,0612345679,"' + b"A" * (10 * 1024 * 1024) + b'"\n')
        out.write(b"carol@example.fr,0612345670,ok\n")
    return [HostileCase("csv_10mb_field", "10 MB field", path, Expect("rows", ("",)))]


def _nul_quoting(folder: Path) -> list[HostileCase]:
    nul = folder / "nul.csv"
    nul.write_bytes(b"email,phone\nd@example.fr,06123\x0045678\ne@example.fr,0612345671\n")
    quotes = folder / "quotes.csv"
    quotes.write_bytes(
        b'email,phone,notes\nf@example.fr,0612345672,"never closed\ng@example.fr,0612345673,x"y\n'
        + b"h@example.fr,0612345674,ok\n"
    )
    return [
        HostileCase(
            "nul_and_broken_quoting",
            "NUL bytes",
            nul,
            Expect("refused", ("binary content",), ("nul.csv",)),
        ),
        HostileCase("nul_and_broken_quoting", "broken quoting", quotes, Expect("rows", ("",))),
    ]


def _encodings(folder: Path) -> list[HostileCase]:
    noise = folder / "noise.csv"
    noise.write_bytes(bytes((i * 7919 + 13) % 256 for i in range(64 * 1024)))
    mixed = folder / "mixed.csv"
    mixed.write_bytes(b"\xff\xfe" + "email\n".encode("utf-16-le") + b"\x00\xd8" * 5000)
    return [
        HostileCase(
            "undetectable_encoding",
            "noise",
            noise,
            Expect("refused", ("encoding",), ("noise.csv",)),
        ),
        HostileCase(
            "undetectable_encoding",
            "broken UTF-16",
            mixed,
            Expect("refused", ("unsupported format",), ("mixed.csv",)),
        ),
    ]


def _foreign_digits(folder: Path) -> list[HostileCase]:
    arabic = "".join(chr(0x0660 + int(d)) for d in "0612345678")
    persian = "".join(chr(0x06F0 + int(d)) for d in "0612345679")
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in "0612345670")
    devanagari = "".join(chr(0x0966 + int(d)) for d in "0612345671")
    path = folder / "digits.csv"
    phones = [arabic, persian, fullwidth, devanagari, "+٣٣٦١٢٣٤٥٦٧٨"]
    path.write_text(
        "email,telephone\n" + "".join(f"d{i}@example.fr,{p}\n" for i, p in enumerate(phones)),
        encoding="utf-8",
    )
    return [
        HostileCase("other_script_digits", "phones", path, Expect("values", ("non-ASCII digits",)))
    ]


def _json(folder: Path) -> list[HostileCase]:
    deep = folder / "deep.json"
    deep.write_text('[{"email": "i@example.fr", "x": ' + "[" * 100_000 + "]" * 100_000 + "}]")
    big = folder / "bignum.jsonl"
    big.write_text(
        json.dumps({"email": "j@example.fr"})[:-1]
        + ', "phone": '
        + "6" * 5_000
        + "}\n"
        + '{"email": "k@example.fr", "n": 1'
        + "0" * 5_000
        + "e99999}\n"
    )
    return [
        HostileCase(
            "json_deep_and_big_numbers",
            "nested 100 000",
            deep,
            Expect("refused", ("nested too deeply",), ("deep.json",)),
        ),
        HostileCase("json_deep_and_big_numbers", "5 000 digits", big, Expect("values", ("",))),
    ]


def _xml_bomb(folder: Path) -> list[HostileCase]:
    lol = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    shared = (
        f'<?xml version="1.0"?><!DOCTYPE sst [{lol}]>'
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        "<si><t>&lol9;</t></si></sst>"
    )
    external = (
        '<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        "<si><t>&x;</t></si></sst>"
    )
    cases = []
    for label, part in (("billion laughs", shared), ("external entity", external)):
        path = folder / f"{label.replace(' ', '-')}.xlsx"
        _zip(path, _xlsx_parts(part))
        cases.append(
            HostileCase(
                "xml_bombs_in_spreadsheets",
                label,
                path,
                Expect("refused", ("document type declaration",), ("sharedStrings.xml",)),
            )
        )
    return cases


def _xlsx_parts(shared_strings: str) -> dict[str, bytes]:
    ns = "http://schemas.openxmlformats.org"
    return {
        "[Content_Types].xml": (
            f'<?xml version="1.0"?><Types xmlns="{ns}/package/2006/content-types">'
            f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            f'<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            f'<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
            "</Types>"
        ).encode(),
        "_rels/.rels": (
            f'<?xml version="1.0"?><Relationships xmlns="{ns}/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{ns}/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"
        ).encode(),
        "xl/workbook.xml": (
            f'<?xml version="1.0"?><workbook xmlns="{ns}/spreadsheetml/2006/main" '
            f'xmlns:r="{ns}/officeDocument/2006/relationships"><sheets>'
            '<sheet name="s" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ).encode(),
        "xl/_rels/workbook.xml.rels": (
            f'<?xml version="1.0"?><Relationships xmlns="{ns}/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{ns}/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{ns}/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
            "</Relationships>"
        ).encode(),
        "xl/worksheets/sheet1.xml": (
            f'<?xml version="1.0"?><worksheet xmlns="{ns}/spreadsheetml/2006/main"><sheetData>'
            '<row r="1"><c r="A1" t="s"><v>0</v></c></row></sheetData></worksheet>'
        ).encode(),
        "xl/sharedStrings.xml": shared_strings.encode(),
    }


def _sql_injection(folder: Path) -> list[HostileCase]:
    rows = ["email,phone,iban,first_name,last_name,notes"]
    for text in SQL_INJECTION:
        quoted = '"' + text.replace('"', '""') + '"'
        rows.append(",".join([quoted] * 6))
    csv_path = folder / "inject.csv"
    csv_path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    dump = folder / "inject.sql"
    values = ",".join(
        "(" + ",".join(["'" + t.replace("\\", "\\\\").replace("'", "\\'") + "'"] * 3) + ")"
        for t in SQL_INJECTION
    )
    dump.write_text(
        "CREATE TABLE `users` (`email` varchar(255), `phone` varchar(32), `name` text);\n"
        f"INSERT INTO `users` VALUES {values};\n",
        encoding="utf-8",
    )
    return [
        HostileCase("sql_injection_in_every_field", "CSV", csv_path, Expect("inert")),
        HostileCase("sql_injection_in_every_field", "SQL dump", dump, Expect("inert")),
    ]


def _telegram(folder: Path) -> list[HostileCase]:
    export = folder / "ChatExport_2024-10-21"
    (export / "files").mkdir(parents=True)
    (export / "files" / "ok.csv").write_bytes(CSV)
    outside = folder / "outside.csv"
    outside.write_bytes(CSV)
    os.symlink(outside, export / "files" / "sneaky.csv")
    refs = [
        "../outside.csv",
        "/etc/passwd",
        "C:\\Windows\\win.ini",
        "files/sneaky.csv",
        "files/ok.csv",
    ]
    messages = [
        {
            "id": i + 1,
            "type": "message",
            "date": "2024-10-20T14:05:00",
            "date_unixtime": str(1729425900 + i),
            "from": "Fuites FR",
            "from_id": "channel1987654321",
            "file": ref,
            "mime_type": "text/csv",
            "text": "",
            "text_entities": [],
        }
        for i, ref in enumerate(refs)
    ]
    document = {
        "name": "Fuites FR",
        "type": "public_channel",
        "id": 1987654321,
        "messages": messages,
    }
    (export / "result.json").write_text(json.dumps(document), encoding="utf-8")
    return [
        HostileCase(
            "telegram_references_outside",
            "export",
            export,
            Expect(
                "refused",
                ("escapes the export folder", "absolute path", "(symlink)"),
                ("../outside.csv", "/etc/passwd", "files/sneaky.csv"),
            ),
        )
    ]


def _names(folder: Path) -> list[HostileCase]:
    header = "customer_id,email,phone,iban,first_name,last_name,language"
    rows = [
        '"=HYPERLINK(""http://evil.example"",""x"")",f1@example.fr,0611111111,,=1+1,@SUM(A1),fr',
        'C-2,f2@example.fr,0611111112,,"Jean\r\nBcc: victim@evil.example","Dupont\nX-Injected: 1",fr',
        "C-3,\"f3@example.fr\r\nBcc: victim@evil.example\",0611111113,,+cmd|' /C calc'!A0,-2+3,en",
        "C-4,f4@example.fr,0611111114,,\tTab,\rCR,fr",
    ]
    path = folder / "customers.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return [
        HostileCase(
            "formula_and_header_injection",
            "customer names",
            path,
            Expect("inert"),
            customers=True,
        )
    ]


def _regex(folder: Path) -> list[HostileCase]:
    path = folder / "redos.csv"
    values = [
        ("a" * 20_000 + "@" + "a." * 5_000 + "!", "0" * 20_000 + "x", "FR" + "7" * 20_000),
        ("@" * 20_000, "+" + "3" * 20_000, " " * 20_000 + "FR76"),
        ("a@" + "-" * 20_000, "(0)" * 6_000, "FR76 " * 4_000),
        ("." * 20_000 + "@x", "06 " * 7_000, "fr76" + "-0" * 10_000),
    ]
    with path.open("w", encoding="utf-8") as out:
        out.write("email,phone,iban\n")
        for row in values:
            out.write(",".join(row) + "\n")
    return [HostileCase("regex_worst_cases", "long near-misses", path, Expect("values", ("",)))]


CLASSES: dict[str, Callable[[Path], list[HostileCase]]] = {
    "zip_slip_and_symlinks": _zip_slip,
    "decompression_bombs": _bombs,
    "csv_10mb_field": _huge_field,
    "nul_and_broken_quoting": _nul_quoting,
    "undetectable_encoding": _encodings,
    "other_script_digits": _foreign_digits,
    "json_deep_and_big_numbers": _json,
    "xml_bombs_in_spreadsheets": _xml_bomb,
    "sql_injection_in_every_field": _sql_injection,
    "telegram_references_outside": _telegram,
    "formula_and_header_injection": _names,
    "regex_worst_cases": _regex,
}


def build_corpus(root: Path, classes: list[str] | None = None) -> list[HostileCase]:
    """Write every class's files under ``root/<class>/`` and return the cases to run."""
    cases: list[HostileCase] = []
    for name in classes or list(CLASSES):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        cases.extend(CLASSES[name](folder))
    return cases
