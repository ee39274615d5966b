"""Fixtures: a confirmed breach in a private store, a fake SendGrid, and gpg with its keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gpg_home import Gpg, gpg_home
from notify_world import World, build_world

from notify.fake_sendgrid import FakeSendGrid
from notify.pgp import Signer


@pytest.fixture
def world(leakwatch_env: Path, tmp_path: Path) -> World:
    w = build_world(tmp_path)
    assert w.with_email > 20
    return w


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as server:
        yield server


@pytest.fixture(scope="module")
def gpg() -> Iterator[Gpg]:
    """A throw-away GnuPG home for the module (tests that use it skip without gpg)."""
    with gpg_home() as g:
        yield g


@pytest.fixture(scope="module")
def recipient_keys(
    gpg: Gpg, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[str, Path]]:
    """Recipients' public keys by kind, as ``(fingerprint, armored file)``, made by real gpg."""
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


@pytest.fixture
def operator_signer(gpg: Gpg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Signer:
    """The operator's signing key, in LEAKWATCH_SIGNING_KEY_FILE; gpg knows its public key."""
    signer = Signer.generate("Opérateur Exemple", "securite@operateur.example")
    (tmp_path / "signing.asc").write_text(signer.private_armored())
    (tmp_path / "signer-public.asc").write_text(signer.public_armored())
    assert gpg.run("--import", str(tmp_path / "signer-public.asc")).returncode == 0
    monkeypatch.setenv("LEAKWATCH_SIGNING_KEY_FILE", str(tmp_path / "signing.asc"))
    return signer
