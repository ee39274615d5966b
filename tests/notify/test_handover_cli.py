"""``--encrypt-to`` on report, exposures, register, the CNIL dossier and the evidence: real gpg
decrypts and verifies; nothing is left in clear; refused keys stop before anything is written."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from gpg_home import Gpg
from notify_world import World
from report_breach import BREACH, build_breach
from typer.testing import CliRunner

from notify.pgp import Signer

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")

Keys = dict[str, tuple[str, Path]]

DESCRIPTION = """
nature: "Copie d'un extrait de la base clients."
breach_types: [confidentiality]
circumstances: copying
measures_taken: "Accès coupé, plainte déposée."
dpo_contact: "dpo@operateur.example"
cross_border:
  involved: false
"""


def _decrypt(gpg: Gpg, path: Path, signer: Signer) -> bytes:
    """What a recipient reads, after gpg has checked the operator's signature."""
    done = gpg.run("--status-fd", "2", "--decrypt", str(path))
    status = done.stderr.decode()
    assert done.returncode == 0, status
    assert "GOODSIG" in status and f"VALIDSIG {signer.fingerprint.upper()}" in status
    return done.stdout


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def _describe(world: World) -> None:
    from flows import breach_steps

    path = world.settings.work_dir.parent / "description.yaml"
    path.write_text(DESCRIPTION, encoding="utf-8")
    breach_steps.load_description(world.settings, world.breach_id, path)


def test_encrypted_hand_over_from_the_command_line(
    leakwatch_env: Path,
    tmp_path: Path,
    gpg: Gpg,
    recipient_keys: Keys,
    operator_signer: Signer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.cli import app
    from notify.pgp import RecipientKeyError

    build_breach(tmp_path)
    dpo, key = recipient_keys["good"]
    monkeypatch.setenv("LEAKWATCH_RECIPIENT_FINGERPRINTS", f"OTHER, {dpo}")
    runner = CliRunner()
    out = tmp_path / "handover"

    def decrypt(path: Path) -> bytes:
        return _decrypt(gpg, path, operator_signer)

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


def test_encrypted_dossier_is_what_the_clear_command_writes(
    world: World,
    tmp_path: Path,
    gpg: Gpg,
    recipient_keys: Keys,
    operator_signer: Signer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows import breach_steps
    from flows.cli import app
    from notify.dossier import render_dossier_html, validate_dossier

    _describe(world)
    (dpo, key), (ciso, rsa_key) = recipient_keys["good"], recipient_keys["rsa"]
    monkeypatch.setenv("LEAKWATCH_RECIPIENT_FINGERPRINTS", f"{dpo},{ciso}")
    sealed, clear = tmp_path / "cnil-sealed", tmp_path / "cnil-clear"
    argv = ["notify", "regulator", "--breach", world.breach_id]
    encrypt = ["--encrypt-to", str(key), "--encrypt-to", str(rsa_key)]
    result = CliRunner().invoke(app, [*argv, "--output", str(sealed), *encrypt])
    assert result.exit_code == 0, result.output

    # Every file of the folder is an OpenPGP message; no clear copy here or in the work folder.
    assert _files(sealed) == {"dossier.json.asc", "dossier.html.asc"}
    assert not list(world.settings.work_dir.glob("handover-*"))
    assert not [p for p in tmp_path.rglob("dossier.*") if p.suffix != ".asc"]
    raw = _decrypt(gpg, sealed / "dossier.json.asc", operator_signer)
    page = _decrypt(gpg, sealed / "dossier.html.asc", operator_signer)
    dossier = json.loads(raw)
    validate_dossier(dossier)
    assert page == render_dossier_html(dossier).encode("utf-8")
    # The store records the encrypted file and the clear dossier's SHA-256 (the hash that the
    # complementary dossier refers to).
    (notice,) = breach_steps.breach_status(world.settings, world.breach_id).regulator_notices
    assert notice.dossier_sha256 == hashlib.sha256(raw).hexdigest()
    assert notice.path == str(sealed / "dossier.json.asc")
    assert hashlib.sha256(raw).hexdigest() in result.output.replace("\n", "")

    result = CliRunner().invoke(app, [*argv, "--output", str(clear)])
    assert result.exit_code == 0, result.output
    assert _files(clear) == {"dossier.json", "dossier.html"}
    written = json.loads((clear / "dossier.json").read_bytes())
    # A second dossier names the first by the SHA-256 of its clear JSON, encrypted or not.
    assert dossier["notification"].pop("initial_dossier_sha256") is None
    assert written["notification"].pop("initial_dossier_sha256") == notice.dossier_sha256
    assert written.pop("generated_at") >= dossier.pop("generated_at")  # the notification time
    assert written == dossier

    # Sealed into a folder holding a clear dossier: that recorded dossier stays, and is named.
    result = CliRunner().invoke(app, [*argv, "--output", str(clear), *encrypt])
    assert result.exit_code == 0, result.output
    assert "dossier.json, dossier.html of an earlier dossier are still in clear" in " ".join(
        result.output.split()
    )


def test_encrypted_dossier_byte_for_byte(
    world: World, tmp_path: Path, gpg: Gpg, recipient_keys: Keys, operator_signer: Signer
) -> None:
    """At one notification time, from one store, the decrypted files are exactly the clear ones."""
    from core.settings import Settings
    from flows import breach_steps

    _describe(world)
    dpo, key = recipient_keys["good"]
    settings = Settings(recipient_fingerprints=[dpo])
    # A twin store: a second dossier in the same store would name the first one.
    twin = shutil.copytree(settings.store.parent, tmp_path / "twin") / settings.store.name
    moment = datetime.now(UTC)
    sealed = breach_steps.regulator_dossier(
        settings,
        world.breach_id,
        phase="initial",
        output_dir=tmp_path / "sealed",
        encrypt_to=[key],
        now=moment,
    )
    clear = breach_steps.regulator_dossier(
        Settings(store=twin),
        world.breach_id,
        phase="initial",
        output_dir=tmp_path / "clear",
        now=moment,
    )
    assert sealed.json_path.name == "dossier.json.asc"
    assert sealed.html_path.name == "dossier.html.asc"
    assert _decrypt(gpg, sealed.json_path, operator_signer) == clear.json_path.read_bytes()
    assert _decrypt(gpg, sealed.html_path, operator_signer) == clear.html_path.read_bytes()
    assert sealed.sha256 == clear.sha256


def test_encrypted_evidence_stays_verifiable(
    world: World,
    tmp_path: Path,
    gpg: Gpg,
    recipient_keys: Keys,
    operator_signer: Signer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core.settings import Settings
    from flows import evidence_steps
    from flows.cli import app

    dpo, key = recipient_keys["good"]
    monkeypatch.setenv("LEAKWATCH_RECIPIENT_FINGERPRINTS", dpo)
    out, clear = tmp_path / "evidence", tmp_path / "evidence-clear"
    argv = ["evidence", "--breach", world.breach_id]
    assert CliRunner().invoke(app, [*argv, "--output", str(out)]).exit_code == 0
    assert (out / "manifest.json").exists()
    # Sealed into the same folder: the clear manifest of the earlier run goes with its signature.
    result = CliRunner().invoke(app, [*argv, "--output", str(out), "--encrypt-to", str(key)])
    assert result.exit_code == 0, result.output
    assert _files(out) == {"manifest.json.pgp", "manifest.json.asc", "signer.asc"}
    assert not list(world.settings.work_dir.glob("handover-*"))
    # gpg decrypts it beside its detached signature, which then verifies as without encryption.
    done = gpg.run("--status-fd", "2", "--decrypt-files", str(out / "manifest.json.pgp"))
    assert done.returncode == 0 and b"GOODSIG" in done.stderr, done.stderr
    verified = gpg.run(
        "--status-fd", "2", "--verify", str(out / "manifest.json.asc"), str(out / "manifest.json")
    )
    assert verified.returncode == 0, verified.stderr
    assert f"VALIDSIG {operator_signer.fingerprint.upper()}".encode() in verified.stderr
    decrypted = json.loads((out / "manifest.json").read_bytes())

    assert CliRunner().invoke(app, [*argv, "--output", str(clear)]).exit_code == 0
    written = json.loads((clear / "manifest.json").read_bytes())
    assert written.pop("generated_at") >= decrypted.pop("generated_at")
    assert written == decrypted and written["artifacts"]

    # At one generation time, byte for byte.
    settings, moment = Settings(), datetime.now(UTC)
    sealed = evidence_steps.write_evidence(
        settings, world.breach_id, tmp_path / "a", encrypt_to=[key], now=moment
    )
    plain = evidence_steps.write_evidence(settings, world.breach_id, tmp_path / "b", now=moment)
    assert sealed.manifest.name == "manifest.json.pgp"
    assert _decrypt(gpg, sealed.manifest, operator_signer) == plain.manifest.read_bytes()


@pytest.mark.parametrize(
    ("name", "pin", "expected"),
    [
        ("expired", True, "expired on 2020-12-31"),
        ("sign_only", True, "has no valid encryption subkey"),
        ("good", False, "is not pinned"),
    ],
)
def test_refused_keys_stop_the_dossier_and_the_evidence_before_any_write(
    world: World,
    tmp_path: Path,
    recipient_keys: Keys,
    operator_signer: Signer,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    pin: bool,
    expected: str,
) -> None:
    from flows import breach_steps
    from flows.cli import app
    from notify.pgp import RecipientKeyError

    _describe(world)
    fingerprint, key = recipient_keys[name]
    good = recipient_keys["good"][0]
    monkeypatch.setenv("LEAKWATCH_RECIPIENT_FINGERPRINTS", f"{good},{fingerprint}" if pin else "X")
    # A good key beside the refused one does not let anything through.
    also = ["--encrypt-to", str(recipient_keys["good"][1])]
    for argv, folder in (
        (["notify", "regulator", "--breach", world.breach_id], tmp_path / "cnil"),
        (["evidence", "--breach", world.breach_id], tmp_path / "evidence"),
    ):
        result = CliRunner().invoke(
            app, [*argv, "--output", str(folder), *also, "--encrypt-to", str(key)]
        )
        assert isinstance(result.exception, RecipientKeyError), result.output
        message = str(result.exception)
        assert expected in message and str(key) in message and fingerprint.upper() in message
        assert not folder.exists()
    assert not breach_steps.breach_status(world.settings, world.breach_id).regulator_notices
    assert not list(world.settings.work_dir.glob("handover-*"))
