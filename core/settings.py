"""Settings, read once at the composition root from ``LEAKWATCH_*`` variables and ``.env``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Everything configurable. Library code receives values from here; it never reads the env."""

    model_config = SettingsConfigDict(
        env_prefix="LEAKWATCH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # The store and scratch space.
    store: Path = Path(".leakwatch/leakwatch.duckdb")
    work_dir: Path = Path(".leakwatch/work")

    # Keyed hashing (design.md §2). Hex or base64 of 32 random bytes; or a Prefect Secret block.
    pepper: SecretStr | None = None
    pepper_key_id: str = "k1"
    pepper_block: str | None = None

    # Parsing and the store.
    batch_rows: int = Field(default=250_000, ge=1_000)
    default_region: str = "FR"
    # Delimited text through the native scanner (matching/fastscan.py) where it can read it;
    # false takes the Python parser and normalisers for every file (same results, slower).
    native_scan: bool = True
    duckdb_threads: int | None = None
    # DuckDB's threads for the link (matching/link.py); unset: one more than duckdb_threads.
    duckdb_link_threads: int | None = Field(default=None, ge=1)
    # DuckDB's share of the 3 GiB a national-size run may use: the process around it (polars
    # batches, the interpreter) peaks near 0.9 GB; DuckDB spills to work_dir past this.
    duckdb_memory_limit: str = "2GB"
    shards: int = Field(default=1, ge=1, le=256)
    # The sharded match's Dask scheduler (tcp://host:8786); unset: a local cluster per run.
    dask_address: str | None = None
    # One writer: a second process waits this long for the store, then stops (StoreBusyError).
    store_wait_s: float = Field(default=60.0, ge=0)
    # Snapshots of the store before each run that changes it; 0 disables them.
    snapshot_keep: int = Field(default=5, ge=0)
    # `leakwatch pepper rotate`: the new pepper (hex or base64), read only by that command.
    new_pepper: SecretStr | None = None

    # Acquisition limits (archives, downloads). Hostile files are refused past these.
    archive_max_total_bytes: int = 8 * 1024**3
    archive_max_member_bytes: int = 4 * 1024**3
    archive_max_ratio: float = 200.0
    archive_max_members: int = 100_000
    archive_max_depth: int = 5
    http_max_bytes: int = 16 * 1024**3
    http_connect_timeout_s: float = 10.0
    http_read_timeout_s: float = 60.0
    http_retries: int = 5
    http_max_redirects: int = 5

    # The operator, as customers and the CNIL see it.
    operator_name: str = "Opérateur Exemple"
    regime: Literal["telecom", "gdpr"] = "telecom"
    support_contact: str = "3900 (appel gratuit depuis une ligne de l'opérateur)"
    dpo_contact: str = "dpo@operateur.example"
    sender_email: str = "securite@operateur.example"

    # Sending.
    sendgrid_api_key: SecretStr | None = None
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_timeout_s: float = 30.0
    # Event Webhook verification key: base64 DER, as SendGrid's Mail Settings show it.
    sendgrid_webhook_public_key: str | None = None
    sendgrid_concurrency: int = Field(default=4, ge=1, le=64)  # requests in flight
    # Notices of one shape sharing a request (personalizations); 1: one request per notice.
    sendgrid_per_request: int = Field(default=1000, ge=1, le=1000)
    notify_batch_size: int = Field(default=100, ge=1, le=1000)  # notices per ledger batch
    # `events serve` keeps the store open between calls, and gives it back after this long
    # without one (at once when another process waits for it); 0: closes it after every call.
    events_hold_idle_s: float = Field(default=5.0, ge=0)

    # Signing evidence and reports.
    signing_key_file: Path | None = None
    signing_passphrase: SecretStr | None = None
    signing_passphrase_block: str | None = None  # a Prefect Secret block holding the passphrase

    # Encrypted hand-over: fingerprints of the recipients' keys, comma separated in
    # LEAKWATCH_RECIPIENT_FINGERPRINTS (spaces inside one are ignored, as gpg groups them); a
    # recipient key whose fingerprint is not here is refused.
    recipient_fingerprints: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("recipient_fingerprints", mode="before")
    @classmethod
    def _split_fingerprints(cls, value: object) -> object:
        if isinstance(value, str):
            parts = (p.replace(" ", "").upper() for p in value.replace(";", ",").split(","))
            return [p for p in parts if p]
        return value

    # Watched sources: a JSON or YAML list of {source, breach_id} for the `watch` flow.
    watch_config: Path | None = None
