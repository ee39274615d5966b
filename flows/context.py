"""The composition root: settings, the pepper and the store, built once per command or flow run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from core.errors import ConfigError
from core.settings import Settings
from matching.keyed_hash import Pepper
from matching.store import Store

__all__ = ["Runtime", "export_pepper_for_this_process", "load_pepper", "open_store", "runtime"]

PEPPER_ENV = "LEAKWATCH_PEPPER"


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


@contextmanager
def open_store(settings: Settings, *, read_only: bool = False) -> Iterator[Store]:
    store = Store(
        settings.store,
        threads=settings.duckdb_threads,
        memory_limit=settings.duckdb_memory_limit,
        temp_dir=settings.work_dir / "duckdb-tmp",
        read_only=read_only,
    )
    try:
        yield store
    finally:
        store.close()


def export_pepper_for_this_process(pepper: Pepper) -> None:
    """The demo makes its own pepper; child code in this process reads it like any other."""
    os.environ[PEPPER_ENV] = pepper.to_text()
    os.environ["LEAKWATCH_PEPPER_KEY_ID"] = pepper.key_id
