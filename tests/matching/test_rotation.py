"""Pepper rotation: exposures unchanged, no hash made with the old pepper left, refusals change nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from core.errors import ConfigError
from core.settings import Settings
from flows import steps
from flows.cli_pepper import rotate_pepper
from flows.context import Runtime, open_store, runtime
from matching.identity import normalise
from matching.keyed_hash import Pepper, hash_keys, key_bytes, key_words
from matching.link import link
from matching.snapshot import snapshots
from schemas.vocab import KeyKind
from synthetic import make_customers, make_leak, write_delimited, write_jsonl


def _exposures(store: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(
            "SELECT breach_id, customer_id, matched_on, categories, risk, matched_rows "
            "FROM exposures ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


def _key_ids(store: Path) -> set[str]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        rows = con.execute(
            "SELECT key_id FROM customer_keys UNION SELECT a.key_id FROM artifacts a "
            "SEMI JOIN leak_keys k USING (artifact_no) "
            "UNION SELECT key_id FROM customers"
        ).fetchall()
        return {r[0] for r in rows}
    finally:
        con.close()


def _numbers(store: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Each customer's number, and the kinds of key each number holds."""
    con = duckdb.connect(str(store), read_only=True)
    try:
        numbers = con.execute("SELECT customer_id, customer_no FROM customers ORDER BY ALL")
        by_number = con.execute(
            "SELECT customer_no, kind::VARCHAR, count(*) FROM customer_keys GROUP BY ALL ORDER BY ALL"
        )
        return numbers.fetchall(), by_number.fetchall()
    finally:
        con.close()


def _old_hashes(customers: pl.DataFrame, pepper: Pepper) -> set[bytes]:
    """Every key the old pepper gives the customers' identifiers: none may remain."""
    found: set[bytes] = set()
    for column, kind in (
        ("email", KeyKind.EMAIL),
        ("phone", KeyKind.PHONE),
        ("iban", KeyKind.IBAN),
    ):
        canonical = normalise(kind, customers[column], "FR")["canonical"]
        words = hash_keys(pepper, kind, canonical).drop_nulls()
        found |= {key_bytes(k1, k2) for k1, k2 in words.iter_rows()}
    return found


def _on_disk(key: bytes) -> list[bytes]:
    """How a key's two words lie in the file: UBIGINT values, in the machine's byte order."""
    k1, k2 = key_words(key)
    return [k1.to_bytes(8, sys.byteorder), k2.to_bytes(8, sys.byteorder)]


@pytest.fixture
def world(leakwatch_env: Path, tmp_path: Path) -> tuple[Runtime, pl.DataFrame, list[str]]:
    rt = runtime(Settings())
    customers = make_customers(600, seed=31)
    customers.write_csv(tmp_path / "customers.csv")
    leak = make_leak(customers, 500, overlap=0.5, seed=32).frame
    folder = tmp_path / "leak"
    folder.mkdir()
    write_delimited(leak.head(300), folder / "a.csv", delimiter=";")
    write_jsonl(leak.slice(300), folder / "b.jsonl")
    other = make_leak(customers, 200, overlap=0.4, seed=33).frame
    write_delimited(other, tmp_path / "other.csv")
    steps.load_customer_file(rt, tmp_path / "customers.csv")
    steps.ingest_source(rt, str(folder), "A")
    steps.ingest_source(rt, str(tmp_path / "other.csv"), "B")
    steps.match_breach(rt, "A")
    steps.match_breach(rt, "B")
    return rt, customers, [str(folder), str(tmp_path / "other.csv")]


def test_rotation_keeps_exposures_and_leaves_no_old_hash(
    world: tuple[Runtime, pl.DataFrame, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, customers, sources = world
    store = rt.settings.store
    before = _exposures(store)
    assert before and _key_ids(store) == {rt.pepper.key_id}
    numbers = _numbers(store)
    old = _old_hashes(customers, rt.pepper)
    raw_before = store.read_bytes()
    sample = list(old)[:50]
    assert sum(raw_before.count(w) for k in sample for w in _on_disk(k)) > 0  # the sweep sees keys

    new = Pepper.generate("rotated")
    report = rotate_pepper(rt, new, tmp_path / "customers.csv", sources, ["A", "B"])
    assert report.artifacts == 3 and report.leak_keys > 0

    assert _key_ids(store) == {"rotated"}
    assert _numbers(store) == numbers  # every customer keeps its number and its keys' kinds
    assert snapshots(store) == []  # they held old-key hashes
    stored: set[bytes] = set()
    con = duckdb.connect(str(store), read_only=True)
    try:
        for table in ("customer_keys", "leak_keys"):
            rows = con.execute(f"SELECT k1, k2 FROM {table}").fetchall()
            stored |= {key_bytes(k1, k2) for k1, k2 in rows}
        stored |= {bytes(r[0]) for r in con.execute("SELECT fingerprint FROM customers").fetchall()}
    finally:
        con.close()
    assert stored and not (stored & old)
    raw = store.read_bytes()
    left = [k for k in old if any(w in raw for w in _on_disk(k))]
    assert left == [], "old-key hashes left in the file's free blocks"

    monkeypatch.setenv("LEAKWATCH_PEPPER", new.to_text())
    monkeypatch.setenv("LEAKWATCH_PEPPER_KEY_ID", "rotated")
    rt2 = runtime(Settings())
    steps.match_breach(rt2, "A")
    steps.match_breach(rt2, "B")
    assert _exposures(store) == before
    with open_store(rt2.settings) as opened:  # re-keyed leak keys carry the new filter's hints
        assert link(opened, "A").plan == link(opened, "B").plan == "hinted"
    assert _exposures(store) == before
    # Loading the same file under the new pepper changes nothing: fingerprints were re-keyed too.
    again = steps.load_customer_file(rt2, tmp_path / "customers.csv")
    assert again.updated == 0 and again.inserted == 0


def test_missing_source_or_breach_is_refused_and_nothing_changes(
    world: tuple[Runtime, pl.DataFrame, list[str]], tmp_path: Path
) -> None:
    rt, _, sources = world
    store = rt.settings.store
    before = _exposures(store)
    new = Pepper.generate("rotated")
    with pytest.raises(ConfigError, match="not found in the sources given"):
        rotate_pepper(rt, new, tmp_path / "customers.csv", sources[:1], ["A", "B"])
    with pytest.raises(ConfigError, match="breaches not listed"):
        rotate_pepper(rt, new, tmp_path / "customers.csv", sources, ["A"])
    partial = tmp_path / "partial.csv"
    pl.read_csv(tmp_path / "customers.csv", infer_schema=False).head(100).write_csv(partial)
    with pytest.raises(ConfigError, match="not the customer file loaded last"):
        rotate_pepper(rt, new, partial, sources, ["A", "B"])
    with pytest.raises(ConfigError, match="already in the store"):
        rotate_pepper(
            rt, Pepper.generate(rt.pepper.key_id), tmp_path / "customers.csv", sources, ["A", "B"]
        )
    assert _key_ids(store) == {rt.pepper.key_id}
    assert _exposures(store) == before
