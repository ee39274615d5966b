"""``--encrypt-to`` on report, exposures and register: real gpg decrypts; nothing left in clear."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpg_home import Gpg, gpg_home
from report_breach import BREACH, build_breach
from typer.testing import CliRunner

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")


@pytest.fixture
def gpg() -> Iterator[Gpg]:
    with gpg_home() as g:
        yield g


def test_encrypted_hand_over_from_the_command_line(
    leakwatch_env: Path, tmp_path: Path, gpg: Gpg, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.cli import app
    from notify.pgp import RecipientKeyError, Signer

    build_breach(tmp_path)
    signer = Signer.generate("Opérateur Exemple", "securite@operateur.example")
    (tmp_path / "signing.asc").write_text(signer.private_armored())
    (tmp_path / "signer-public.asc").write_text(signer.public_armored())
    gpg.run("--import", str(tmp_path / "signer-public.asc"))
    dpo = gpg.make_key("DPO <dpo@operateur.example>", "ed25519", "cert,sign")
    gpg.add_subkey(dpo, "cv25519", "encr")
    key = gpg.export(dpo, tmp_path / "dpo.asc")
    monkeypatch.setenv("LEAKWATCH_SIGNING_KEY_FILE", str(tmp_path / "signing.asc"))
    monkeypatch.setenv("LEAKWATCH_RECIPIENT_FINGERPRINTS", f"OTHER, {dpo}")
    runner = CliRunner()
    out = tmp_path / "handover"

    def decrypt(path: Path) -> bytes:
        done = gpg.run("--status-fd", "2", "--decrypt", str(path))
        assert done.returncode == 0 and b"GOODSIG" in done.stderr, done.stderr
        return done.stdout

    result = runner.invoke(
        app, ["report", "--breach", BREACH, "--output", str(out), "--encrypt-to", str(key)]
    )
    assert result.exit_code == 0, result.output
    assert not (out / "report.html").exists()
    assert decrypt(out / "report.html.asc").startswith(b"<!DOCTYPE html>")

    target = out / "exposures.csv"
    argv = ["exposures", "--breach", BREACH, "--output", str(target), "--encrypt-to", str(key)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert not target.exists()
    lines = decrypt(out / "exposures.csv.asc").decode().splitlines()
    assert lines[0] == "customer_id,matched_on,categories,risk" and len(lines) > 100
    assert not list((tmp_path / "work").glob("handover-*"))  # the clear copy is gone

    argv = ["register", "--format", "json", "--output", str(out / "reg.json"), "--encrypt-to"]
    result = runner.invoke(app, [*argv, str(key)])
    assert result.exit_code == 0, result.output
    assert BREACH.encode() in decrypt(out / "reg.json.asc")

    monkeypatch.setenv("LEAKWATCH_RECIPIENT_FINGERPRINTS", "OTHER")
    result = runner.invoke(
        app, ["report", "--breach", BREACH, "--output", str(out / "x"), "--encrypt-to", str(key)]
    )
    assert isinstance(result.exception, RecipientKeyError)
    assert "is not pinned" in str(result.exception)
    assert not (out / "x").exists()
