"""``leakwatch store snapshots|restore``: the store's snapshots and putting one back (wiring only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.errors import StoreBusyError
from flows.cli_base import app, out
from flows.cli_base import settings as _settings
from flows.context import open_store
from matching.snapshot import restore_snapshot, snapshots

__all__ = ["store_app"]

store_app = typer.Typer(help="The DuckDB store: snapshots and restore.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("snapshots")
def list_snapshots() -> None:
    """List the snapshots taken before each run that changed the store, oldest first."""
    for snap in snapshots(_settings().store):
        out.print(f"{snap.taken_at}  {snap.step:<16} {snap.path}")


# Long enough for `events serve`, which holds the store between calls, to give it back to a
# waiting opener (0.1-0.2 s, and its checkpoint: 0.13-0.16 s on the 20 M store); short enough
# that a send or a load holding the store still gets the restore refused, not queued behind it.
_RESTORE_WAIT_S = 3.0


@store_app.command("restore")
def restore(
    snapshot: Annotated[Path, typer.Argument(help="A file of <store>.snapshots/.")],
) -> None:
    """Put a snapshot back in place of the store; refused while another process holds the store."""
    settings = _settings().model_copy(update={"store_wait_s": _RESTORE_WAIT_S})
    try:
        with open_store(settings) as store:
            restore_snapshot(store, snapshot)
    except StoreBusyError as exc:
        raise StoreBusyError(f"restore refused: {exc}") from None
    out.print(f"store {settings.store} restored from {snapshot}")
