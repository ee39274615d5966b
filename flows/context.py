"""The composition root: settings, the pepper and the store, built once per command or flow run."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from core.errors import ConfigError, StoreBusyError
from core.settings import Settings
from matching.keyed_hash import Pepper
from matching.store import Store
from matching.store_wanted import Waiting

__all__ = ["Runtime", "export_pepper_for_this_process", "load_pepper", "open_store", "runtime"]

PEPPER_ENV = "LEAKWATCH_PEPPER"
_RETRY_MAX_S = 0.2


@dataclass(frozen=True)
class Runtime:
    """What every step receives: settings and the pepper. The store is opened per step."""

    settings: Settings
    pepper: Pepper


def load_pepper(settings: Settings) -> Pepper:
    """From ``LEAKWATCH_PEPPER``, else from the Prefect Secret block named in settings."""
    if settings.pepper is not None:
        return Pepper.from_text(settings.pepper.get_secret_value(), settings.pepper_key_id)
    if settings.pepper_block:
        from prefect.blocks.system import Secret  # only when configured: importing is slow

        value = Secret.load(settings.pepper_block).get()  # type: ignore[union-attr]
        return Pepper.from_text(str(value), settings.pepper_key_id)
    raise ConfigError(
        f"no pepper: set {PEPPER_ENV} to 64 hex digits (e.g. `openssl rand -hex 32`) "
        "or LEAKWATCH_PEPPER_BLOCK to the name of a Prefect Secret block"
    )


def runtime(settings: Settings | None = None) -> Runtime:
    settings = settings or Settings()
    return Runtime(settings=settings, pepper=load_pepper(settings))


def _open_waiting(settings: Settings, *, read_only: bool) -> Store:
    """One writer at a time: retry a busy store for ``store_wait_s``, then stop.

    While it waits it says so (:class:`matching.store_wanted.Waiting`), so that a process
    holding the store while idle (``events serve``) gives it back. The delay between tries
    grows to 0.2 s, not more: a store given back is taken within that.
    """
    deadline = time.monotonic() + settings.store_wait_s
    delay = 0.05
    waiting = Waiting(settings.store)
    try:
        while True:
            try:
                return Store(
                    settings.store,
                    threads=settings.duckdb_threads,
                    memory_limit=settings.duckdb_memory_limit,
                    temp_dir=settings.work_dir / "duckdb-tmp",
                    read_only=read_only,
                )
            except StoreBusyError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreBusyError(
                        f"{exc}; gave up after waiting {settings.store_wait_s:g} s "
                        "(LEAKWATCH_STORE_WAIT_S)"
                    ) from None
                waiting.renew()
                time.sleep(min(delay, left))
                delay = min(delay * 2, _RETRY_MAX_S)
    finally:
        waiting.withdraw()


@contextmanager
def open_store(settings: Settings, *, read_only: bool = False) -> Iterator[Store]:
    store = _open_waiting(settings, read_only=read_only)
    try:
        yield store
    finally:
        store.close()


def export_pepper_for_this_process(pepper: Pepper) -> None:
    """The demo makes its own pepper; child code in this process reads it like any other."""
    os.environ[PEPPER_ENV] = pepper.to_text()
    os.environ["LEAKWATCH_PEPPER_KEY_ID"] = pepper.key_id
