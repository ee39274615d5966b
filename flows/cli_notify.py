"""Commands for sending customer notices and proving delivery: ``notify customers|fallback``, ``events serve|import``."""

from __future__ import annotations

import signal
from contextlib import suppress
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flows.cli_base import BreachOpt, app, console, notify_app, out
from flows.cli_base import settings as _settings

__all__ = ["events_app"]

events_app = typer.Typer(help="SendGrid delivery events (proof of delivery).", no_args_is_help=True)
app.add_typer(events_app, name="events")

_SHOWN_IDS = 50


def _print_counts(title: str, counts: dict[str, int]) -> None:
    table = Table(title=title, show_header=True)
    table.add_column("state")
    table.add_column("notices", justify="right")
    for state, n in counts.items():
        if n:
            table.add_row(state, f"{n:,}")
    out.print(table)


@notify_app.command("customers")
def notify_customers(
    breach: BreachOpt,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Render and check only: nothing sent or changed.")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="Send at most N notices this run.")] = None,
    outbox: Annotated[
        Path, typer.Option(help="Folder for .eml notices when no SendGrid key is set.")
    ] = Path("outbox"),
    fake_sendgrid: Annotated[
        bool,
        typer.Option("--fake-sendgrid", help="Send to an in-process fake SendGrid (demo, tests)."),
    ] = False,
    resend_ambiguous: Annotated[
        bool,
        typer.Option(
            "--resend-ambiguous",
            help="Send again the notices whose earlier send may or may not have gone out.",
        ),
    ] = False,
) -> None:
    """Send each exposed customer's notice once (SendGrid with a key, else the outbox)."""
    from flows import notify_steps
    from notify.fake_sendgrid import FakeSendGrid

    settings = _settings()
    fake = FakeSendGrid().start() if fake_sendgrid else None
    try:
        if fake is not None:
            console.print(
                f"[yellow]fake SendGrid[/] running in this process at {fake.url}: "
                "nothing leaves this machine"
            )
        sender = notify_steps.build_sender(settings, outbox=outbox, fake=fake)
        verb = "checking" if dry_run else ("drafting" if sender.name == "outbox" else "sending")
        with Progress(
            TextColumn(f"{verb} notices"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(verb, total=None)
            report = notify_steps.send_customer_notices(
                settings,
                breach,
                sender,
                dry_run=dry_run,
                limit=limit,
                resend_ambiguous=resend_ambiguous,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        if fake is not None and not dry_run:
            notify_steps.fake_events_round(settings, fake)
            console.print("[yellow]fake SendGrid[/] posted its signed delivery events")
    finally:
        if fake is not None:
            fake.stop()

    where = f"outbox {outbox}" if sender.name == "outbox" else sender.name
    out.print(
        f"breach {breach} via {where}{' (dry run)' if dry_run else ''}: "
        f"{report.planned} newly planned, {report.candidates} to process, "
        f"{report.accepted} accepted, {report.drafted} drafted, "
        f"{report.incomplete} refused as incomplete, {report.failed - report.incomplete} failed, "
        f"{report.unsent} not sent (will be retried), {report.retries} retries"
    )
    for element, n in sorted(report.incomplete_reasons.items()):
        out.print(f"  incomplete: {n:>6}  {element}")
    if not dry_run:
        _print_counts(f"notices of {breach}", notify_steps.notice_counts(settings, breach))
    if report.ambiguous and not dry_run:
        shown = report.ambiguous[:_SHOWN_IDS]
        console.print(
            f"[red]{len(report.ambiguous)} ambiguous notice(s)[/]: a request went out and its "
            "answer was lost, and no delivery event tells what happened. They were NOT sent "
            "again. Import or receive delivery events (leakwatch events import/serve) and run "
            "again, or re-send them knowingly with --resend-ambiguous."
        )
        for notice_id in shown:
            console.print(f"  {notice_id}")
        if len(report.ambiguous) > len(shown):
            console.print(f"  … and {len(report.ambiguous) - len(shown)} more")
        raise typer.Exit(1)


@notify_app.command("fallback")
def notify_fallback(
    breach: BreachOpt,
    output: Annotated[
        Path | None, typer.Option(help="CSV to write (default fallback-BREACH.csv).")
    ] = None,
) -> None:
    """List the customers to reach by post or SMS: bounced, dropped, or without e-mail."""
    from flows import notify_steps

    path = output or Path(f"fallback-{breach}.csv")
    rows, counts = notify_steps.write_fallback(_settings(), breach, path)
    out.print(
        f"{rows} customers for a fallback channel written to {path}: "
        f"{counts['bounced']} bounced, {counts['dropped']} dropped, "
        f"{counts['late_bounce']} bounced after delivery, {counts['post']} without e-mail"
    )


@events_app.command("serve")
def events_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8787,
) -> None:
    """Receive SendGrid's signed Event Webhook (verified, deduplicated) until interrupted."""
    from flows import notify_steps

    server = notify_steps.events_server(_settings(), host=host, port=port)
    out.print(f"receiving signed SendGrid events at {server.url} (Ctrl-C to stop)")
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop, as Ctrl-C
    with suppress(KeyboardInterrupt):
        server.serve_forever()  # gives the store back however it ends


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@events_app.command("import")
def events_import(
    file: Annotated[Path, typer.Argument(help="Exported events: JSON array or JSON lines.")],
) -> None:
    """Record an exported batch of SendGrid events (trusted file: no signature to check)."""
    from flows import notify_steps

    counts, ignored = notify_steps.import_events(_settings(), file)
    out.print(
        f"{counts['received']} events read from {file}: {counts['stored']} new, "
        f"{counts['changed']} notices changed state"
    )
    for reason, n in sorted(ignored.items()):
        out.print(f"  ignored: {n:>6}  {reason}")
