"""The link runs on one DuckDB thread more than the store's, unless told how many."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings
from flows.steps import link_threads
from matching.store import Store


def test_the_link_takes_one_thread_more_than_the_store_unless_set(tmp_path: Path) -> None:
    for threads in (1, 2, 4):
        with Store(tmp_path / f"s{threads}.duckdb", threads=threads) as store:
            assert link_threads(Settings(duckdb_link_threads=None), store) == threads + 1
            assert link_threads(Settings(duckdb_link_threads=2), store) == 2
    with pytest.raises(ValidationError):
        Settings(duckdb_link_threads=0)
