"""The signing key: generated, protected, loaded back, and refused when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from notify.pgp import Signer


def test_protected_key_round_trip(tmp_path: Path) -> None:
    signer = Signer.generate("leakwatch test", "dpo@example.test", "correct horse")
    (tmp_path / "key.asc").write_text(signer.private_armored())
    (tmp_path / "pub.asc").write_text(signer.public_armored())
    assert "PRIVATE KEY" in signer.private_armored()
    assert "PRIVATE" not in signer.public_armored()

    loaded = Signer.from_file(tmp_path / "key.asc", "correct horse")
    assert loaded.fingerprint == signer.fingerprint
    signature = loaded.sign_detached(b"manifest bytes\n")
    assert signature.startswith("-----BEGIN PGP SIGNATURE-----")
    assert signer.verify_detached(b"manifest bytes\n", signature)
    assert not signer.verify_detached(b"manifest bytes!\n", signature)


def test_wrong_or_missing_passphrase_and_public_keys_are_config_errors(tmp_path: Path) -> None:
    signer = Signer.generate("leakwatch test", "dpo@example.test", "correct horse")
    (tmp_path / "key.asc").write_text(signer.private_armored())
    (tmp_path / "pub.asc").write_text(signer.public_armored())
    (tmp_path / "junk.asc").write_text("not a key")
    with pytest.raises(ConfigError, match="does not unlock"):
        Signer.from_file(tmp_path / "key.asc", "wrong")
    with pytest.raises(ConfigError, match="protected"):
        Signer.from_file(tmp_path / "key.asc", None)
    with pytest.raises(ConfigError, match="public key"):
        Signer.from_file(tmp_path / "pub.asc", None)
    with pytest.raises(ConfigError, match="not an armored OpenPGP key"):
        Signer.from_file(tmp_path / "junk.asc", None)
    with pytest.raises(ConfigError, match="cannot read"):
        Signer.from_file(tmp_path / "absent.asc", None)
