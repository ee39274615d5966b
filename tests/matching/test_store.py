"""The store migrates once, refuses a second writer clearly, errors carry SQL, not values, and
registered frames are stored without needless partial row groups."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from core.errors import StoreBusyError
from matching.sql import MIGRATIONS, Statement
from matching.store import Store, StoreError


def test_migrations_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.scalar(Statement("n", "SELECT count(*) FROM schema_version")) == len(
            MIGRATIONS
        )


def test_a_store_draws_no_progress_bar_on_the_output(tmp_path: Path) -> None:
    """DuckDB's default in a plain process (not under pytest) draws one for statements over
    2 s, into a flow's log; a store's connections, writing or read-only, turn it off."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import duckdb\n"
        "from matching.store import Store\n"
        "from matching.sql import Statement\n"
        "query = \"SELECT current_setting('enable_progress_bar')\"\n"
        "print(duckdb.connect().execute(query).fetchone()[0])\n"
        "for read_only in (False, True):\n"
        "    with Store(Path(sys.argv[2]), read_only=read_only) as store:\n"
        "        print(store.scalar(Statement('progress bar', query)))\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, "-c", code, root, str(tmp_path / "s.duckdb")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["True", "False", "False"]


def test_a_reopened_store_answers_a_frame_and_a_stream_first(tmp_path: Path) -> None:
    # Opening reads the schema version: a result left unfinished there made DuckDB refuse the
    # connection's first relation query (frame, arrow_batches) on every store but a new one.
    path = tmp_path / "s.duckdb"
    Store(path).close()
    first = Statement("first", "SELECT 42 AS answer")
    with Store(path) as store:
        assert store.frame(first)["answer"].to_list() == [42]
    with Store(path) as store:
        assert [b.num_rows for b in store.arrow_batches(first, rows=10)] == [1]
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.frame(first).height == 1


def test_second_writer_process_is_told_to_wait(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path):
        code = (
            "import sys; from pathlib import Path; from matching.store import Store\n"
            "from core.errors import StoreBusyError\n"
            "try:\n    Store(Path(sys.argv[1]))\nexcept StoreBusyError as e:\n"
            "    print(e); sys.exit(3)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=False
        )
    assert done.returncode == 3, done.stderr
    assert "in use by another leakwatch process" in done.stdout


def test_readers_share_the_lock_file_and_wait_for_a_writer_still_closing(tmp_path: Path) -> None:
    """A writer holds ``<store>.lock`` until its close has returned (DuckDB 2.0 lets go of its
    own lock before it is done with the write-ahead log): a reader opening in that window is
    told to wait; readers hold it together, and a writer cannot take it from them."""
    path = tmp_path / "s.duckdb"
    Store(path).close()
    closing = os.open(path.with_name("s.duckdb.lock"), os.O_RDWR)
    try:
        fcntl.flock(closing, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a writer between its two closes
        with pytest.raises(StoreBusyError, match="in use by another leakwatch process"):
            Store(path, read_only=True)
        fcntl.flock(closing, fcntl.LOCK_UN)
        with Store(path, read_only=True) as one, Store(path, read_only=True) as two:
            assert one.schema_version == two.schema_version == len(MIGRATIONS)
            with pytest.raises(BlockingIOError):
                fcntl.flock(closing, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(closing, fcntl.LOCK_EX | fcntl.LOCK_NB)  # both readers let it go
    finally:
        os.close(closing)


def test_a_reader_of_a_store_no_writer_opened_needs_no_lock_file(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).close()
    path.with_name("s.duckdb.lock").unlink()
    with Store(path, read_only=True) as store:
        assert store.schema_version == len(MIGRATIONS)
    assert not path.with_name("s.duckdb.lock").exists()


def test_statement_errors_name_the_statement_but_not_the_values(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        bad = Statement("insert something", "INSERT INTO no_such_table VALUES ($v)")
        with pytest.raises(StoreError) as info:
            store.run(bad, {"v": "+33612345678"})
    message = str(info.value)
    assert "insert something" in message
    assert "+33612345678" not in message


def test_busy_error_is_transient() -> None:
    from core.errors import TransientError

    assert issubclass(StoreBusyError, TransientError)


def test_a_frame_of_several_chunks_is_stored_as_one(tmp_path: Path) -> None:
    """A partial row group per chunk would make the next checkpoint rewrite them all."""
    rows_per_group = 122_880  # DuckDB's row group size
    parts = [
        pl.DataFrame({"n": pl.int_range(130_000 * i, 130_000 * (i + 1), eager=True)})
        for i in range(3)
    ]
    frame = pl.concat(parts, rechunk=False)
    assert frame.n_chunks() == 3
    with Store(tmp_path / "s.duckdb") as store:
        store.run(Statement("table", "CREATE TABLE t (n BIGINT)"))
        with store.transaction(), store.registered("parts", frame):
            store.run(Statement("insert", "INSERT INTO t SELECT n FROM parts"))
        groups = store.scalar(
            Statement(
                "row groups", "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('t')"
            )
        )
    assert groups == -(-frame.height // rows_per_group)  # 4, not 6


def test_a_block_runs_on_the_threads_asked_and_then_on_those_before(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb", threads=2) as store:
        assert store.thread_count() == 2
        with store.threads(3):
            assert store.thread_count() == 3
        assert store.thread_count() == 2
        with pytest.raises(RuntimeError), store.threads(5):
            raise RuntimeError("a failing block")
        assert store.thread_count() == 2
