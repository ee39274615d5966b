"""The evidence manifest: every artifact recorded, signed so that real gpg verifies it, tamper-evident."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from flows import evidence_steps, steps
from flows.context import Runtime, load_pepper
from synthetic import make_customers, make_leak, write_delimited

ROOT = Path(__file__).resolve().parents[2]
LEAKWATCH = [sys.executable, "-c", "from flows.cli import main; main()"]

pytestmark = pytest.mark.skipif(
    shutil.which("gpg") is None, reason="gnupg is not installed (make test installs it)"
)


@pytest.fixture
def gnupghome() -> Iterator[dict[str, str]]:
    """A throw-away keyring; short path under /tmp (gpg-agent's socket path is limited)."""
    home = tempfile.mkdtemp(prefix="lw-gpg-")
    os.chmod(home, 0o700)
    env = {**os.environ, "GNUPGHOME": home}
    try:
        yield env
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def _gpg(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["gpg", "--batch", *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )


def _telegram_export(folder: Path, leak_file: Path) -> None:
    (folder / "files").mkdir(parents=True)
    shutil.copy(leak_file, folder / "files" / "dump.csv")
    message = {
        "id": 77,
        "type": "message",
        "date": "2024-10-20T14:05:00",
        "date_unixtime": "1729425900",
        "from": "Vendeur",
        "from_id": "user424242",
        "file": "files/dump.csv",
        "text": "",
    }
    document = {"name": "Leaks", "type": "public_channel", "id": 555, "messages": [message]}
    (folder / "result.json").write_text(json.dumps(document))


@pytest.fixture
def breach(tmp_path: Path, leakwatch_env: Path) -> Runtime:
    """A store with a breach fed from a file, a Telegram export and a refused file."""
    customers = make_customers(800, seed=51)
    leak_a = make_leak(customers, 500, overlap=0.3, seed=52)
    leak_b = make_leak(customers, 400, overlap=0.3, seed=53)
    settings = Settings()
    rt = Runtime(settings=settings, pepper=load_pepper(settings))
    write_delimited(leak_a.frame, tmp_path / "leak_a.csv")
    write_delimited(leak_b.frame, tmp_path / "leak_b.csv", delimiter=";")
    _telegram_export(tmp_path / "export", tmp_path / "leak_b.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    for source in ("leak_a.csv", "export", "empty.csv"):
        steps.ingest_source(rt, str(tmp_path / source), "b-ev")
    return rt


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LEAKWATCH, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_manifest_verifies_with_gpg_and_a_changed_byte_does_not(
    breach: Runtime, tmp_path: Path, gnupghome: dict[str, str]
) -> None:
    env = {**gnupghome, "LEAKWATCH_SIGNING_PASSPHRASE": "tribunal judiciaire"}
    keygen = _run(["evidence", "keygen", "--output", str(tmp_path / "keys")], env)
    assert keygen.returncode == 0, keygen.stderr
    assert (tmp_path / "keys" / "signing-key.asc").stat().st_mode & 0o777 == 0o600
    env["LEAKWATCH_SIGNING_KEY_FILE"] = str(tmp_path / "keys" / "signing-key.asc")
    out = tmp_path / "evidence"
    result = _run(["evidence", "--breach", "b-ev", "--output", str(out)], env)
    assert result.returncode == 0, result.stderr

    assert _gpg(gnupghome, "--import", "signer.asc", cwd=out).returncode == 0
    verified = _gpg(gnupghome, "--verify", "manifest.json.asc", "manifest.json", cwd=out)
    assert verified.returncode == 0, verified.stderr
    assert "Good signature" in verified.stderr

    data = bytearray((out / "manifest.json").read_bytes())
    data[len(data) // 2] ^= 0x01
    (out / "manifest.json").write_bytes(bytes(data))
    tampered = _gpg(gnupghome, "--verify", "manifest.json.asc", "manifest.json", cwd=out)
    assert tampered.returncode != 0
    assert "BAD signature" in tampered.stderr


def test_manifest_records_every_artifact_deterministically(breach: Runtime, tmp_path: Path) -> None:
    from notify.pgp import Signer

    signer = Signer.generate("t", "t@example.test")
    first = evidence_steps.write_evidence(breach.settings, "b-ev", tmp_path / "one", signer)
    evidence_steps.write_evidence(breach.settings, "b-ev", tmp_path / "two", signer)
    one = json.loads(first.manifest.read_text())
    two = json.loads((tmp_path / "two" / "manifest.json").read_text())
    one.pop("generated_at"), two.pop("generated_at")
    assert one == two
    lines = [
        line for line in first.manifest.read_text().splitlines() if '"generated_at"' not in line
    ]
    assert lines == [
        line
        for line in (tmp_path / "two" / "manifest.json").read_text().splitlines()
        if '"generated_at"' not in line
    ]

    assert one["breach_id"] == "b-ev" and one["format"] == "leakwatch-evidence/1"
    records = one["artifacts"]
    assert one["artifact_count"] == len(records) == 3
    by_kind = {r["source_kind"]: r for r in records if r["state"] == "done"}
    assert set(by_kind) == {"file", "telegram"}
    file_record = by_kind["file"]
    leak_a = tmp_path / "leak_a.csv"
    import hashlib

    assert file_record["sha256"] == hashlib.sha256(leak_a.read_bytes()).hexdigest()
    assert file_record["size"] == leak_a.stat().st_size
    assert file_record["rows_read"] == 500 and file_record["parser"]
    assert file_record["acquired_at"].endswith("Z")
    telegram = by_kind["telegram"]
    assert telegram["inner_path"] == "files/dump.csv"
    assert telegram["telegram"]["message_id"] == 77
    assert telegram["telegram"]["poster_id"] == "user424242"
    assert telegram["telegram"]["date"] == "2024-10-20T12:05:00+00:00"
    refused = [r for r in records if r["state"] != "done"]
    assert len(refused) == 1 and refused[0]["refusal"]
    assert list(records[0]) == sorted(records[0])


def test_no_signing_key_is_a_configuration_error(breach: Runtime, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_SIGNING")}
    result = _run(["evidence", "--breach", "b-ev", "--output", str(tmp_path / "e")], env)
    assert result.returncode == 2
    assert "LEAKWATCH_SIGNING_KEY_FILE" in result.stderr
    unknown = _run(["evidence", "keygen", "--output", str(tmp_path / "k")], env)
    assert unknown.returncode == 0
    env["LEAKWATCH_SIGNING_KEY_FILE"] = str(tmp_path / "k" / "signing-key.asc")
    missing = _run(["evidence", "--breach", "nope", "--output", str(tmp_path / "e")], env)
    assert missing.returncode == 1
    assert "no such breach" in missing.stderr
