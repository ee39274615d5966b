"""The composition root: settings, the pepper and the store, built once per command or flow run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from core.errors import ConfigError, StoreBusyError
from core.settings import Settings
from matching.keyed_hash import Pepper
from matching.store import Store
from matching.store_wanted import Waiting, WantedProbe

__all__ = [
    "HeldStore",
    "Runtime",
    "export_pepper_for_this_process",
    "load_pepper",
    "open_store",
    "runtime",
]

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


class HeldStore:
    """The store kept open between uses, for ``events serve``; given back when another
    process waits for it or after ``idle_s`` without use.

    Opening and closing cost a call more than recording its events (on the 20 M store: about
    0.26 s a call, 0.07 s for 1 000 events). Not thread-safe: the caller serialises every
    method (``EventsServer`` calls them under its lock). Once given back, each :meth:`use`
    opens the store again (waiting as any opener does) and holds it anew. While another
    process waits for the store (:mod:`matching.store_wanted`), :meth:`use` refuses at once
    (:class:`StoreBusyError`, the call's 503): calls arriving back to back would otherwise
    take the store again in the instant between one's close and the waiter's next try.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        idle_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._idle_s = idle_s
        self._clock = clock
        self._wanted = WantedProbe(settings.store)
        self._store: Store | None = None
        self._last_use = 0.0
        self.opens = 0  # times the store was opened: the measure of what holding saves

    @property
    def held(self) -> bool:
        return self._store is not None

    @contextmanager
    def use(self) -> Iterator[Store]:
        """The store, opened if it is not held; a failure inside gives it back."""
        if self._wanted():
            self.release()
            raise StoreBusyError(
                f"the store {self._settings.store} is wanted by another leakwatch process"
            )
        if self._store is None:
            self._store = _open_waiting(self._settings, read_only=False)
            self.opens += 1
        try:
            yield self._store
        except BaseException:
            self.release()  # whatever failed, the next use starts from a fresh connection
            raise
        finally:
            self._last_use = self._clock()

    def settle(self) -> None:
        """Give the store back if another process waits for it, or after ``idle_s`` unused."""
        if self._store is not None and (
            self._clock() - self._last_use >= self._idle_s or self._wanted()
        ):
            self.release()

    def release(self) -> None:
        """Close the store (DuckDB checkpoints) if held; the next use opens it again."""
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def close(self) -> None:
        self.release()
        self._wanted.close()


def export_pepper_for_this_process(pepper: Pepper) -> None:
    """The demo makes its own pepper; child code in this process reads it like any other."""
    os.environ[PEPPER_ENV] = pepper.to_text()
    os.environ["LEAKWATCH_PEPPER_KEY_ID"] = pepper.key_id
