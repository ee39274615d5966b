"""OpenPGP signing with pgpy: load or make a signing key, sign detached and armored, export the public key.

The only module that imports pgpy. pgpy 0.6 uses cryptography's deprecated CFB and TripleDES
aliases (design.md §4) and the stdlib's deprecated ``imghdr``, so its import and every call into
it run with exactly those warnings silenced, here and nowhere else. Generated keys are Ed25519 (checked against gpg 2.2:
pgpy's EdDSA signatures verify there).
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.utils import CryptographyDeprecationWarning

from core.errors import ConfigError

__all__ = ["Recipient", "RecipientKeyError", "Signer", "encrypt_and_sign", "load_recipient"]


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning)
        yield


with _quiet():
    # pgpy.constants imports the stdlib's deprecated imghdr (gone in 3.13; we are on 3.11).
    warnings.filterwarnings("ignore", message="'imghdr' is deprecated", category=DeprecationWarning)
    import pgpy
    from pgpy.constants import (
        CompressionAlgorithm,
        EllipticCurveOID,
        HashAlgorithm,
        KeyFlags,
        PubKeyAlgorithm,
        SymmetricKeyAlgorithm,
    )


class Signer:
    """A private signing key, unlocked on demand with its passphrase (never stored elsewhere)."""

    def __init__(self, key: Any, passphrase: str | None) -> None:
        self._key = key
        self._passphrase = passphrase

    @classmethod
    def from_file(cls, path: Path, passphrase: str | None) -> Signer:
        """An armored private key; a protected key needs its passphrase, checked here."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{path}: cannot read the signing key ({type(exc).__name__})"
            ) from None
        try:
            with _quiet():
                key, _ = pgpy.PGPKey.from_blob(text)
        except Exception:  # pgpy raises many unrelated types for a bad blob
            raise ConfigError(f"{path}: not an armored OpenPGP key") from None
        if key.is_public:
            raise ConfigError(f"{path}: a public key; the signing key must be the private key")
        signer = cls(key, passphrase)
        if key.is_protected:
            if not passphrase:
                raise ConfigError(
                    f"{path}: the signing key is protected; set LEAKWATCH_SIGNING_PASSPHRASE "
                    "or LEAKWATCH_SIGNING_PASSPHRASE_BLOCK"
                )
            with signer._unlocked():
                pass
        return signer

    @classmethod
    def generate(cls, name: str, email: str, passphrase: str | None = None) -> Signer:
        """A fresh Ed25519 signing key, protected with AES-256 when a passphrase is given."""
        with _quiet():
            key = pgpy.PGPKey.new(PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519)
            key.add_uid(
                pgpy.PGPUID.new(name, email=email),
                usage={KeyFlags.Sign, KeyFlags.Certify},
                hashes=[HashAlgorithm.SHA512, HashAlgorithm.SHA256],
            )
            if passphrase:
                key.protect(passphrase, SymmetricKeyAlgorithm.AES256, HashAlgorithm.SHA256)
        return cls(key, passphrase)

    @contextmanager
    def _unlocked(self) -> Iterator[None]:
        if not self._key.is_protected:
            yield
            return
        try:
            with _quiet(), self._key.unlock(self._passphrase or ""):
                yield
        except pgpy.errors.PGPDecryptionError:
            raise ConfigError("the signing passphrase does not unlock the signing key") from None

    @property
    def fingerprint(self) -> str:
        return str(self._key.fingerprint).replace(" ", "")

    def private_armored(self) -> str:
        """The private key, armored (protected if it was generated or loaded protected)."""
        return str(self._key)

    def public_armored(self) -> str:
        return str(self._key.pubkey)

    def sign_detached(self, data: bytes) -> str:
        """A detached, armored binary-document signature over exactly ``data``."""
        with self._unlocked(), _quiet():
            signature = self._key.sign(data, hash=HashAlgorithm.SHA256)
        return str(signature)

    def verify_detached(self, data: bytes, armored_signature: str) -> bool:
        with _quiet():
            # pgpy 0.6 warns on every verify that it checks neither self-signatures nor
            # revocations ("TODO: ..."); gpg is the verifier that counts (tests run it).
            warnings.filterwarnings("ignore", message="TODO: ", category=UserWarning)
            signature = pgpy.PGPSignature.from_blob(armored_signature)
            return bool(self._key.pubkey.verify(data, signature))


# -- encrypted hand-over (issue 5): recipients' keys checked, messages signed then encrypted ----


class RecipientKeyError(ConfigError):
    """A recipient key that cannot be used: unreadable, expired, unable to encrypt, not pinned."""


@dataclass(frozen=True)
class Recipient:
    """A checked recipient: the primary key's fingerprint and the subkey that encrypts."""

    fingerprint: str
    _encryption_key: Any = field(repr=False, compare=False)
    # pgpy's subkeys hold only a weak reference to their primary key: keep it alive.
    _primary: Any = field(repr=False, compare=False, default=None)


def _expires_at(key: Any) -> datetime | None:
    """When a primary key or a subkey expires (subkeys carry it on their binding signature)."""
    if key.is_primary:
        expires: datetime | None = key.expires_at
        return expires
    lifetimes = [sig.key_expiration for sig in key.self_signatures if sig.key_expiration]
    return key.created + lifetimes[-1] if lifetimes else None


def _can_encrypt(key: Any) -> bool:
    flags = set(key._get_key_flags())
    return bool(flags & {KeyFlags.EncryptCommunications, KeyFlags.EncryptStorage})


def load_recipient(
    path: Path, pinned: Collection[str], *, now: datetime | None = None
) -> Recipient:
    """An armored public key, refused unless pinned, unexpired and able to encrypt."""
    moment = now or datetime.now(UTC)
    try:
        text = path.read_text(encoding="utf-8")
        with _quiet():
            key, _ = pgpy.PGPKey.from_blob(text)
    except OSError as exc:
        raise RecipientKeyError(
            f"{path}: cannot read the recipient key ({type(exc).__name__})"
        ) from None
    except Exception:  # pgpy raises many unrelated types for a bad blob
        raise RecipientKeyError(f"{path}: not an armored OpenPGP public key") from None
    fingerprint = str(key.fingerprint).replace(" ", "").upper()
    wanted = {f.replace(" ", "").upper() for f in pinned}
    if fingerprint not in wanted:
        raise RecipientKeyError(
            f"{path}: key {fingerprint} is not pinned; after checking it with its owner, add "
            "it to LEAKWATCH_RECIPIENT_FINGERPRINTS (comma separated)"
        )
    key = key if key.is_public else key.pubkey
    expires = _expires_at(key)
    if expires is not None and expires <= moment:
        raise RecipientKeyError(
            f"{path}: key {fingerprint} expired on {expires:%Y-%m-%d}; ask its owner for a "
            "renewed key"
        )
    usable = [
        k
        for k in (key, *key.subkeys.values())
        if _can_encrypt(k) and ((e := _expires_at(k)) is None or e > moment)
    ]
    if not usable:
        raise RecipientKeyError(
            f"{path}: key {fingerprint} has no valid encryption subkey (it can only sign or "
            "certify, or its encryption subkey expired); ask its owner for an encryption subkey"
        )
    return Recipient(fingerprint, usable[-1], key)  # the newest encryption subkey


def encrypt_and_sign(data: bytes, recipients: Sequence[Recipient], signer: Signer) -> str:
    """An armored OpenPGP message of ``data``, signed by ``signer``, for every recipient.

    One session key (AES-256) encrypted to each recipient's encryption subkey.
    """
    if not recipients:
        raise ConfigError("no recipient: give at least one --encrypt-to KEYFILE")
    cipher = SymmetricKeyAlgorithm.AES256
    with _quiet():
        message = pgpy.PGPMessage.new(data, file=True, compression=CompressionAlgorithm.ZLIB)
        with signer._unlocked():
            message |= signer._key.sign(message, hash=HashAlgorithm.SHA256)
        session_key = cipher.gen_key()
        for recipient in recipients:
            message = recipient._encryption_key.encrypt(
                message, cipher=cipher, sessionkey=session_key
            )
        del session_key
    return str(message)
