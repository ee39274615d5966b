"""Commands ``report`` (the DPO's run report) and ``register`` (the breach register, art. 33(5))."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from flows.cli_base import BreachOpt, EncryptToOpt, app, console, out
from flows.cli_base import settings as _settings

__all__ = ["progress_bar"]

_NO_PDF = (
    "PDF is not built in: no well-kept Python library renders this page on a fresh machine "
    "without system libraries (WeasyPrint needs Pango; browser-based printers need a browser). "
    "Open report.html in a browser and print it to PDF: the page has print styles."
)


class RegisterFormatChoice(StrEnum):
    csv = "csv"
    json = "json"


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Progress]:
    """A rich progress bar on stderr (stdout stays for results); hidden when not a terminal."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        bar.add_task(description, total=total)
        yield bar


@app.command()
def report(
    breach: BreachOpt,
    output: Annotated[Path, typer.Option(help="Folder for report.html.")] = Path("."),
    pdf: Annotated[bool, typer.Option("--pdf", help="Not available; says why.")] = False,
    encrypt_to: EncryptToOpt = None,
) -> None:
    """Write the DPO's run report: one self-contained HTML page, counts only."""
    from flows import report_steps

    if pdf:
        raise typer.BadParameter(_NO_PDF, param_hint="--pdf")
    with progress_bar(f"report {breach}", 3) as bar:
        task = bar.task_ids[0]

        def step(what: str) -> None:
            bar.update(task, description=f"report {breach}: {what}", advance=1)

        path, summary = report_steps.write_report_file(
            _settings(), breach, output, encrypt_to=encrypt_to or [], progress=step
        )
    out.print(
        f"report of breach {breach} written to {path}: {summary.exposed_total} exposed "
        f"customers, {summary.rows_read} leaked rows read"
    )


@app.command()
def register(
    format_: Annotated[
        RegisterFormatChoice, typer.Option("--format", help="csv or json.")
    ] = RegisterFormatChoice.csv,
    output: Annotated[
        Path | None, typer.Option(help="File to write (default breach-register.FORMAT).")
    ] = None,
    encrypt_to: EncryptToOpt = None,
) -> None:
    """Export the breach register (GDPR art. 33(5)): every breach, notified or not, and why."""
    from flows import report_steps
    from flows.context import open_store
    from matching.register import breach_ids

    settings = _settings()
    with open_store(settings, read_only=True) as store:
        total = len(breach_ids(store))
    path = output or Path(f"breach-register.{format_.value}")
    with progress_bar("register", total) as bar:
        task = bar.task_ids[0]
        result = report_steps.export_register(
            settings,
            format_.value,
            path,
            encrypt_to=encrypt_to or [],
            progress=lambda b: bar.update(task, description=f"register: {b}", advance=1),
        )
    out.print(
        f"{result.breaches} breach(es) written to {result.path}, "
        f"{result.not_notified} without a CNIL notification decision of 'yes'"
    )
