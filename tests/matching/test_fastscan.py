"""The native scanner against the Python path: same rows, masks, keys, rejects and counts."""

from __future__ import annotations

import contextlib
import random
from array import array
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from connectors.base import Table
from connectors.delimited import DELIMITERS, FIELD_CAP, detect_dialect, read_delimited
from matching import fastscan, ibans
from matching.keyed_hash import Pepper
from matching.leaks import NormalisedBatch, hash_batch, normalise_leak_batch
from matching.native import scan_module
from matching.phones import (
    OVERSEAS_CALLING_CODES,
    REASON_PHONE_INVALID,
    normalise_phone,
    phone_automaton,
)
from schemas.vocab import Category, KeyKind
from synthetic import COLUMN_CATEGORIES, make_customers, make_leak, write_delimited


def test_the_extension_is_built() -> None:
    # `make` builds it; without it every test below would compare the old path with itself.
    assert fastscan.available()


KEY_ROLES: dict[str, Category | None] = {
    "id": Category.CUSTOMER_NUMBER,
    "email": Category.EMAIL,
    "phone": Category.PHONE,
    "iban": Category.IBAN,
    "name": Category.NAME,
    "note": None,
}
KEY_COLUMNS = list(KEY_ROLES)
Result = tuple[
    pl.DataFrame, pl.DataFrame, pl.DataFrame, list[tuple[int, str, str]], int, pl.DataFrame
]
# The join keys of every result are compared too: the scanner hashes what it decides itself
# when given a pepper, and must give the keys the Python path's canonical values give.
PEPPER = Pepper.generate("test-fastscan")


def _table(
    path: Path, encoding: str, sample: str, has_header: bool | None, batch_rows: int
) -> Table:
    return read_delimited(
        path,
        name="t",
        encoding=encoding,
        sample=sample,
        batch_rows=batch_rows,
        work_dir=path.parent / "work",
        has_header=has_header,
    )


def _collect(batches: list[NormalisedBatch], table: Table) -> Result:
    rows = pl.concat([b.rows for b in batches]) if batches else pl.DataFrame()
    canonical = pl.concat([b.canonical for b in batches]) if batches else pl.DataFrame()
    rejects = pl.concat([b.rejects for b in batches]) if batches else pl.DataFrame()
    record_rejects = sorted((r.row or 0, r.column or "", r.reason) for r in table.rejects)
    keys = pl.concat([hash_batch(b, PEPPER) for b in batches]) if batches else pl.DataFrame()
    return (
        rows.sort(rows.columns) if rows.height else rows,
        canonical.sort(canonical.columns) if canonical.height else canonical,
        rejects.sort(rejects.columns) if rejects.height else rejects,
        record_rejects,
        table.rows_read,
        keys.sort(keys.columns) if keys.height else keys,
    )


def _sample(path: Path, encoding: str) -> str:
    head = path.read_bytes()[:65536].decode(encoding, errors="replace")
    return head.rsplit("\n", 1)[0] if "\n" in head else head


def old_path(
    path: Path,
    encoding: str,
    roles: Mapping[str, Category | None],
    *,
    has_header: bool | None = None,
    batch_rows: int = 50,
    region: str = "FR",
) -> Result:
    table = _table(path, encoding, _sample(path, encoding), has_header, batch_rows)
    batches = [normalise_leak_batch(b, roles, default_region=region) for b in table.batches()]
    return _collect(batches, table)


def new_path(
    path: Path,
    encoding: str,
    roles: Mapping[str, Category | None],
    *,
    has_header: bool | None = None,
    batch_rows: int = 50,
    region: str = "FR",
    overlap: bool = True,
    block_bytes: int = 300,
    pepper: Pepper | None = None,
) -> Result:
    sample = _sample(path, encoding)
    table = _table(path, encoding, sample, has_header, batch_rows)
    dialect = detect_dialect(sample, has_header=has_header)
    assert fastscan.can_scan(encoding, dialect)
    batches = list(
        fastscan.scan_normalised(
            path,
            encoding=encoding,
            dialect=dialect,
            roles=roles,
            default_region=region,
            batch_rows=batch_rows,
            table=table,
            overlap=overlap,
            block_bytes=block_bytes,
            pepper=pepper,
        )
    )
    for b in batches:
        assert b.rows.height <= batch_rows
    return _collect(batches, table)


def assert_same(old: Result, new: Result, *, hashed: bool = False) -> None:
    """Equal results; ``hashed``: the new path hashed its own values, so only keys compare."""
    names = ("rows", "canonical", "value rejects", "record rejects", "rows_read", "keys")
    for name, a, b in zip(names, old, new, strict=True):
        if hashed and name == "canonical":
            continue
        if isinstance(a, pl.DataFrame):
            assert isinstance(b, pl.DataFrame)
            if a.height == 0 and b.height == 0:
                continue
            assert a.equals(b), name  # never print the frames: they hold identifiers
        else:
            assert a == b, name


def both(path: Path, encoding: str, roles: Mapping[str, Category | None], **kw: object) -> Result:
    old = old_path(path, encoding, roles, **kw)  # type: ignore[arg-type]
    for overlap in (False, True):
        assert_same(old, new_path(path, encoding, roles, overlap=overlap, **kw))  # type: ignore[arg-type]
    hashed = new_path(path, encoding, roles, pepper=PEPPER, **kw)  # type: ignore[arg-type]
    assert_same(old, hashed, hashed=True)
    return old


def write_rows(
    path: Path,
    rows: list[list[str]],
    delim: str = ";",
    encoding: str = "utf-8",
    header: bool = True,
    ending: str = "\n",
) -> Path:
    lines = [delim.join(KEY_COLUMNS)] if header else []
    lines += [delim.join(r) for r in rows]
    path.write_bytes(ending.join(lines).encode(encoding) + ending.encode())
    return path


# -- synthetic leaks -------------------------------------------------------------------------------


@cache
def _leak() -> pl.DataFrame:
    customers = make_customers(300, seed=5)
    return make_leak(customers, 400, overlap=0.4, seed=6).frame


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "latin-1"])
@pytest.mark.parametrize("delimiter", DELIMITERS)
@pytest.mark.parametrize("header", [True, False])
def test_synthetic_leak_matches(
    tmp_path: Path, encoding: str, delimiter: str, header: bool
) -> None:
    path = write_delimited(
        _leak(), tmp_path / "leak.csv", delimiter=delimiter, encoding=encoding, header=header
    )
    if header:
        roles: dict[str, Category | None] = dict(COLUMN_CATEGORIES)
    else:
        roles = {f"col{i}": c for i, c in enumerate(COLUMN_CATEGORIES.values(), start=1)}
    rows, canonical, rejects, _, rows_read, _ = both(path, encoding, roles, has_header=header)
    assert rows.height == 400
    # the comparison is not vacuous: the leak has keys of every kind and refusals
    assert rows_read == 400
    assert set(canonical["kind"]) == {"email", "iban", "phone"}
    assert rejects.height > 0


def test_bench_shaped_leak_without_overlap_and_big_blocks(tmp_path: Path) -> None:
    path = write_delimited(_leak(), tmp_path / "leak.csv", delimiter=";", encoding="cp1252")
    roles = dict(COLUMN_CATEGORIES)
    old = old_path(path, "cp1252", roles, batch_rows=1000)
    new = new_path(path, "cp1252", roles, batch_rows=1000, block_bytes=1 << 20, overlap=False)
    assert_same(old, new)
    hashed = new_path(path, "cp1252", roles, batch_rows=1000, block_bytes=1 << 20, pepper=PEPPER)
    assert_same(old, hashed, hashed=True)
    assert hashed[1].height < 0.02 * old[1].height  # the scanner hashed nearly every value


def test_region_other_than_france_leaves_phones_to_python(tmp_path: Path) -> None:
    path = write_delimited(_leak(), tmp_path / "leak.csv", delimiter=",", encoding="utf-8")
    both(path, "utf-8", dict(COLUMN_CATEGORIES), region="BE")


# -- hand-written edge cases -------------------------------------------------------------------------


def test_quoting_escapes_and_delimiters_inside(tmp_path: Path) -> None:
    rows = [
        ['"1"', '"a;b@x.fr"', '"06 12 34 56 78"', '""', '"Dupont ""Jr"""', '"x;y"'],
        ["2", '"A@B.FR"', "0612345678", '"FR76 3000 6000 0112 3456 7890 189"', '" "', ""],
        ["3", '""""', '"+33 6 12 34 56 78"', "", '"a""b"', '";;"'],
        ["4", 'x"y@z.fr', "06", "", "b", "c"],  # a quote inside a bare field
        ["5", '"a"b', "06", "", "b", "c"],  # bytes after a closing quote
        ["6", ' "a@b.fr"', "06", "", "b", "c"],  # a space before the opening quote
        ['"7;8"', "e@x.fr", "06", "", "n"],  # well-formed, one field short
        ["9", "e@x.fr", "06", "", "n", "o", "p"],  # one field too many
        ["10", '"e@x.fr"', "06", "", "n", '"o"', '"p"'],
    ]
    result = both(write_rows(tmp_path / "q.csv", rows), "utf-8", KEY_ROLES)
    assert result[4] >= 5
    assert any("expected 6 fields" in r[2] for r in result[3])


def test_crlf_empty_lines_trailing_line_and_blank_fields(tmp_path: Path) -> None:
    rows = [
        ["1", "a@b.fr", "0612345678", "", "n", ""],
        ["", "", "", "", "", ""],
        ["2", " \t", " ", "\t", "  ", " "],
        ["3", "\u00a0", "\u00a0", "\u00a0", "\u00a0\u2003", "\u3000"],
        ["4", "x@y.fr\r", "06 12 34 56 78\r", "", "n\r", "o\r"],
        ["5", "\x0b\x1c", "\x1c", "\x1f", "\x1e", "\x0c"],
    ]
    for encoding in ("utf-8", "utf-8-sig", "cp1252", "latin-1"):
        text = ";".join(KEY_COLUMNS) + "\r\n\r\n"
        text += "\r\n".join(
            ";".join(r) for r in rows if not (encoding == "cp1252" and "\u3000" in "".join(r))
        )
        text += "\r\n\n\r\n\r" + "\r\n6;z@z.fr;0712345678;;n;\r"  # no newline after the last line
        path = tmp_path / f"crlf-{encoding}.csv"
        path.write_bytes(text.encode(encoding, errors="replace"))
        both(path, encoding, KEY_ROLES)


def test_bom_with_and_without_header(tmp_path: Path) -> None:
    body = "1;a@b.fr;0612345678;;Zoë;\n2;\ufeffc@d.fr;0612345679;;n;\n\ufeff3;e@f.fr;;;;\n"
    for header in (True, False):
        text = ("\ufeff" + ";".join(KEY_COLUMNS) + "\n" if header else "\ufeff") + body
        path = tmp_path / f"bom-{header}.csv"
        path.write_bytes(text.encode("utf-8"))
        roles = KEY_ROLES if header else {f"col{i}": c for i, c in enumerate(KEY_ROLES.values(), 1)}
        both(path, "utf-8-sig", roles, has_header=header)


def test_nul_bytes_and_ragged_lines(tmp_path: Path) -> None:
    lines = [
        ";".join(KEY_COLUMNS),
        "1;a@b.fr;0612345678;;n;",
        "2;a@b.fr\x00x;0612345678;;n;",  # NUL mid-record: refused
        "3;a@b.fr;06;;n;\x00",  # NUL at the end: the record before it is kept
        "\x004;a@b.fr;06;;n;",  # NUL first: a record all the same, refused
        "5;a@b.fr",
        "\x00",  # nothing before or after the NUL: a blank line, as "\x00\x00x" (no record)
        "\x00\x00x",
        "\x00\rx",  # a CR after it: a record, refused
        "6;a;b;c;d;e;f;g",
        "7;é@b.fr;0612345678;;n;",
    ]
    path = tmp_path / "nul.csv"
    path.write_bytes("\n".join(lines).encode("utf-8"))
    result = both(path, "utf-8", KEY_ROLES)
    reasons = sorted(r[2] for r in result[3])
    assert reasons.count("NUL byte in record") == 3  # NUL mid-record, NUL first, NUL CR
    assert "expected 6 fields, found 2" in reasons and "expected 6 fields, found 1" not in reasons


def test_two_nul_bytes_in_the_first_line_refuse_that_row_only(tmp_path: Path) -> None:
    path = tmp_path / "nul2.csv"
    path.write_bytes(b"id;email;phone;iban;name;note\n1;a\x00b\x00c;;;;\n2;b@c.fr;;;;\n")
    result = both(path, "utf-8", KEY_ROLES)
    assert [r[2] for r in result[3]] == ["NUL byte in record"]
    assert result[0]["row"].to_list() == [2]  # the next row is read and kept


def test_multiline_quoted_field_mid_file_hands_over_to_csv(tmp_path: Path) -> None:
    lines = [";".join(KEY_COLUMNS)]
    lines += [f"{i};u{i}@x.fr;06123456{i:02d};;n;" for i in range(1, 30)]
    lines += ['30;a@b.fr;0612345678;;"two', 'lines";x', "31;c@d.fr;0712345678;;n;"]
    lines += [f"{i};u{i}@x.fr;07123456{i:02d};;n;" for i in range(32, 60)]
    for encoding in ("utf-8", "cp1252"):
        path = tmp_path / f"ml-{encoding}.csv"
        path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
        assert both(path, encoding, KEY_ROLES, batch_rows=7)[4] == 59
        # an unterminated quote further on: the csv module takes the rest as one broken record
        path.write_bytes(
            ("\n".join([*lines[:40], '40;"broken', *lines[40:]]) + "\n").encode(encoding)
        )
        rejects = both(path, encoding, KEY_ROLES, batch_rows=7)[3]
        assert any(reason.startswith("broken quoting") for _, _, reason in rejects)


def test_first_line_odd_quotes_without_header(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes('\ufeff1;"a\nb";06;;n;x\n2;c@d.fr;0612345678;;n;\n'.encode())
    roles = {f"col{i}": c for i, c in enumerate(KEY_ROLES.values(), 1)}
    both(path, "utf-8", roles, has_header=False)


def test_invalid_utf8_and_long_lines(tmp_path: Path) -> None:
    body = [
        b"1;a\xff@b.fr;06\xc3;;n\xed\xa0\x80;",
        b"2;" + b"x" * (FIELD_CAP + 10) + b"@b.fr;0612345678;;n;",
        b"3;" + b"y" * 2000 + b";0612345678;;n;",
        b"4;ok@b.fr;0612345678;;n;",
    ]
    path = tmp_path / "bad.csv"
    path.write_bytes(b"id;email;phone;iban;name;note\n" + b"\n".join(body) + b"\n")
    result = both(path, "utf-8", KEY_ROLES)
    assert any("1 MiB" in r[2] for r in result[3])


def test_lines_with_more_separators_than_the_index_take_the_python_path(tmp_path: Path) -> None:
    # the scanner indexes at most 4096 quote and delimiter positions per line; past that the
    # line is handed back whole, and both paths must still agree on it and its neighbours
    wide = b'1;"a@b.fr";"0612345678";;"' + b";" * 5000 + b'";'
    body = [wide, b"2;c@d.fr;0712345678;;n;", b'3;"' + b'""' * 2100 + b'";;;n;']
    path = tmp_path / "wide.csv"
    path.write_bytes(b"id;email;phone;iban;name;note\n" + b"\n".join(body) + b"\n")
    result = both(path, "utf-8", KEY_ROLES)
    assert len(result[0]) == 3  # every record kept, none refused
    sample = _sample(path, "utf-8")
    plan = fastscan._plan(detect_dialect(sample).columns, "utf-8", ";", KEY_ROLES, "FR")
    leftovers = sum(
        len(part.out.left_row) // 8
        for part in fastscan._parts(path, plan, 1, 1000, 1 << 20)
        if isinstance(part, fastscan._Part)
    )
    assert leftovers == 2


def test_non_ascii_identifiers_go_to_python(tmp_path: Path) -> None:
    rows = [
        ["1", "Élodie@exemple.fr", "０６１２３４５６７８", "FR76\u00a03000", "n", ""],
        ["2", "\u00a0a@b.fr\u00a0", "06\u00a012\u00a034\u00a056\u00a078", "", "n", ""],
        ["3", "ß@straße.de", "٠٦١٢٣٤٥٦٧٨", "DE89\u202f3704 0044 0532 0130 00", "n", ""],
    ]
    both(write_rows(tmp_path / "u.csv", rows), "utf-8", KEY_ROLES)


def test_phone_shapes(tmp_path: Path) -> None:
    phones = [
        "0612345678",
        "06 12 34 56 78",
        "06.12.34.56.78",
        "06-12-34-56-78",
        "(06) 12 34 56 78",
        "+33 6 12 34 56 78",
        "+33 (0)6 12 34 56 78",
        "0033 6 12 34 56 78",
        "00330612345678",
        "33612345678",
        "330612345678",
        "612345678",
        "0692 12 34 56",
        "+262 692 12 34 56",
        "0690 00 00 00",
        "+590 690 00 00 00",
        "0596 12 34 56",
        "0262 12 34 56",
        "0639 12 34 56",
        "0112345678",
        "0812345678",
        "0912345678",
        "0712345678",
        "0012345678",
        "06123456",
        "061234567890",
        "+44 20 7946 0958",
        "+1 202 555 0143",
        "++33612345678",
        "06 12 34 56 7a",
        " \t0612345678\t ",
        "0612345678 ext 12",
        "(0)612345678",
        "+(33)612345678",
        "+",
        "0" * 41,
        "1" * 31,
        "06 12 34 56 78 " * 3,
        "+33 6 12 34 56 78 9",
        "3",
    ]
    rows = [[str(i), "", p, "", "n", ""] for i, p in enumerate(phones)]
    for delim in (";", ",", "\t", "|"):
        path = write_rows(tmp_path / f"p{ord(delim)}.csv", rows, delim=delim)
        both(path, "utf-8", KEY_ROLES)


def test_email_shapes(tmp_path: Path) -> None:
    emails = [
        "a@b.fr",
        "A.B@C.FR",
        " a@b.fr ",
        "a@b",
        "@b.fr",
        "a@.fr",
        "a@b..fr",
        "a@-b.fr",
        "a@b-.fr",
        "a b@c.fr",
        "a@@b.fr",
        "a@b.fr.",
        "x" * 64 + "@b.fr",
        "x" * 65 + "@b.fr",
        "a@" + "b" * 250 + ".fr",
        "a+tag@b.co.uk",
        "a@b_c.fr",
        "\x0ba@b.fr\x1f",
        "a\x7f@b.fr",
        "a@B.Fr",
        "a@1.2",
        "é@b.fr",
        "a@b.fr\x1c",
    ]
    rows = [[str(i), f'"{e}"' if i % 2 else e, "", "", "n", ""] for i, e in enumerate(emails)]
    both(write_rows(tmp_path / "e.csv", rows, delim="|"), "utf-8", KEY_ROLES)


def _iban_for(country: str, length: int, body: str, rng: random.Random) -> str:
    parts = fastscan._bban_parts(body) or []
    bban = ""
    for count, bits in parts:
        pool = ("0123456789" if bits & 1 else "") + (
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if bits & 2 else ""
        )
        bban += "".join(rng.choice(pool or "0") for _ in range(count))
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(digits) % 97
    return f"{country}{check:02d}{bban}"


def _ibans() -> list[str]:
    rng = random.Random(7)
    values: list[str] = []
    for country, (length, body) in sorted(ibans._specs().items()):
        iban = _iban_for(country, length, body, rng)
        values += [
            iban,
            iban.lower(),
            " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)),
            iban[:-1],  # wrong length
            iban + "0",
            iban[:4] + iban[5] + iban[4] + iban[6:],  # two characters swapped
            iban[:2] + "00" + iban[4:],  # check digits out of range
            iban[:-1] + ("0" if iban[-1] != "0" else "1"),
            iban.replace(iban[5], "A", 1),
        ]
    values += [
        "FR7630006000011234567890189",
        "FR7630006000011234567890188",  # RIB key wrong
        "FR76 3000 6000 0112 3456 7890 189",
        "fr76-3000-6000-0112-3456-7890-189",
        "FR76.3000.6000.0112.3456.7890.189",
        "GP1230006000011234567890189",
        "ES9121000418450200051332",
        "ES9121000418450200051333",
        "IT60X0542811101000000123456",
        "IT60Y0542811101000000123456",
        "BE68539007547034",
        "BE68539007547035",
        "DE89370400440532013000",
        "DE89370400440532013001",
        "XX89370400440532013000",
        "1234",
        "A",
        "FR76",
        "FR76 3000 6000 0112 3456 7890 189 0000 0000",
        "FR76/3000",
        "FR76_3000",
        "------",
        "GB82WEST12345698765432",
        "NL91ABNA0417164300",
        "MC5811222000010123456789030",
    ]
    return values


def test_every_registry_country_and_near_misses(tmp_path: Path) -> None:
    values = _ibans()
    rows = [[str(i), "", "", f'"{v}"' if i % 3 == 0 else v, "n", ""] for i, v in enumerate(values)]
    for encoding in ("utf-8", "cp1252"):
        path = write_rows(tmp_path / f"i-{encoding}.csv", rows, delim=",", encoding=encoding)
        _, canonical, rejects, _, _, _ = both(path, encoding, KEY_ROLES, batch_rows=200)
        reasons = set(rejects["reason"])
        assert {
            ibans.REASON_IBAN_MOD97,
            ibans.REASON_IBAN_MALFORMED,
            ibans.REASON_IBAN_NATIONAL,
            ibans.REASON_IBAN_COUNTRY_OR_LENGTH,
        } <= reasons
        assert canonical.height > 50


def test_tables_follow_the_python_rules() -> None:
    # every prefix of the phone table is one of phones.FAST_PREFIXES, every registry country
    # has its length, and the BBAN regexes of the French RIB countries translate
    table = fastscan._phone_prefixes()
    assert {f"{i:03d}" for i, on in enumerate(table) if on} == set(phones_fast_prefixes())
    for country in ibans.RIB_COUNTRIES & set(ibans._specs()):
        assert fastscan._bban_parts(ibans._specs()[country][1]) is not None


def test_white_space_list_is_what_polars_matches() -> None:
    # the category mask's rule is polars' \s: the scanner's list must be exactly its matches
    chars = "".join(chr(c) for c in range(0x80, 0x110000) if not 0xD800 <= c <= 0xDFFF)
    found = pl.Series([chars]).str.extract_all(r"\s").explode().drop_nulls().to_list()
    assert sorted(ord(c) for c in found) == list(fastscan.UTF8_WHITE_SPACE)
    assert 0x1C not in fastscan.UTF8_WHITE_SPACE


def phones_fast_prefixes() -> frozenset[str]:
    from matching.phones import FAST_PREFIXES

    return FAST_PREFIXES


def test_can_scan() -> None:
    dialect = detect_dialect("a;b\n1;2\n")
    assert fastscan.can_scan("utf-8", dialect)
    assert fastscan.can_scan("CP1252", dialect)
    assert fastscan.can_scan("latin-1", dialect)
    assert not fastscan.can_scan("utf-16", dialect)
    assert not fastscan.can_scan("shift_jis", dialect)
    assert not fastscan.can_scan("no-such-encoding", dialect)


# -- random fields ---------------------------------------------------------------------------------

_ALPHABET = "0123456789 .-()+@\"';,|\tazAZ\u00a0é\u2003\r\x0b\x1c"
_field = st.text(alphabet=_ALPHABET, max_size=30) | st.sampled_from(_ibans())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(_field, _field, _field, _field), min_size=1, max_size=25),
    delim=st.sampled_from(DELIMITERS),
    encoding=st.sampled_from(["utf-8", "cp1252"]),
)
def test_random_fields(
    tmp_path: Path, rows: list[tuple[str, str, str, str]], delim: str, encoding: str
) -> None:
    lines = [delim.join(KEY_COLUMNS)]
    for i, (email, phone, iban, name) in enumerate(rows, start=1):
        lines.append(delim.join([str(i), email, phone, iban, name, "x"]))
    path = tmp_path / "r.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding, errors="replace"))
    old = old_path(path, encoding, KEY_ROLES, has_header=True, batch_rows=10)
    assert_same(old, new_path(path, encoding, KEY_ROLES, has_header=True, batch_rows=10))


def test_native_path_decides_the_common_shapes_itself(tmp_path: Path) -> None:
    # pending values and leftover lines are correct but slow: the synthetic leak's common
    # shapes (metropolitan phones, ASCII e-mails, IBANs of countries without a schwifty
    # algorithm) must be decided in C, with no leftover line
    path = write_delimited(_leak(), tmp_path / "leak.csv", delimiter=";", encoding="cp1252")
    sample = _sample(path, "cp1252")
    dialect = detect_dialect(sample)
    plan = fastscan._plan(dialect.columns, "cp1252", ";", dict(COLUMN_CATEGORIES), "FR")
    kept = pending = leftovers = canonical = 0
    for part in fastscan._parts(path, plan, dialect.header_lines, 1000, 4096):
        assert isinstance(part, fastscan._Part)
        kept += len(part.out.rows) // 8
        canonical += sum(len(d.idx) // 4 for d in part.out.decided.values())
        pending += len(part.out.pend_idx) // 4
        leftovers += len(part.out.left_row) // 8
    assert kept == 400
    assert leftovers == 0
    assert canonical > 600
    assert pending < 0.2 * 3 * 400


# -- the phone national stage (the validity automaton in C) -----------------------------------------


def _native_phones(path: Path) -> dict[int, tuple[str | None, str | None]]:
    """Per row, what the scanner itself decided for the phone: (E.164, None), (None, reason),
    or ("pending", None) when it handed the value back to Python."""
    dialect = detect_dialect(_sample(path, "utf-8"))
    plan = fastscan._plan(dialect.columns, "utf-8", ";", KEY_ROLES, "FR")
    phone = next(i for i, (_, kind) in enumerate(plan.keys) if kind is KeyKind.PHONE)
    decided: dict[int, tuple[str | None, str | None]] = {}
    rows = array("Q")  # the batch's kept records so far: indexes count from its first
    for part in fastscan._parts(path, plan, dialect.header_lines, 10_000, 1 << 16):
        assert isinstance(part, fastscan._Part)
        out = part.out
        rows.frombytes(out.rows)
        phones = out.decided[KeyKind.PHONE]
        canon_off = array("q", phones.offsets)
        for i, at in enumerate(array("I", phones.idx)):
            decided[rows[at]] = (phones.data[canon_off[i] : canon_off[i + 1]].decode(), None)
        for at, slot, reason in zip(
            array("I", out.rej_idx), array("H", out.rej_slot), out.rej_reason, strict=True
        ):
            if slot == phone:
                decided[rows[at]] = (None, fastscan._REASONS[reason])
        for at, slot in zip(array("I", out.pend_idx), array("H", out.pend_slot), strict=True):
            if slot == phone:
                decided[rows[at]] = ("pending", None)
        if part.batch_end:
            rows = array("Q")
    return decided


NATIONAL_STAGE_PHONES = [
    # overseas numbers in national and sloppy +33 forms
    "0692 12 34 56",
    "0693 01 23 45",
    "0639 20 12 34",
    "0690 12 34 56",
    "0694 12 34 56",
    "0696 12 34 56",
    "0697/12/34/56",
    "0262 12 34 56",
    "0269 01 23 45",
    "0590 12 34 56",
    "0594 01 23 45",
    "0596 01 23 45",
    "0596 12 34 56",  # valid as +33 only
    "0508 41 23 45",
    "+33 692 12 34 56",
    "+33 (0)6 90 12 34 56",
    "0033 694 12 34 56",
    "00330696123456",
    "33696123456",
    "330692123456",
    "692123456",
    "(0692) 12.34.56",
    # overseas numbers written internationally, valid and not
    "+262 692 12 34 56",
    "+262 269 01 23 45",
    "+590 590 12 34 56",
    "+594 694 12 34 56",
    "+596 696 12 34 56",
    "+508 708 41 23 45",
    "+262 612 34 56 78",
    "+590 100 00 00 00",
    # metropolitan ranges the fast path leaves to the stage, and invalid national numbers
    "0800 12 34 56",
    "0890 12 34 56",
    "0939 12 34 56",
    "0639 12 34 56",
    "0699 12 34 56",
    "0263 12 34 56",
    "0268 12 34 56",
    "0947 12 34 56",
    "0976 12 34 56",
    "0836 01 23 45",
    # bare 0… digit strings: hopeless ones are refused natively
    "061234567",
    "06123456789",
    "0612",
    "012",
    "06923456",
    "01234567890123456",
]
NATIONAL_STAGE_PENDING = [  # what the Python stages leave to the reference as well
    "0212345",  # 212345 is a Saint-Pierre-et-Miquelon number: which reading wins is its call
    "0012345678",
    "00612345",
    "+44 20 7946 0958",
    "+2626921234567",
    "+590 0690 12 34 56",
    "012345678901234567",
    "06 12 34 56 7",
    "+33 6 12 34 56 7",
    "0692 12 34 56 ext",
]


def test_phone_national_stage_is_native_and_exact(tmp_path: Path) -> None:
    values = NATIONAL_STAGE_PHONES + NATIONAL_STAGE_PENDING
    rows = [[str(i), "", p, "", "n", ""] for i, p in enumerate(values)]
    path = write_rows(tmp_path / "national.csv", rows)
    both(path, "utf-8", KEY_ROLES)
    native = _native_phones(path)
    for row, value in enumerate(values, start=1):
        if value in NATIONAL_STAGE_PENDING:
            assert native[row] == ("pending", None), row
        else:
            assert native[row] == normalise_phone(value), row
    decided = [
        native[row] for row, v in enumerate(values, start=1) if v not in NATIONAL_STAGE_PENDING
    ]
    # not vacuous: overseas, +33 and refusals are all decided natively
    assert {c[:4] for c, _ in decided if c} >= {"+262", "+590", "+594", "+596", "+508", "+336"}
    assert (None, REASON_PHONE_INVALID) in decided


_DIGIT_RUNS = ["0", "00", "0033", "33", "+33", "+262", "+590", "+594", "+596", "+508", "+", ""]


@st.composite
def phone_like(draw: st.DrawFn) -> str:
    lead = draw(st.sampled_from(_DIGIT_RUNS))
    body = draw(st.sampled_from(["6", "69", "639", "59", "26", "7", "8", "9", "1", ""]))
    rest = draw(st.text(alphabet="0123456789", max_size=12))
    glue = draw(st.sampled_from(["", " ", ".", "-", "/", "(", ")", "a"]))
    cut = draw(st.integers(0, len(rest)))
    pad = draw(st.sampled_from(["", " ", "\t", " \t "]))
    return pad + lead + body + rest[:cut] + glue + rest[cut:] + pad


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(phone_like(), min_size=1, max_size=40))
def test_random_phones_native_equals_reference(tmp_path: Path, values: list[str]) -> None:
    rows = [[str(i), "", p, "", "n", ""] for i, p in enumerate(values)]
    path = write_rows(tmp_path / "phones.csv", rows)
    assert_same(old_path(path, "utf-8", KEY_ROLES), new_path(path, "utf-8", KEY_ROLES))
    for row, (canonical, reason) in _native_phones(path).items():
        if canonical != "pending":
            assert (canonical, reason) == normalise_phone(values[row - 1])


def test_automaton_tables_follow_the_python_automaton() -> None:
    automaton = phone_automaton()
    assert automaton is not None
    transitions, accepting, codes = fastscan._phone_automaton()
    assert list(array("H", transitions)) == list(automaton.transitions)
    assert list(accepting) == list(automaton.accepting)
    assert codes == b"".join(str(c).encode() for c in OVERSEAS_CALLING_CODES)


def _config_args(transitions: bytes, accepting: bytes, codes: bytes) -> tuple[object, ...]:
    """make_config's arguments for a one-column phone table with the given automaton."""
    byte_ws, byte_utf8 = fastscan._single_byte_tables("cp1252")
    return (
        ord(";"),
        bytes([3]),
        bytes(2),
        bytes(2),
        True,
        byte_ws,
        byte_utf8,
        fastscan._utf8_white_space(),
        fastscan._phone_prefixes(),
        transitions,
        accepting,
        codes,
        fastscan._iban_table(),
        bytes(ibans._IT_ODD),
        bytes(ibans._ES_WEIGHTS),
        *fastscan._german_args(),
        1000,
    )


@pytest.mark.parametrize(
    ("transitions", "accepting", "codes"),
    [
        (array("H", [1] * 10).tobytes(), bytes(1), b"262"),  # a successor past the table
        (array("H", [0] * 10).tobytes(), bytes([4]), b"262"),  # a bit for no code
        (array("H", [0] * 10).tobytes(), bytes(2), b"262"),  # accepting of the wrong size
        (array("H", [0] * 10).tobytes(), bytes(1), b"26x"),  # a code that is not digits
        (array("H", [0] * 10).tobytes(), bytes(1), b"2620"),  # codes not three digits each
        (array("H", [0] * 10).tobytes() + b"\x00", bytes(1), b"262"),  # half a state
    ],
)
def test_hostile_automaton_tables_are_refused(
    transitions: bytes, accepting: bytes, codes: bytes
) -> None:
    scan = scan_module()
    assert scan is not None
    scan.make_config(*_config_args(array("H", [0] * 10).tobytes(), bytes(1), b"262"))
    with pytest.raises(ValueError, match=r"table|automaton|code"):
        scan.make_config(*_config_args(transitions, accepting, codes))


def test_bench_like_leak_leaves_only_foreign_or_junk_phones_pending(tmp_path: Path) -> None:
    # Overseas, invalid and hopeless national numbers are decided in C now: what still goes
    # back to Python is what no French stage can decide (``00…`` international prefixes, other
    # countries' numbers), and there is very little of it.
    customers = make_customers(2000, seed=8)
    leak = make_leak(customers, 6000, overlap=0.4, seed=9).frame
    path = write_delimited(leak, tmp_path / "leak.csv", delimiter=";", encoding="cp1252")
    dialect = detect_dialect(_sample(path, "cp1252"))
    roles = dict(COLUMN_CATEGORIES)
    plan = fastscan._plan(dialect.columns, "cp1252", ";", roles, "FR")
    phone = next(i for i, (_, kind) in enumerate(plan.keys) if kind is KeyKind.PHONE)
    pending: list[str] = []
    decided = 0
    for part in fastscan._parts(path, plan, dialect.header_lines, 10_000, 1 << 16):
        assert isinstance(part, fastscan._Part)
        offsets = array("q", part.out.pend_off)
        decided += len(part.out.decided[KeyKind.PHONE].idx) // 4
        decided += array("H", part.out.rej_slot).count(phone)
        for i, slot in enumerate(array("H", part.out.pend_slot)):
            if slot == phone:
                pending.append(part.out.pend_data[offsets[i] : offsets[i + 1]].decode())
    assert decided > 4000
    assert len(pending) <= 0.002 * 6000
    french = ("+33", *(f"+{code}" for code in OVERSEAS_CALLING_CODES))
    for value in pending:
        canonical, _ = normalise_phone(value)
        assert canonical is None or not canonical.startswith(french)
        stripped = value.strip(" \t")
        assert stripped.startswith(("00", "+")) or not stripped.isdigit()


def test_keys_hashed_under_another_pepper_are_refused(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "k.csv", [["1", "a@b.fr", "0612345678", "", "n", ""]])
    sample = _sample(path, "utf-8")
    batches = list(
        fastscan.scan_normalised(
            path,
            encoding="utf-8",
            dialect=detect_dialect(sample),
            roles=KEY_ROLES,
            default_region="FR",
            batch_rows=10,
            table=_table(path, "utf-8", sample, None, 10),
            pepper=PEPPER,
        )
    )
    assert batches[0].keys.height == 2
    assert hash_batch(batches[0], PEPPER).height == 2
    with pytest.raises(ValueError, match="another pepper"):
        hash_batch(batches[0], Pepper.generate("other"))


def _iban_verdicts(path: Path, encoding: str) -> list[tuple[str, str | None]]:
    """Per record of an IBAN-only file, in order: ("canonical", value), ("reject", reason)
    or ("pending", None), as the scanner itself decides."""
    dialect = detect_dialect(_sample(path, encoding))
    plan = fastscan._plan(dialect.columns, encoding, ";", {"iban": Category.IBAN}, "FR")
    verdicts: dict[int, tuple[str, str | None]] = {}
    base = 0
    # one batch of several parts: the record indexes count from the batch's first record
    for part in fastscan._parts(path, plan, dialect.header_lines, 10**6, 1 << 14):
        assert isinstance(part, fastscan._Part)
        out = part.out
        decided = out.decided[KeyKind.IBAN]
        offsets = array("q", decided.offsets)
        for i, at in enumerate(array("I", decided.idx)):
            value = decided.data[offsets[i] : offsets[i + 1]].decode()
            verdicts[at] = ("canonical", value)
        for at, reason in zip(array("I", out.rej_idx), out.rej_reason, strict=True):
            verdicts[at] = ("reject", fastscan._REASONS[reason])
        for at in array("I", out.pend_idx):
            verdicts[at] = ("pending", None)
        base += len(array("Q", out.rows))
    assert sorted(verdicts) == list(range(base))
    return [verdicts[i] for i in range(base)]


def _german_values(rng: random.Random) -> list[str]:
    """Right mod-97 German IBANs of every registry method: valid (schwifty's own), one digit
    of the account code changed, and account codes drawn freely."""
    layout = ibans._national_layout("DE")
    by_method: dict[str | None, list[str]] = {}
    for code, check in layout.by_key.items():
        by_method.setdefault(None if check is None else check.algorithm.name, []).append(code)
    values: list[str] = []
    for _, codes in sorted(by_method.items(), key=lambda item: str(item[0])):
        for code in rng.sample(sorted(codes), min(3, len(codes))):
            for _ in range(6):
                with contextlib.suppress(SchwiftyException):
                    values.append(str(IBAN.random("DE", random=rng, bank_code=code)))
            for _ in range(10):
                account = f"{rng.randrange(10 ** rng.randrange(1, 11)):010d}"
                values.append(_fix_mod97("DE00" + code + account))
    mutants = []
    for value in values:
        at = rng.randrange(12, 22)
        digit = rng.choice([d for d in "0123456789" if d != value[at]])
        mutants.append(_fix_mod97(value[:at] + digit + value[at + 1 :]))
    return values + mutants


def _fix_mod97(iban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in iban[4:] + iban[:2] + "00")
    return f"{iban[:2]}{98 - int(digits) % 97:02d}{iban[4:]}"


def test_german_ibans_are_decided_natively_as_schwifty_decides(tmp_path: Path) -> None:
    values = _german_values(random.Random(21))
    path = tmp_path / "de.csv"
    path.write_text("iban\n" + "\n".join(values) + "\n", encoding="utf-8")
    native = ibans._german_tables()
    assert native is not None
    layout = ibans._national_layout("DE")
    pending_methods = set()
    outcomes = set()
    for value, (verdict, got) in zip(values, _iban_verdicts(path, "utf-8"), strict=True):
        canonical, reason = ibans.normalise_iban(value)
        if verdict == "pending":
            check = layout.by_key.get(value[4:12])
            pending_methods.add(None if check is None else check.algorithm.name)
            continue
        assert (verdict, got) == (("canonical", canonical) if canonical else ("reject", reason))
        outcomes.add(verdict)
    assert pending_methods == {"C0", "68"}
    assert outcomes == {"canonical", "reject"}


def test_bench_like_leak_leaves_no_german_iban_pending(tmp_path: Path) -> None:
    customers = make_customers(3000, seed=8)
    leak = make_leak(customers, 8000, overlap=0.4, seed=9).frame
    path = write_delimited(leak, tmp_path / "leak.csv", delimiter=";", encoding="cp1252")
    dialect = detect_dialect(_sample(path, "cp1252"))
    plan = fastscan._plan(dialect.columns, "cp1252", ";", dict(COLUMN_CATEGORIES), "FR")
    iban = next(i for i, (_, kind) in enumerate(plan.keys) if kind is KeyKind.IBAN)
    decided = 0
    for part in fastscan._parts(path, plan, dialect.header_lines, 10_000, 1 << 16):
        assert isinstance(part, fastscan._Part)
        offsets = array("q", part.out.decided[KeyKind.IBAN].offsets)
        data = part.out.decided[KeyKind.IBAN].data
        decided += sum(data[offsets[i] : offsets[i] + 2] == b"DE" for i in range(len(offsets) - 1))
        pend = array("q", part.out.pend_off)
        for i, slot in enumerate(array("H", part.out.pend_slot)):
            value = part.out.pend_data[pend[i] : pend[i + 1]].decode()
            assert slot != iban or not value.replace(" ", "").upper().startswith("DE"), i
    assert decided > 20
