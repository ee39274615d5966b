"""``leakwatch pepper rotate``: re-key the store under a new pepper (wiring only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from connectors import acquire_path, parse_artifact, read_customers
from connectors.acquire import AcquireOptions, Refusal, acquire
from core.errors import ConfigError
from flows.cli_base import app, console, out
from flows.cli_base import runtime as _runtime
from flows.context import Runtime, open_store
from matching import rotation
from matching.keyed_hash import Pepper
from matching.snapshot import drop_snapshots, rewrite_store

__all__ = ["pepper_app", "rotate_pepper"]

pepper_app = typer.Typer(help="The keyed-hash secret.", no_args_is_help=True)
app.add_typer(pepper_app, name="pepper")


def rotate_pepper(
    rt: Runtime,
    new_pepper: Pepper,
    customers: Path,
    sources: Sequence[str],
    breach_ids: Sequence[str],
) -> rotation.RotationReport:
    """Re-read the customer file and every breach's sources under the new pepper, then swap keys."""
    settings = rt.settings
    with open_store(settings) as store:
        stored = rotation.stored_breaches(store)
        unlisted = sorted(set(stored) - set(breach_ids))
        if unlisted:
            raise ConfigError(
                f"the store holds breaches not listed with --breach: {', '.join(unlisted)}; "
                "every breach must be re-keyed at once"
            )
        customer_sha = next(acquire_path(customers)).sha256
        if customer_sha != rotation.last_customer_file(store):
            raise ConfigError(
                f"{customers} is not the customer file loaded last: load it with "
                "`leakwatch customers load` first, then rotate"
            )
        rotation.begin_rotation(store, new_pepper)
        table = read_customers(
            customers, batch_rows=settings.batch_rows, work_dir=settings.work_dir
        )
        rotation.stage_customers(
            store, table.batches(), new_pepper, default_region=settings.default_region
        )
        expected = [a for b in stored for a in rotation.artifacts_to_rekey(store, b)]
        wanted: dict[tuple[str, str], list[int]] = {}
        for ref in expected:
            wanted.setdefault((ref.sha256, ref.inner_path), []).append(ref.artifact_no)
        rekeyed: set[int] = set()
        options = AcquireOptions(work_dir=settings.work_dir, settings=settings)
        for source in sources:
            for artifact in acquire(source, options):
                if isinstance(artifact, Refusal):
                    continue
                numbers = [
                    n
                    for n in wanted.get((artifact.sha256, artifact.inner_path or ""), [])
                    if n not in rekeyed
                ]
                if not numbers:
                    continue
                tables = parse_artifact(
                    artifact, batch_rows=settings.batch_rows, work_dir=settings.work_dir
                )
                roles = {n: rotation.table_roles(store, n) for n in numbers}
                for table_no, table in enumerate(tables):
                    for number in numbers:
                        rotation.stage_leak_table(
                            store,
                            number,
                            table_no,
                            table.batches(),
                            roles[number].get(table_no, {}),
                            new_pepper,
                            default_region=settings.default_region,
                        )
                rekeyed.update(numbers)
        report = rotation.commit_rotation(store, new_pepper, expected=expected, rekeyed=rekeyed)
        # Deleted rows linger in the file's free blocks, and snapshots hold old-key hashes.
        rewrite_store(store)
    drop_snapshots(settings.store)
    return report


@pepper_app.command("rotate")
def rotate(
    new_key_id: Annotated[str, typer.Option(help="Key id of the new pepper, e.g. k2.")],
    customers: Annotated[Path, typer.Option(help="The customer file loaded last (full base).")],
    source: Annotated[list[str], typer.Option(help="Every source of every breach; repeat.")],
    breach: Annotated[list[str], typer.Option(help="Every breach of the store; repeat.")],
) -> None:
    """Re-key everything under LEAKWATCH_NEW_PEPPER and delete every hash made with the old key."""
    rt = _runtime()
    if rt.settings.new_pepper is None:
        raise ConfigError("set LEAKWATCH_NEW_PEPPER to the new pepper (64 hex digits)")
    new_pepper = Pepper.from_text(rt.settings.new_pepper.get_secret_value(), new_key_id)
    if new_pepper.secret == rt.pepper.secret:
        raise ConfigError("the new pepper is the current one")
    report = rotate_pepper(rt, new_pepper, customers, source, breach)
    out.print(
        f"re-keyed {report.customers} customers ({report.customer_keys} keys) and "
        f"{report.artifacts} file(s) ({report.leak_keys} keys) under key id {report.new_key_id}; "
        "no hash made with the old pepper remains"
    )
    console.print(
        "now set LEAKWATCH_PEPPER to the new pepper and "
        f"LEAKWATCH_PEPPER_KEY_ID={report.new_key_id}, and retire the old one"
    )
