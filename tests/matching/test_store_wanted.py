"""The store's hand-over flag: wanted while any waiter waits, not after; an opener announces only
while it waits; announcing never stops an opener."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import StoreBusyError
from core.settings import Settings
from flows.context import _open_waiting
from matching.store import Store
from matching.store_wanted import Waiting, WantedProbe, wanted_path


def _until(condition: Callable[[], bool], tries: int = 250) -> bool:
    for _ in range(tries):
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_the_store_is_wanted_until_the_last_waiter_withdraws(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    wanted = WantedProbe(store)
    first, second = Waiting(store), Waiting(store)
    try:
        assert not wanted()
        first.renew()
        assert wanted()
        second.renew()
        first.withdraw()
        assert wanted()
        second.withdraw()
        assert not wanted()
        flag = wanted_path(store)
        assert flag.stat().st_size == 0 and flag.stat().st_mode & 0o777 == 0o600
        assert flag.name == "s.duckdb.wanted"
    finally:
        first.withdraw()
        second.withdraw()
        wanted.close()


def test_an_opener_announces_while_it_waits_and_withdraws_once_it_has_the_store(
    tmp_path: Path,
) -> None:
    settings = Settings(store=tmp_path / "s.duckdb", work_dir=tmp_path / "w", store_wait_s=30)
    wanted = WantedProbe(settings.store)
    holder = Store(settings.store)
    opened: list[Store] = []
    opener = threading.Thread(
        target=lambda: opened.append(_open_waiting(settings, read_only=False))
    )
    opener.start()
    try:
        assert _until(wanted)  # waiting, and saying so
        assert not opened
    finally:
        holder.close()
    opener.join(timeout=30)
    assert opened and not wanted()  # has the store: no longer waiting
    opened[0].close()
    wanted.close()


def test_an_opener_that_gives_up_withdraws(tmp_path: Path) -> None:
    settings = Settings(store=tmp_path / "s.duckdb", work_dir=tmp_path / "w", store_wait_s=0.3)
    wanted = WantedProbe(settings.store)
    with (
        Store(settings.store),
        pytest.raises(StoreBusyError, match=r"gave up after waiting 0\.3 s"),
    ):
        _open_waiting(settings, read_only=False)
    assert wanted_path(settings.store).exists()  # it did announce
    assert not wanted()
    wanted.close()


def test_announcing_is_best_effort(tmp_path: Path) -> None:
    """A flag that cannot be created (here: no folder) neither stops a waiter nor reads as wanted."""
    store = tmp_path / "missing" / "s.duckdb"
    with Waiting(store) as waiting:
        waiting.renew()
    assert not WantedProbe(store)()
