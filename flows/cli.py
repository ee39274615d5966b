"""The ``leakwatch`` command line: one composition root, plain steps, Prefect only where it pays.

Single steps (``customers load``, ``ingest``, ``match``, ``exposures``, ``notify``, ``report``)
call the steps directly: they start in about a second. ``run`` and ``demo`` go through the
Prefect flow (a temporary local server costs 15-25 s unless ``PREFECT_API_URL`` points to a
running one), because a whole breach response is worth tracking in Prefect.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from core.errors import ConfigError, LeakwatchError

# Importing a command module registers its commands on the app.
from flows import (  # noqa: F401
    cli_breach,
    cli_evidence,
    cli_notify,
    cli_pepper,
    cli_report,
    cli_store,
)
from flows.cli_base import BreachOpt, EncryptToOpt, app, console, customers_app, out
from flows.cli_base import runtime as _runtime
from flows.cli_base import settings as _settings

__all__ = ["app", "main"]


@customers_app.command("load")
def customers_load(
    file: Annotated[Path, typer.Argument(help="Customer file, CSV or Parquet.")],
) -> None:
    """Load or refresh the customer base (design.md §2 columns)."""
    from flows import steps

    report = steps.load_customer_file(_runtime(), file)
    out.print(
        f"[bold]{report.rows_read}[/] rows read from {file}: {report.inserted} new, "
        f"{report.updated} updated, {report.unchanged} unchanged, "
        f"{report.rows_rejected} rows refused, {report.values_rejected} values refused"
    )
    for reason, n in sorted(report.rejects_by_reason.items()):
        out.print(f"  {n:>8}  {reason}")
    if report.rejects_by_reason:
        out.print("  (rows and columns of each refusal are in the store: table customer_rejects)")


@app.command()
def ingest(
    sources: Annotated[list[str], typer.Argument(help="Files or folders.")],
    breach: BreachOpt,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="COLUMN=KIND, e.g. --map col3=phone or --map notes=ignore."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option("--password", help="Password of encrypted archives (zip, 7z)."),
    ] = None,
) -> None:
    """Acquire, parse, normalise and hash leaked files into a breach."""
    from connectors import parse_overrides
    from flows import steps

    overrides = parse_overrides(map_ or [])
    rt = _runtime()
    failed = False
    for source in sources:
        report = steps.ingest_source(rt, source, breach, overrides, password=password)
        out.print(
            f"{source}: {report.artifacts} file(s) ingested, {report.skipped_known} already known, "
            f"{report.rows_read} rows read, {report.rows_rejected} rows refused, "
            f"{report.values_rejected} values refused, {report.keys} keys"
        )
        for error in report.errors:
            failed = True
            console.print(f"[red]refused[/]: {error}")
    if failed:
        raise typer.Exit(1)


@app.command()
def match(breach: BreachOpt) -> None:
    """Link the breach's leak keys to customer keys and compute exposures."""
    from flows import steps

    exposed = steps.match_breach(_runtime(), breach)
    out.print(f"breach {breach}: [bold]{exposed}[/] exposed customers")


@app.command()
def exposures(
    breach: BreachOpt,
    format_: Annotated[str, typer.Option("--format", help="csv, json or parquet.")] = "csv",
    output: Annotated[
        Path | None, typer.Option(help="File to write (default exposures.FORMAT).")
    ] = None,
    encrypt_to: EncryptToOpt = None,
) -> None:
    """Export one row per exposed customer: customer_id, matched_on, categories, risk."""
    from flows import steps
    from flows.handover import hand_over_written

    if format_ not in ("csv", "json", "parquet"):
        raise typer.BadParameter("choose csv, json or parquet", param_hint="--format")
    rt = _runtime()
    counted: list[int] = []
    path = hand_over_written(
        rt.settings,
        output or Path(f"exposures.{format_}"),
        encrypt_to or [],
        lambda target: counted.append(
            steps.export_exposures(rt, breach, target, format_)  # type: ignore[arg-type]
        ),
    )
    out.print(f"{counted[0]} exposed customers written to {path}")


@app.command()
def run(
    customers: Annotated[Path, typer.Option(help="Customer file, CSV or Parquet.")],
    source: Annotated[list[str], typer.Option(help="Leaked file or folder; repeat for more.")],
    breach: BreachOpt,
    output: Annotated[Path, typer.Option(help="Folder for exposures, report and outbox.")] = Path(
        "leakwatch-output"
    ),
    map_: Annotated[list[str] | None, typer.Option("--map", help="COLUMN=KIND overrides.")] = None,
) -> None:
    """The whole breach response through Prefect: customers, ingestion, matching, notices, report."""
    from connectors import parse_overrides
    from flows.runner import run_breach_response

    _runtime()  # fail early on a missing pepper
    summary = run_breach_response(
        breach_id=breach,
        sources=source,
        customers=str(customers),
        column_map=parse_overrides(map_ or []),
        output_dir=str(output),
        settings=_settings(),
    )
    out.print(summary.render())
    if summary.refused:
        raise typer.Exit(1)


@app.command()
def demo(
    output: Annotated[Path, typer.Option(help="Where the demo writes its results.")] = Path(
        "demo-output"
    ),
    customers: Annotated[int, typer.Option(help="Synthetic customers.")] = 30_000,
    leaked_rows: Annotated[int, typer.Option(help="Synthetic leaked rows.")] = 20_000,
    seed: int = 2024,
    fake_sendgrid: Annotated[
        bool,
        typer.Option(
            "--fake-sendgrid", help="Also send the notices to a fake SendGrid on loopback."
        ),
    ] = False,
) -> None:
    """Synthesise an operator and a messy leak, then run the whole breach response on them."""
    from flows.demo import run_demo

    run_demo(
        output,
        n_customers=customers,
        n_leaked=leaked_rows,
        seed=seed,
        console=out,
        fake_sendgrid=fake_sendgrid,
    )


def main() -> None:
    """Console entry point: exit 0 on success, 1 on a failed run, 2 on bad usage."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    try:
        app()
    except ConfigError as exc:
        console.print(f"[red]configuration error[/]: {exc}")
        sys.exit(2)
    except LeakwatchError as exc:
        console.print(f"[red]error[/]: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
