"""What every command module shares: the Typer app, its groups, consoles and the composition root.

Command modules (``flows/cli*.py``) register their commands on these objects; ``flows/cli.py``
imports them all and is the console entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from core.settings import Settings

if TYPE_CHECKING:
    from flows.context import Runtime

__all__ = [
    "BreachOpt",
    "EncryptToOpt",
    "app",
    "console",
    "customers_app",
    "notify_app",
    "out",
    "runtime",
    "settings",
]

app = typer.Typer(
    name="leakwatch",
    help="Data-breach exposure monitor and notification pipeline for telecom operators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
customers_app = typer.Typer(help="The operator's customer base.", no_args_is_help=True)
notify_app = typer.Typer(help="Notices to customers and the regulator.", no_args_is_help=True)
app.add_typer(customers_app, name="customers")
app.add_typer(notify_app, name="notify")

console = Console(stderr=True)
out = Console()

BreachOpt = Annotated[
    str, typer.Option("--breach", "-b", help="Breach identifier, e.g. 2024-10-free.")
]
EncryptToOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--encrypt-to",
        help="Recipient's armored public key; repeat for more. Writes only an OpenPGP message "
        "(.asc) signed with LEAKWATCH_SIGNING_KEY_FILE; fingerprints must be pinned in "
        "LEAKWATCH_RECIPIENT_FINGERPRINTS.",
    ),
]


class _State:
    settings: Settings | None = None


def settings() -> Settings:
    """The settings of this invocation (env, ``.env``, then global options)."""
    if _State.settings is None:
        _State.settings = Settings()
    return _State.settings


@app.callback()
def _root(
    store: Annotated[
        Path | None,
        typer.Option(
            help="The DuckDB store (env LEAKWATCH_STORE; default .leakwatch/leakwatch.duckdb)."
        ),
    ] = None,
) -> None:
    overrides: dict[str, Any] = {}
    if store is not None:
        overrides["store"] = store
    _State.settings = Settings(**overrides)


def runtime() -> Runtime:
    """Settings and pepper; fails with a ConfigError (exit 2) when no pepper is configured."""
    from flows.context import runtime as build

    return build(settings())
