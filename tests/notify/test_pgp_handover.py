"""Encrypted hand-over: real gpg decrypts and verifies; bad recipient keys are refused clearly."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpg_home import Gpg, gpg_home

from notify.pgp import RecipientKeyError, Signer, encrypt_and_sign, load_recipient

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")


@pytest.fixture(scope="module")
def gpg() -> Iterator[Gpg]:
    with gpg_home() as g:
        yield g


@pytest.fixture(scope="module")
def keys(gpg: Gpg, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("keys")
    good = gpg.make_key("DPO <dpo@operateur.example>", "ed25519", "cert,sign")
    gpg.add_subkey(good, "cv25519", "encr")
    rsa = gpg.make_key("CISO <ciso@operateur.example>", "rsa2048", "cert,sign")
    gpg.add_subkey(rsa, "rsa2048", "encr")
    old = gpg.make_key(
        "Old <old@operateur.example>", "ed25519", "cert,sign", "1y",
        "--faked-system-time", "20200101T000000!",
    )  # fmt: skip
    gpg.add_subkey(old, "cv25519", "encr", "--faked-system-time", "20200101T000000!")
    sign_only = gpg.make_key("Signer <sign@operateur.example>", "ed25519", "sign")
    return {
        name: (fpr, gpg.export(fpr, folder / f"{name}.asc"))
        for name, fpr in (("good", good), ("rsa", rsa), ("expired", old), ("sign_only", sign_only))
    }


def test_gpg_decrypts_and_verifies(
    gpg: Gpg, keys: dict[str, tuple[str, Path]], tmp_path: Path
) -> None:
    signer = Signer.generate("Opérateur Exemple", "securite@operateur.example")
    pinned = [keys["good"][0], keys["rsa"][0].lower()]
    recipients = [load_recipient(keys[n][1], pinned) for n in ("good", "rsa")]
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
    keys: dict[str, tuple[str, Path]], name: str, pin: bool, expected: str
) -> None:
    fingerprint, path = keys[name]
    pinned = [fingerprint] if pin else [keys["rsa"][0]]
    with pytest.raises(RecipientKeyError, match=expected) as caught:
        load_recipient(path, pinned)
    assert str(path) in str(caught.value) and fingerprint.upper() in str(caught.value)


def test_not_a_key_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.asc"
    junk.write_text("hello")
    with pytest.raises(RecipientKeyError, match="not an armored OpenPGP public key"):
        load_recipient(junk, [])
