"""Signed evidence and watched sources as plain steps: settings in, files and counts out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import yaml

from core.errors import ConfigError
from core.settings import Settings
from flows.context import open_store
from flows.handover import prepare
from matching.evidence import evidence_records, manifest_bytes
from notify.pgp import Signer

__all__ = [
    "EvidenceReport",
    "KeyFiles",
    "WatchedSource",
    "load_signer",
    "load_watch_list",
    "make_signing_key",
    "write_evidence",
]

MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.asc"
# The encrypted manifest cannot be "manifest.json.asc" (the detached signature's name); gpg's
# --decrypt-files strips ".pgp", which gives back manifest.json beside its signature.
SEALED_MANIFEST = "manifest.json.pgp"
PUBLIC_KEY = "signer.asc"
PRIVATE_KEY = "signing-key.asc"


@dataclass(frozen=True)
class EvidenceReport:
    manifest: Path  # manifest.json, or manifest.json.pgp when handed over encrypted
    signature: Path
    public_key: Path
    artifacts: int
    fingerprint: str


@dataclass(frozen=True)
class KeyFiles:
    private: Path
    public: Path
    fingerprint: str


@dataclass(frozen=True)
class WatchedSource:
    source: str
    breach_id: str


def _tool_version() -> str:
    try:
        return metadata.version("leakwatch")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _passphrase(settings: Settings) -> str | None:
    if settings.signing_passphrase is not None:
        return settings.signing_passphrase.get_secret_value()
    if settings.signing_passphrase_block:
        from prefect.blocks.system import Secret  # only when configured: importing is slow

        return str(Secret.load(settings.signing_passphrase_block).get())  # type: ignore[union-attr]
    return None


def load_signer(settings: Settings) -> Signer:
    """The configured signing key, unlocked check included; a ConfigError says what to set."""
    if settings.signing_key_file is None:
        raise ConfigError(
            "no signing key: set LEAKWATCH_SIGNING_KEY_FILE to an armored OpenPGP private key "
            "(make one with `leakwatch evidence keygen --output DIR`)"
        )
    return Signer.from_file(settings.signing_key_file, _passphrase(settings))


def write_evidence(
    settings: Settings,
    breach_id: str,
    output: Path,
    signer: Signer | None = None,
    *,
    encrypt_to: Sequence[Path] = (),
    now: datetime | None = None,
) -> EvidenceReport:
    """manifest.json, its detached armored signature and the signer's public key, in ``output``.

    With recipients (``encrypt_to``, checked before anything is written) the manifest is written
    only as a signed OpenPGP message, ``manifest.json.pgp``; the detached signature is still made
    over the clear manifest, so that ``gpg --verify manifest.json.asc manifest.json`` holds once
    a recipient has decrypted it. The other form of the manifest, left by an earlier run, is
    removed: the signature it went with is overwritten.
    """
    handover = prepare(settings, encrypt_to, signer)
    signer = handover.signer or load_signer(settings)
    with open_store(settings, read_only=True) as store:
        records = evidence_records(store, breach_id)
    data = manifest_bytes(
        breach_id, records, tool_version=_tool_version(), generated_at=now or datetime.now(UTC)
    )
    sealed = handover.seal(data) if handover.encrypted else None
    output.mkdir(parents=True, exist_ok=True)
    manifest = output / (SEALED_MANIFEST if sealed else MANIFEST)
    signature = output / SIGNATURE
    public_key = output / PUBLIC_KEY
    (output / (MANIFEST if sealed else SEALED_MANIFEST)).unlink(missing_ok=True)
    manifest.write_bytes(sealed or data)
    signature.write_text(signer.sign_detached(data), encoding="ascii")
    public_key.write_text(signer.public_armored(), encoding="ascii")
    return EvidenceReport(
        manifest=manifest,
        signature=signature,
        public_key=public_key,
        artifacts=len(records),
        fingerprint=signer.fingerprint,
    )


def make_signing_key(output: Path, *, name: str, email: str, passphrase: str | None) -> KeyFiles:
    """A new Ed25519 signing key: the private key (owner-only file) and the public key."""
    signer = Signer.generate(name, email, passphrase)
    output.mkdir(parents=True, exist_ok=True)
    private = output / PRIVATE_KEY
    if private.exists():
        raise ConfigError(f"{private} exists; refusing to overwrite a signing key")
    descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as f:
        f.write(signer.private_armored())
    public = output / PUBLIC_KEY
    public.write_text(signer.public_armored(), encoding="ascii")
    return KeyFiles(private=private, public=public, fingerprint=signer.fingerprint)


def load_watch_list(settings: Settings, only: list[str] | None = None) -> list[WatchedSource]:
    """The watched sources of ``LEAKWATCH_WATCH_CONFIG`` (JSON or YAML), optionally a subset."""
    path = settings.watch_config
    if path is None:
        raise ConfigError("no watched sources: set LEAKWATCH_WATCH_CONFIG to a JSON or YAML file")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML reads JSON too
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the watch list ({type(exc).__name__})") from None
    entries = loaded.get("sources") if isinstance(loaded, dict) else loaded
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a list of {{source, breach_id}}")
    watched: list[WatchedSource] = []
    for number, entry in enumerate(entries, start=1):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("source"), str)
            and isinstance(entry.get("breach_id"), str)
        ):
            raise ConfigError(f"{path}: entry {number}: needs 'source' and 'breach_id' strings")
        watched.append(WatchedSource(source=entry["source"], breach_id=entry["breach_id"]))
    if only is not None:
        unknown = sorted(set(only) - {w.source for w in watched})
        if unknown:
            raise ConfigError(f"{path}: {len(unknown)} requested source(s) are not in the list")
        watched = [w for w in watched if w.source in only]
    return watched
