"""Named column compression (schema 9): the key tables and the rejects keep every row and use
the compression each column names, in a new store and in a migrated one."""

from __future__ import annotations

from pathlib import Path

from old_stores import rows, schema_at

from matching.sql import MIGRATIONS
from matching.store import Store

_TABLES = ("leak_keys", "customer_keys", "rejects")
_FILL = """
INSERT INTO customer_keys
    SELECT range // 2 + 1, ['email', 'iban', 'phone'][range % 3 + 1], hash(range),
           hash(range + 1), 'k'
    FROM range(300000);
INSERT INTO leak_keys (artifact_no, table_no, row, kind, k1, k2, categories)
    SELECT range // 3000 + 1, 0, range, ['email', 'iban', 'phone'][range % 3 + 1],
           hash(range * 7), hash(range * 11), (range % 64)::USMALLINT
    FROM range(300000);
INSERT INTO rejects
    SELECT 1, 0, range, 'col' || (range % 4), 'reason ' || (range % 9) FROM range(150000);
"""
# What each column names (matching/migrations/0009_key_compression.sql); RLE and bit packing
# store a constant segment as Constant.
_EXPECTED = {
    ("customer_keys", "customer_no"): {"BitPacking"},
    ("customer_keys", "kind"): {"RLE", "Constant"},
    ("customer_keys", "k1"): {"Uncompressed"},
    ("customer_keys", "k2"): {"Uncompressed"},
    ("customer_keys", "key_id"): {"DICT_FSST", "Constant"},
    ("leak_keys", "artifact_no"): {"RLE", "Constant"},
    ("leak_keys", "table_no"): {"RLE", "Constant"},
    ("leak_keys", "row"): {"BitPacking"},
    ("leak_keys", "kind"): {"RLE", "Constant"},
    ("leak_keys", "k1"): {"Uncompressed"},
    ("leak_keys", "k2"): {"Uncompressed"},
    ("leak_keys", "categories"): {"BitPacking"},
    ("leak_keys", "customer_hint"): {"Uncompressed", "Constant"},  # schema 10
    ("rejects", "artifact_no"): {"RLE", "Constant"},
    ("rejects", "table_no"): {"RLE", "Constant"},
    ("rejects", "row"): {"BitPacking"},
    ("rejects", "column"): {"DICT_FSST"},
    ("rejects", "reason"): {"DICT_FSST"},
}
_SCHEMA_9 = {
    t: [f'"{c}"' for (table, c) in _EXPECTED if table == t and c != "customer_hint"]
    for t in _TABLES
}


def _contents(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Each table's rows, in the columns schema 9 had (later schemas may add some)."""
    return {
        t: rows(path, f"SELECT {', '.join(_SCHEMA_9[t])} FROM {t} ORDER BY ALL") for t in _TABLES
    }


def _compressions(path: Path) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for table in _TABLES:
        for column, compression in rows(
            path,
            f"SELECT column_name, compression FROM pragma_storage_info('{table}') "
            "WHERE segment_type <> 'VALIDITY'",
        ):
            found.setdefault((table, column), set()).add(compression)
    return found


def test_a_migrated_store_keeps_its_rows_and_names_each_compression(tmp_path: Path) -> None:
    old = tmp_path / "v8.duckdb"
    con = schema_at(old, 8)
    con.execute(_FILL)
    con.close()
    before = _contents(old)
    assert all(before.values())

    with Store(old) as store:
        assert store.schema_version == len(MIGRATIONS) >= 9
        store.con.execute("CHECKPOINT")
    assert _contents(old) == before
    named = rows(
        old,
        "SELECT table_name, count(*) FROM duckdb_columns() WHERE table_name IN "
        "('leak_keys', 'customer_keys', 'rejects') GROUP BY ALL ORDER BY ALL",
    )
    for table, columns in named:  # every column of the three names its compression
        (sql,) = rows(old, f"SELECT sql FROM duckdb_tables() WHERE table_name = '{table}'")[0]
        assert sql.count("USING COMPRESSION") == columns, table
    found = _compressions(old)
    assert found.keys() == _EXPECTED.keys()
    for column, allowed in _EXPECTED.items():
        assert found[column] <= allowed, column

    new = tmp_path / "new.duckdb"
    with Store(new) as store:
        store.con.execute(_FILL)
        store.con.execute("CHECKPOINT")
    schema = (
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "ORDER BY ALL"
    )
    assert rows(old, schema) == rows(new, schema)
    assert _compressions(new) == found
