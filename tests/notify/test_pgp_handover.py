"""Encrypted hand-over: real gpg decrypts and verifies; bad recipient keys are refused clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gpg_home import Gpg

from notify.pgp import RecipientKeyError, Signer, encrypt_and_sign, load_recipient

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")


def test_gpg_decrypts_and_verifies(
    gpg: Gpg, recipient_keys: dict[str, tuple[str, Path]], tmp_path: Path
) -> None:
    signer = Signer.generate("Opérateur Exemple", "securite@operateur.example")
    pinned = [recipient_keys["good"][0], recipient_keys["rsa"][0].lower()]
    recipients = [load_recipient(recipient_keys[n][1], pinned) for n in ("good", "rsa")]
    data = "<html>Rapport — 1 234 clients exposés</html>\n".encode() + bytes(range(256))
    armored = encrypt_and_sign(data, recipients, signer)
    assert armored.startswith("-----BEGIN PGP MESSAGE-----")
    message = tmp_path / "report.html.asc"
    message.write_text(armored, encoding="ascii")
    signer_key = tmp_path / "signer.asc"
    signer_key.write_text(signer.public_armored(), encoding="ascii")
    assert gpg.run("--import", str(signer_key)).returncode == 0
    done = gpg.run("--status-fd", "2", "--decrypt", str(message))
    status = done.stderr.decode()
    assert done.returncode == 0, status
    assert done.stdout == data
    assert f"VALIDSIG {signer.fingerprint.upper()}" in status and "GOODSIG" in status
    # Both recipients can read it: the session key is encrypted to each.
    assert status.count("ENC_TO") == 2


@pytest.mark.parametrize(
    ("name", "pin", "expected"),
    [
        ("expired", True, "expired on 2020-12-31"),
        ("sign_only", True, "has no valid encryption subkey"),
        ("good", False, "is not pinned"),
    ],
)
def test_bad_recipient_keys_are_refused(
    recipient_keys: dict[str, tuple[str, Path]], name: str, pin: bool, expected: str
) -> None:
    fingerprint, path = recipient_keys[name]
    pinned = [fingerprint] if pin else [recipient_keys["rsa"][0]]
    with pytest.raises(RecipientKeyError, match=expected) as caught:
        load_recipient(path, pinned)
    assert str(path) in str(caught.value) and fingerprint.upper() in str(caught.value)


def test_not_a_key_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.asc"
    junk.write_text("hello")
    with pytest.raises(RecipientKeyError, match="not an armored OpenPGP public key"):
        load_recipient(junk, [])
