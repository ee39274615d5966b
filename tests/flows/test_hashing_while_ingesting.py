"""A leak is hashed while it is ingested: the store keeps the same SHA-256 and skips the same
content, and a run cut short before the digest was recorded is picked up again."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from connectors.files import acquire_file, sha256_of
from core.errors import InputError
from flows import steps
from flows.context import runtime
from matching.store import Store
from synthetic import make_customers, make_leak, write_delimited

_ARTIFACTS = (
    "SELECT source, sha256, size, state, rows_read FROM artifacts "
    "WHERE breach_id = 'b' ORDER BY artifact_no"
)
_KEYS = "SELECT artifact_no, row, kind::VARCHAR, k1, k2 FROM leak_keys ORDER BY ALL"


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def leak_files(leakwatch_env: Path) -> tuple[Path, Path, Path]:
    """(a leak, the same bytes under another name, another leak of the same size)."""
    leak = make_leak(make_customers(600, seed=5), 3_000, overlap=0.4, seed=6).frame
    first = write_delimited(leak, leakwatch_env / "a.csv", delimiter=";")
    copy = leakwatch_env / "copy.csv"
    copy.write_bytes(first.read_bytes())
    data = bytearray(first.read_bytes())
    at = next(i for i in range(data.index(b"\n"), len(data)) if data[i : i + 1].isdigit())
    data[at] = ord("7") if data[at] != ord("7") else ord("8")  # one digit of one value changed
    other = leakwatch_env / "same-size.csv"
    other.write_bytes(bytes(data))
    return first, copy, other


def test_the_digest_is_the_files_and_known_content_is_skipped(
    leakwatch_env: Path, leak_files: tuple[Path, Path, Path]
) -> None:
    first, copy, other = leak_files
    rt = runtime()
    report = steps.ingest_source(rt, str(first), "b")
    assert (report.artifacts, report.errors) == (1, [])
    # The same bytes under another name wait for their digest and are skipped.
    assert steps.ingest_source(rt, str(copy), "b").skipped_known == 1
    # Bytes of the same size but not the same are ingested (through the hashed path).
    assert steps.ingest_source(rt, str(other), "b").artifacts == 1

    recorded = _rows(rt.settings.store, _ARTIFACTS)
    assert [(r[0], r[1], r[2], r[3]) for r in recorded] == [
        (str(p), hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_size, "done")
        for p in (first, other)
    ]
    assert recorded[0][4] == recorded[1][4] == report.rows_read == 3_000


def test_an_artifact_left_unhashed_is_ingested_again_under_its_number(
    leakwatch_env: Path, leak_files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    first, _, _ = leak_files
    rt = runtime()
    steps.ingest_source(rt, str(first), "b")
    reference = (_rows(rt.settings.store, _ARTIFACTS), _rows(rt.settings.store, _KEYS))

    # What a run killed mid-ingest leaves: the artifact without its digest, some keys stored.
    with Store(rt.settings.store) as store:
        store.con.execute(
            "UPDATE artifacts SET state = 'ingesting', sha256 = '', rows_read = 0; "
            "DELETE FROM leak_keys WHERE row > 1000; DELETE FROM leak_tables;"
        )
    report = steps.ingest_source(rt, str(first), "b")
    assert (report.artifacts, report.skipped_known, report.errors) == (1, 0, [])
    assert (_rows(rt.settings.store, _ARTIFACTS), _rows(rt.settings.store, _KEYS)) == reference


def test_a_file_that_changes_while_hashed_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "leak.csv"
    path.write_bytes(b"email\na@example.org\n" * 1000)
    artifact = acquire_file(path, "leak.csv")
    assert artifact.sha256 == sha256_of(path, "leak.csv", artifact.size)
    assert artifact.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(InputError, match=r"leak\.csv.*changed while it was read"):
        sha256_of(path, "leak.csv", artifact.size - 1)  # the size taken when it was acquired
