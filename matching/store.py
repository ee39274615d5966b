"""The DuckDB store: opening, migrations, and the one choke point every statement runs through."""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from core.errors import StoreBusyError, TerminalError
from matching.sql import MIGRATIONS, Statement

__all__ = ["Store", "StoreError"]

_LOCK_MESSAGE = re.compile(r"lock|Conflicting lock", re.IGNORECASE)


_STRUCTURAL = (duckdb.BinderException, duckdb.ParserException, duckdb.CatalogException)


class StoreError(TerminalError):
    """A statement failed. Carries the statement's name and text, never the bound values."""

    def __init__(self, statement: Statement, cause: BaseException) -> None:
        self.statement = statement
        # DuckDB's exception class (ConstraintException...): what a caller may tell apart.
        self.kind = kind = type(cause).__name__
        # Errors about the SQL itself are safe to show; others (conversion, constraint) may
        # quote a value, so only their kind is kept.
        detail = f": {str(cause).splitlines()[0][:300]}" if isinstance(cause, _STRUCTURAL) else ""
        super().__init__(
            f"store statement {statement.name!r} failed ({kind}{detail}): {statement.text.strip()}"
        )


class Store:
    """A leakwatch DuckDB file. One writing process at a time, or readers (DuckDB's own file
    lock, and ``<store>.lock``: see :meth:`_take_lock`)."""

    def __init__(
        self,
        path: Path,
        *,
        threads: int | None = None,
        memory_limit: str = "2GB",
        temp_dir: Path | None = None,
        read_only: bool = False,
    ) -> None:
        self.path = path
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._take_lock(path, read_only)
        config: dict[str, Any] = {"memory_limit": memory_limit}
        if threads:
            config["threads"] = threads
        if temp_dir is not None:
            temp_dir.mkdir(parents=True, exist_ok=True)
            config["temp_directory"] = str(temp_dir)
        try:
            self.con = duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            self._release_lock()
            if _LOCK_MESSAGE.search(str(exc)):
                raise StoreBusyError(
                    f"the store {path} is in use by another leakwatch process; "
                    "wait for it to finish (one writer at a time)"
                ) from None
            raise TerminalError(f"cannot open the store {path}: {type(exc).__name__}") from None
        # DuckDB draws a progress bar on the process's output for any statement over 2 s (a
        # migration, a national-scale link): noise in a flow's log, never asked for.
        self.con.execute("SET enable_progress_bar = false")
        if not read_only:
            self._migrate()

    # -- the choke point ------------------------------------------------------------------
    def run(self, statement: Statement, params: Mapping[str, Any] | None = None) -> None:
        """Execute a statement (or each part of a script) for its effect."""
        given = dict(params or {})
        try:
            for text, names in statement.parts():
                self.con.execute(text, {k: given[k] for k in names} if names else None)
        except duckdb.Error as exc:
            raise StoreError(statement, exc) from None

    def frame(self, statement: Statement, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Execute a query and materialise its result as a polars frame."""
        try:
            frame: pl.DataFrame = self.con.sql(
                statement.text, params=dict(params) if params else None
            ).pl()
            return frame
        except duckdb.Error as exc:
            raise StoreError(statement, exc) from None

    def rows(
        self, statement: Statement, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        try:
            return self.con.execute(statement.text, dict(params) if params else None).fetchall()
        except duckdb.Error as exc:
            raise StoreError(statement, exc) from None

    def arrow_batches(
        self, statement: Statement, params: Mapping[str, Any] | None = None, *, rows: int
    ) -> Iterator[pa.RecordBatch]:
        """Execute a query and stream its result as Arrow batches of about ``rows`` rows."""
        try:
            reader: pa.RecordBatchReader = self.con.sql(
                statement.text, params=dict(params) if params else None
            ).to_arrow_reader(rows)
            yield from reader
        except duckdb.Error as exc:
            raise StoreError(statement, exc) from None

    def scalar(self, statement: Statement, params: Mapping[str, Any] | None = None) -> Any:
        result = self.rows(statement, params)
        return result[0][0] if result else None

    def thread_count(self) -> int:
        """The threads DuckDB runs this store's statements on."""
        return int(self.con.execute("SELECT current_setting('threads')").fetchall()[0][0])

    @contextmanager
    def threads(self, count: int) -> Iterator[None]:
        """Run the block's statements on ``count`` DuckDB threads, then on as many as before."""
        before = self.thread_count()
        self.con.execute(f"SET threads = {int(count)}")
        try:
            yield
        finally:
            self.con.execute(f"SET threads = {before}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")

    @contextmanager
    def registered(self, name: str, frame: pl.DataFrame) -> Iterator[None]:
        """Expose a frame to SQL under a constant name for the duration of the block."""
        # DuckDB stores each Arrow chunk of a frame as its own run of row groups: a frame
        # concatenated from parts leaves a partial row group per part, and the next checkpoint
        # rewrites them to merge them (0.2-0.3 s at the close of a 1 M-row leak's ingest, for
        # 2 M keys). One contiguous copy costs a few milliseconds.
        if max(frame.n_chunks("all"), default=1) > 1:
            frame = frame.rechunk()
        self.con.register(name, frame)
        try:
            yield
        except BaseException:
            # A failed statement aborts the transaction, which then refuses the unregistering
            # (and would hide the failure); rolling the transaction back drops the frame.
            with suppress(duckdb.Error):
                self.con.unregister(name)
            raise
        self.con.unregister(name)

    def cursor(self) -> Store:
        """Another connection to this open database, for one other thread (close it after).

        It has its own transactions and sees what this one has committed; it holds no lock
        of its own and never migrates."""
        other = object.__new__(Store)
        other.path = self.path
        other._lock_fd = None
        other.con = self.con.cursor()
        return other

    def close(self) -> None:
        self.con.close()
        self._release_lock()

    # DuckDB 2.0 releases the file's lock before it is done with the write-ahead log when a
    # writer closes: a second writer, or a reader, opening in that moment fails on its first
    # commit or reads the log half written. Our own lock file, held from before opening until
    # closing has returned, closes that window: a writer holds it alone, readers share it.
    @staticmethod
    def _take_lock(path: Path, read_only: bool) -> int | None:
        name = path.with_name(path.name + ".lock")
        try:
            if read_only:  # never made by a reader: every writer open now has made it
                fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
            else:
                fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except (FileNotFoundError, PermissionError):
            if not read_only:
                raise
            return None  # a store no writer has opened, or a folder this reader cannot read
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if read_only else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreBusyError(
                f"the store {path} is in use by another leakwatch process; "
                "wait for it to finish (one writer at a time)"
            ) from None
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------
    def _migrate(self) -> None:
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_at TIMESTAMPTZ)"
        )
        # fetchall, not fetchone: a result left unfinished makes DuckDB refuse the connection's
        # next relation (``con.sql``), so a reopened store's first ``frame`` failed.
        rows = self.con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()
        current = int(rows[0][0]) if rows else 0
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self.transaction():
                self.con.execute(script)
                self.con.execute("INSERT INTO schema_version VALUES ($v, now())", {"v": version})

    @property
    def schema_version(self) -> int:
        rows = self.con.execute("SELECT max(version) FROM schema_version").fetchall()
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0
