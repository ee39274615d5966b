"""Commands ``breach confirm|status|describe`` and ``notify regulator`` (the CNIL dossier)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from core.errors import ConfigError
from flows.cli_base import BreachOpt, EncryptToOpt, app, notify_app, out
from flows.cli_base import settings as _settings

__all__ = ["breach_app"]

breach_app = typer.Typer(
    help="A breach's status, deadlines and description (for the CNIL dossier).",
    no_args_is_help=True,
)
app.add_typer(breach_app, name="breach")


class RegimeChoice(StrEnum):
    telecom = "telecom"
    gdpr = "gdpr"


class PhaseChoice(StrEnum):
    initial = "initial"
    complementary = "complementary"


def _aware_at(value: str | None) -> datetime | None:
    """Parse --aware-at at the command line, so a malformed time is bad usage (exit 2)."""
    if value is None:
        return None
    from notify.deadlines import parse_moment

    try:
        return parse_moment(value, what="--aware-at")
    except ConfigError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--aware-at: ")) from None


BreachArg = Annotated[str, typer.Argument(help="Breach identifier, e.g. 2024-10-free.")]


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "—"


@breach_app.command("confirm")
def breach_confirm(
    breach_id: BreachArg,
    aware_at: Annotated[
        str | None,
        typer.Option(
            "--aware-at",
            help="When the operator became aware, ISO 8601 with offset "
            "(default: the first ingestion).",
        ),
    ] = None,
    regime: Annotated[
        RegimeChoice | None,
        typer.Option(help="telecom (CNIL 24 h, 611/2013) or gdpr (72 h, art. 33)."),
    ] = None,
) -> None:
    """Confirm a suspected breach: customers may then be notified."""
    from flows import breach_steps

    moment = _aware_at(aware_at)
    status = breach_steps.confirm(
        _settings(),
        breach_id,
        aware_at=moment,
        regime=regime.value if regime else None,
    )
    out.print(f"breach {breach_id} [bold]confirmed[/] ({status.regime})")
    _print_status(status)


@breach_app.command("status")
def breach_status(breach_id: BreachArg) -> None:
    """Status, regime, awareness time and every deadline with its state."""
    from flows import breach_steps

    _print_status(breach_steps.breach_status(_settings(), breach_id))


def _print_status(status: object) -> None:
    from flows.breach_steps import BreachStatus

    assert isinstance(status, BreachStatus)
    source = {
        "officer": "recorded by the officer",
        "first_ingestion": "first ingestion (no awareness time recorded)",
    }
    out.print(
        f"breach {status.breach_id}: [bold]{status.status}[/], regime {status.regime}; "
        f"aware at {_when(status.aware_at)}"
        + (f" — {source[status.aware_from]}" if status.aware_from else " — not yet known")
    )
    out.print(f"confirmed at {_when(status.confirmed_at)}; described: {status.described}")
    table = Table("deadline", "due", "from", "state", "legal basis")
    for s in status.deadlines:
        label = s.deadline.label + ("" if s.deadline.binding else " (target)")
        due = _when(s.deadline.due_at) + (" (provisional)" if s.deadline.provisional else "")
        basis = s.deadline.legal_basis.split(" — ")[0]
        table.add_row(label, due, s.deadline.starts_from, s.state, basis)
    out.print(table)
    for n in status.regulator_notices:
        late = "" if n.on_time else f" — LATE: {n.late_reason}"
        out.print(f"  {n.phase} dossier {_when(n.generated_at)} sha256 {n.dossier_sha256}{late}")


@breach_app.command("describe")
def breach_describe(
    breach_id: BreachArg,
    output: Annotated[
        Path | None, typer.Option(help="Where to write the template (default description.yaml).")
    ] = None,
    from_: Annotated[
        Path | None, typer.Option("--from", help="Load a filled-in description into the store.")
    ] = None,
) -> None:
    """Write the description template for the officer, or load a filled-in one (--from)."""
    from flows import breach_steps

    if from_ is not None and output is not None:
        raise typer.BadParameter("give either --output or --from", param_hint="--from")
    if from_ is not None:
        missing = breach_steps.load_description(_settings(), breach_id, from_)
        out.print(f"description of {breach_id} loaded from {from_}")
        if missing:
            out.print(
                "still to complete before the complementary notification: " + ", ".join(missing)
            )
        return
    path = breach_steps.write_description_template(
        _settings(), breach_id, output or Path("description.yaml")
    )
    out.print(f"template written to {path}: fill it in, then --from {path}")


_CLEAR_DOSSIER = ("dossier.json", "dossier.html")


@notify_app.command("regulator")
def notify_regulator(
    breach: BreachOpt,
    phase: Annotated[PhaseChoice, typer.Option(help="initial or complementary.")] = (
        PhaseChoice.initial
    ),
    output: Annotated[
        Path | None,
        typer.Option(help="Folder for dossier.json and dossier.html (default cnil-BREACH-PHASE)."),
    ] = None,
    late_reason: Annotated[
        str | None,
        typer.Option(help="Reasons for the delay; required when the notice is late."),
    ] = None,
    encrypt_to: EncryptToOpt = None,
) -> None:
    """Build the CNIL dossier (JSON validated against its schema, and HTML), and record it."""
    from flows import breach_steps

    folder = output or Path(f"cnil-{breach}-{phase.value}")
    result = breach_steps.regulator_dossier(
        _settings(),
        breach,
        phase=phase.value,
        output_dir=folder,
        late_reason=late_reason,
        encrypt_to=encrypt_to or [],
    )
    timing = "on time" if result.on_time else "LATE (reason recorded)"
    out.print(
        f"{result.phase} dossier written: {result.json_path}, {result.html_path} "
        f"(sha256 {result.sha256}{' of the clear dossier.json' if encrypt_to else ''}); "
        f"due {_when(result.due_at)}: {timing}"
    )
    if encrypt_to and (left := [n for n in _CLEAR_DOSSIER if (folder / n).exists()]):
        out.print(
            f"[yellow]warning[/]: {', '.join(left)} of an earlier dossier are still in clear in "
            f"{folder}"
        )
    if result.pending_fields:
        out.print(
            "to complete in the complementary notification: " + ", ".join(result.pending_fields)
        )
