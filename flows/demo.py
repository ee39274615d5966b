"""``leakwatch demo``: a synthetic operator, a messy leak in several shapes, the whole response."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import polars as pl
from rich.console import Console

from flows.context import export_pepper_for_this_process
from matching.keyed_hash import Pepper

__all__ = ["run_demo", "write_demo_inputs"]

BREACH_ID = "demo-2024-10"


def write_demo_inputs(
    folder: Path, *, n_customers: int, n_leaked: int, seed: int
) -> tuple[Path, Path, pl.DataFrame]:
    """The operator's customer file and a leak folder in the shapes leaks arrive in; and the truth."""
    from synthetic import make_customers, make_leak, write_delimited, write_json_array, write_jsonl

    customers = make_customers(n_customers, seed=seed)
    leak = make_leak(customers, n_leaked, overlap=0.3, seed=seed + 1)
    customers_path = folder / "customers.csv"
    folder.mkdir(parents=True, exist_ok=True)
    customers.write_csv(customers_path)
    leak_dir = folder / "leak"
    leak_dir.mkdir(exist_ok=True)
    frame = leak.frame
    quarter = max(1, frame.height // 4)
    parts = [frame.slice(i * quarter, quarter) for i in range(3)] + [frame.slice(3 * quarter)]
    # The main dump as a French spreadsheet export would be: cp1252, semicolons.
    write_delimited(parts[0], leak_dir / "clients_export.csv", delimiter=";", encoding="cp1252")
    # A sample posted as UTF-16 tab-separated text without a header.
    write_delimited(
        parts[1], leak_dir / "sample_utf16.tsv", delimiter="\t", encoding="utf-16", header=False
    )
    write_jsonl(parts[2], leak_dir / "dump_part3.jsonl")
    write_json_array(parts[3], leak_dir / "dump_part4.json", under_key="data")
    return customers_path, leak_dir, leak.truth


def _compare(exposures_csv: Path, truth: pl.DataFrame) -> tuple[int, int, int, int]:
    """(same keys, same categories, missing, unexpected) of the export against the truth."""
    got = pl.read_csv(exposures_csv, infer_schema=False)
    same_keys = got.join(truth, on=["customer_id", "matched_on"], how="inner").height
    same_categories = got.join(
        truth, on=["customer_id", "matched_on", "categories"], how="inner"
    ).height
    missing = truth.join(got, on="customer_id", how="anti").height
    unexpected = got.join(truth, on="customer_id", how="anti").height
    return same_keys, same_categories, missing, unexpected


_DEMO_DESCRIPTION = """\
nature: >-
  Copie non autorisée d'un extrait de la base clients, mise en vente sur une messagerie.
breach_types: [confidentiality]
circumstances: copying
circumstances_detail: Accès par le compte d'un prestataire (démonstration).
where_media: Outil de gestion des clients (CRM), exports CSV et JSON.
technical_measures: Identifiants hachés par HMAC dans leakwatch ; accès au CRM journalisés.
measures_taken: >-
  Compte compromis désactivé, mots de passe des prestataires réinitialisés, plainte déposée.
likely_consequences: Hameçonnage ciblé, tentatives de prélèvements SEPA frauduleux.
dpo_contact: dpo@operateur.example
other_providers: Un prestataire de support client.
cross_border:
  involved: false
  member_states: []
"""


def _regulator_and_evidence(output: Path, console: Console) -> None:
    """What the DPO does next: confirm, describe, the CNIL dossier, signed evidence."""
    from core.settings import Settings
    from flows import breach_steps, evidence_steps
    from notify.pgp import Signer

    settings = Settings()
    status = breach_steps.confirm(settings, BREACH_ID)
    description = output / "breach-description.yaml"
    description.write_text(_DEMO_DESCRIPTION, encoding="utf-8")
    breach_steps.load_description(settings, BREACH_ID, description)
    breach_steps.regulator_dossier(
        settings, BREACH_ID, phase="initial", output_dir=output / "dossier"
    )
    signer = Signer.generate("leakwatch demo", "evidence@operateur.example", None)
    evidence = evidence_steps.write_evidence(settings, BREACH_ID, output / "evidence", signer)
    console.print(
        f"[bold]4.[/] The DPO confirms the breach ({status.status}); the CNIL dossier is in "
        f"{output / 'dossier'}/ and the signed evidence of {evidence.artifacts} artifacts in "
        f"{output / 'evidence'}/ (check it: gpg --import signer.asc && "
        "gpg --verify manifest.json.asc manifest.json)."
    )


def _send_through_fake(output: Path, console: Console) -> None:
    """Send the notices to an in-process fake SendGrid and take back its signed events."""
    from core.settings import Settings
    from flows import notify_steps
    from notify.fake_sendgrid import FakeSendGrid

    settings = Settings()
    fake = FakeSendGrid().start()
    try:
        sender = notify_steps.build_sender(settings, outbox=output / "outbox", fake=fake)
        report = notify_steps.send_customer_notices(settings, BREACH_ID, sender)
        notify_steps.fake_events_round(settings, fake)
    finally:
        fake.stop()
    counts = notify_steps.notice_counts(settings, BREACH_ID)
    shown = ", ".join(f"{state} {n}" for state, n in sorted(counts.items()) if n)
    console.print(
        f"[bold]5.[/] Sent through a fake SendGrid on loopback (nothing left this machine): "
        f"{report.accepted} accepted; after its signed delivery events: {shown}."
    )


def run_demo(
    output: Path,
    *,
    n_customers: int,
    n_leaked: int,
    seed: int,
    console: Console,
    fake_sendgrid: bool = False,
) -> None:
    from core.settings import Settings
    from flows.runner import run_breach_response

    started = time.monotonic()
    if output.exists():
        shutil.rmtree(output)
    inputs = output / "input"
    console.print(
        f"[bold]1.[/] Synthesising an operator of {n_customers:,} customers and a leak of "
        f"{n_leaked:,} rows (30 % of them real customers, written messily) in {inputs}/"
    )
    customers_path, leak_dir, truth = write_demo_inputs(
        inputs, n_customers=n_customers, n_leaked=n_leaked, seed=seed
    )
    for path in sorted(leak_dir.iterdir()):
        console.print(f"     leak file: {path.name} ({path.stat().st_size:,} bytes)")

    # The demo's own store and pepper: nothing of yours is touched.
    os.environ["LEAKWATCH_STORE"] = str(output / "store" / "leakwatch.duckdb")
    os.environ["LEAKWATCH_WORK_DIR"] = str(output / "store" / "work")
    export_pepper_for_this_process(Pepper.generate("demo"))
    console.print(
        "[bold]2.[/] Running the breach-response flow through Prefect "
        "(load customers → ingest → match → draft notices → report)…"
    )
    outcome = run_breach_response(
        breach_id=BREACH_ID,
        sources=[str(leak_dir)],
        customers=str(customers_path),
        column_map={},
        output_dir=str(output),
        settings=Settings(),
    )
    console.print(outcome.render())
    same_keys, same_categories, missing, unexpected = _compare(output / "exposures.csv", truth)
    console.print(
        f"[bold]3.[/] Checked against the synthetic truth: {same_keys:,} of {truth.height:,} "
        f"exposed customers found with exactly the right matched keys; {missing} missed, "
        f"{unexpected} wrongly flagged. Categories exact for {same_categories:,}: the "
        "header-less sample file has no column names, so its names and addresses can only "
        "be seen as 'other' data."
    )
    _regulator_and_evidence(output, console)
    if fake_sendgrid:
        _send_through_fake(output, console)
    console.print(
        f"[bold]Results[/] ({time.monotonic() - started:.0f} s):\n"
        f"  {output / 'exposures.csv'}   one row per exposed customer: matched keys, categories, risk\n"
        f"  {output / 'report.html'}     the DPO's report: counts by key, category, risk; refusals\n"
        f"  {output / 'outbox'}/*.eml    one draft notice per exposed customer with an e-mail\n"
        f"  {output / 'dossier'}/        the CNIL dossier (JSON, validated; HTML to paste)\n"
        f"  {output / 'evidence'}/       manifest.json of what was acquired, signed (gpg)\n"
        f"  {output / 'store'}           the DuckDB store (keyed hashes only, no clear phone or IBAN)"
    )
