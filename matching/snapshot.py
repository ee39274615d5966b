"""Snapshots of the store before each run that changes it, and restoring one."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from core.errors import ConfigError
from matching.sql import Statement
from matching.store import Store

__all__ = [
    "Snapshot",
    "drop_snapshots",
    "restore_snapshot",
    "rewrite_store",
    "snapshot_dir",
    "snapshots",
    "take_snapshot",
]

_CHECKPOINT = Statement("checkpoint before a snapshot", "CHECKPOINT")
_CURRENT = Statement("current database name", "SELECT current_database()")
_ATTACH = Statement("attach a fresh copy", "ATTACH $path AS leakwatch_fresh")
_DETACH = Statement("detach the fresh copy", "DETACH leakwatch_fresh")
_STEP = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class Snapshot:
    path: Path
    taken_at: str
    step: str


def snapshot_dir(store_path: Path) -> Path:
    """``<store>.snapshots/`` next to the store file."""
    return store_path.with_name(store_path.name + ".snapshots")


def snapshots(store_path: Path) -> list[Snapshot]:
    """The store's snapshots, oldest first (names sort by their UTC timestamp)."""
    folder = snapshot_dir(store_path)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.duckdb")):
        stamp, _, step = path.stem.partition("-")
        found.append(Snapshot(path=path, taken_at=stamp, step=step))
    return found


def take_snapshot(store: Store, step: str, *, keep: int) -> Path | None:
    """Checkpoint, copy the store file to ``<store>.snapshots/<UTC>-<step>.duckdb``, keep ``keep``.

    Called with the store open for writing, so no other process can change it during the copy;
    after ``CHECKPOINT`` the write-ahead log is empty and the file alone is the whole store.
    """
    if keep <= 0:
        return None
    store.run(_CHECKPOINT)
    folder = snapshot_dir(store.path)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{stamp}-{_STEP.sub('-', step.lower()).strip('-') or 'run'}.duckdb"
    partial = target.with_suffix(".partial")
    shutil.copyfile(store.path, partial)
    os.replace(partial, target)  # a snapshot is whole or absent, even if killed mid-copy
    for old in snapshots(store.path)[:-keep]:
        old.path.unlink(missing_ok=True)
    return target


def _check_readable(path: Path) -> None:
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise ConfigError(f"{path} is not a readable store ({type(exc).__name__})") from None
    con.close()


def restore_snapshot(store: Store, snapshot: Path) -> None:
    """Replace the store's file by a snapshot's; ``store`` is open for writing (the lock) and closed.

    Opening the store first is what refuses a restore while another process holds it. The
    write-ahead log is emptied before the swap so that it cannot be replayed onto the snapshot.
    """
    if not snapshot.is_file():
        raise ConfigError(f"no snapshot at {snapshot}")
    _check_readable(snapshot)
    staged = store.path.with_name(store.path.name + ".restoring")
    shutil.copyfile(snapshot, staged)
    store.run(_CHECKPOINT)
    try:
        os.replace(staged, store.path)
    finally:
        store.close()


def drop_snapshots(store_path: Path) -> int:
    """Delete every snapshot (after a pepper rotation they hold hashes made with the old key)."""
    gone = snapshots(store_path)
    for snap in gone:
        snap.path.unlink(missing_ok=True)
    return len(gone)


def rewrite_store(store: Store) -> None:
    """Copy the live data into a fresh file and swap it in; ``store`` is closed afterwards.

    DuckDB leaves deleted rows in freed blocks of the file: after deleting hashes made with a
    retired key, only a rewrite guarantees that none of their bytes remain.
    """
    store.run(_CHECKPOINT)
    fresh = store.path.with_name(store.path.name + ".rewriting")
    fresh.unlink(missing_ok=True)
    name = str(store.scalar(_CURRENT)).replace('"', '""')
    store.run(_ATTACH, {"path": str(fresh)})
    store.run(Statement("copy the live data", f'COPY FROM DATABASE "{name}" TO leakwatch_fresh'))
    store.run(_DETACH)
    try:
        os.replace(fresh, store.path)
    finally:
        store.close()
