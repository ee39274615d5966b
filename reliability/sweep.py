"""Sweeping for canaries: every spelling of a planted identifier or of the pepper, everywhere.

Haystacks are text or bytes: a store's values (every table, as text), its raw bytes, every file
below a folder (work folders, outputs, snapshots), captured logs, recorded HTTP requests.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from pathlib import Path

import duckdb

from matching.keyed_hash import Pepper

__all__ = [
    "folder_haystacks",
    "hits",
    "iban_spellings",
    "pepper_spellings",
    "phone_spellings",
    "store_haystacks",
    "store_values_text",
]


def phone_spellings(e164: str) -> list[str]:
    """``+33698765432`` → E.164, national, bare and grouped forms a leak or a log might hold."""
    national = "0" + e164[3:]
    pairs = " ".join(national[i : i + 2] for i in range(0, 10, 2))
    return [e164, national, e164[1:], e164[3:], pairs, pairs.replace(" ", ".")]


def iban_spellings(iban: str) -> list[str]:
    grouped = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return [iban, iban[4:], grouped, iban.lower()]


def pepper_spellings(pepper: Pepper) -> list[str | bytes]:
    """Hex (both cases), base64 and the raw 32 bytes."""
    return [
        pepper.secret.hex(),
        pepper.secret.hex().upper(),
        base64.b64encode(pepper.secret).decode(),
        pepper.secret,
    ]


def store_values_text(path: Path) -> str:
    """Every value of every table as text: clear data shows here even if compressed on disk."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        parts = []
        tables = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        for (table,) in tables:
            quoted = '"' + str(table).replace('"', '""') + '"'
            # the table name comes from the catalogue and is quoted as an identifier
            sql = f"SELECT string_agg(t::VARCHAR, '|') FROM {quoted} t"  # noqa: S608
            row = con.execute(sql).fetchone()
            parts.append(str(row[0] if row and row[0] is not None else ""))
        return "\n".join(parts)
    finally:
        con.close()


def store_haystacks(path: Path) -> dict[str, str | bytes]:
    return {"store values": store_values_text(path), "store bytes": path.read_bytes()}


def folder_haystacks(folder: Path, label: str) -> dict[str, str | bytes]:
    """Each regular file below ``folder`` (a missing folder has none)."""
    if not folder.exists():
        return {}
    return {
        f"{label}: {p.relative_to(folder)}": p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def hits(
    haystacks: Mapping[str, str | bytes], needles: Iterable[str | bytes]
) -> list[tuple[str, str]]:
    """(where, which needle) for each needle found; needles are compared as UTF-8 bytes too."""
    wanted = [(n if isinstance(n, str) else f"<{len(n)} raw bytes>", _as_bytes(n)) for n in needles]
    found = []
    for where, hay in haystacks.items():
        raw = _as_bytes(hay)
        for label, needle in wanted:
            if needle and needle in raw:
                found.append((where, label))
    return found
