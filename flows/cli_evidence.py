"""Commands ``evidence`` (signed manifest of a breach's artifacts), ``evidence keygen`` and ``watch``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli_base import app, out
from flows.cli_base import settings as _settings

__all__ = ["evidence_app"]

evidence_app = typer.Typer(
    help="Signed evidence of what was acquired, where and when (for a court order)."
)
app.add_typer(evidence_app, name="evidence")


@evidence_app.callback(invoke_without_command=True)
def evidence(
    ctx: typer.Context,
    breach: Annotated[
        str | None, typer.Option("--breach", "-b", help="Breach identifier, e.g. 2024-10-free.")
    ] = None,
    output: Annotated[
        Path, typer.Option(help="Folder for manifest.json, manifest.json.asc, signer.asc.")
    ] = Path("evidence"),
    encrypt_to: Annotated[
        list[Path] | None,
        typer.Option(
            "--encrypt-to",
            help="Recipient's armored public key; repeat for more. The manifest is written only "
            "as a signed OpenPGP message (manifest.json.pgp); its detached signature and the "
            "public key stay beside it. Fingerprints must be pinned in "
            "LEAKWATCH_RECIPIENT_FINGERPRINTS.",
        ),
    ] = None,
) -> None:
    """Write the breach's evidence manifest, its detached OpenPGP signature and the public key.

    The key is LEAKWATCH_SIGNING_KEY_FILE, unlocked with LEAKWATCH_SIGNING_PASSPHRASE (or the
    Prefect Secret block LEAKWATCH_SIGNING_PASSPHRASE_BLOCK). Check with:
    gpg --import signer.asc && gpg --verify manifest.json.asc manifest.json
    (encrypted: gpg --decrypt-files manifest.json.pgp first).
    """
    if ctx.invoked_subcommand is not None:
        return
    if breach is None:
        raise typer.BadParameter("--breach is required", param_hint="--breach")
    from flows import evidence_steps

    report = evidence_steps.write_evidence(_settings(), breach, output, encrypt_to=encrypt_to or [])
    out.print(
        f"{report.artifacts} artifact record(s) of breach {breach} written to {report.manifest}, "
        f"signed by {report.fingerprint} ({report.signature.name}, {report.public_key.name})"
    )


@evidence_app.command("keygen")
def keygen(
    output: Annotated[Path, typer.Option(help="Folder for signing-key.asc and signer.asc.")],
    name: Annotated[str, typer.Option(help="The key's user id name.")] = "leakwatch evidence",
    email: Annotated[str | None, typer.Option(help="The key's e-mail (default: DPO).")] = None,
) -> None:
    """Make an Ed25519 signing key, protected by LEAKWATCH_SIGNING_PASSPHRASE when it is set."""
    from flows import evidence_steps

    settings = _settings()
    passphrase = settings.signing_passphrase
    files = evidence_steps.make_signing_key(
        output,
        name=name,
        email=email or settings.dpo_contact,
        passphrase=passphrase.get_secret_value() if passphrase else None,
    )
    out.print(f"signing key {files.fingerprint}: {files.private} (private), {files.public}")
    if passphrase is None:
        out.print("[yellow]warning[/]: the private key is not protected (no passphrase set)")
    out.print(f"use it with: export LEAKWATCH_SIGNING_KEY_FILE={files.private}")


@app.command("watch")
def watch_sources(
    source: Annotated[
        list[str] | None,
        typer.Option(help="Only these sources of the watch list; repeat for more."),
    ] = None,
) -> None:
    """Ingest what is new in the watched sources (LEAKWATCH_WATCH_CONFIG), through Prefect."""
    import os

    from flows.cli_base import runtime
    from flows.evidence_steps import load_watch_list

    settings = _settings()
    runtime()  # fail early on a missing pepper or watch list, before Prefect starts
    load_watch_list(settings, source or None)
    from flows.watch import watch

    os.environ["LEAKWATCH_STORE"] = str(settings.store)
    summary = watch(sources=source or None)
    out.print(
        f"{summary['sources']} watched source(s): {summary['new_artifacts']} new artifact(s), "
        f"{summary['known_artifacts']} already known, {summary['failed']} failed; "
        f"matched breaches: {', '.join(summary['matched_breaches']) or 'none'}"
    )
    if summary["failed"] or summary["refused"]:
        raise typer.Exit(1)
