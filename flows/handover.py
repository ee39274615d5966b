"""Hand-over of reports and exports: written in clear, or as OpenPGP messages signed by the operator."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import Settings
from notify.register import write_atomically

if TYPE_CHECKING:
    from notify.pgp import Recipient, Signer

__all__ = ["HandOver", "hand_over", "hand_over_written", "prepare"]


@dataclass(frozen=True)
class HandOver:
    """How files leave: in clear, or sealed (encrypted to checked recipients, signed).

    Made by :func:`prepare`, which checks the keys, so that a refused key stops a command
    before it writes anything.
    """

    work_dir: Path
    recipients: tuple[Recipient, ...] = ()
    signer: Signer | None = None

    @property
    def encrypted(self) -> bool:
        return bool(self.recipients)

    def seal(self, data: bytes) -> bytes:
        """``data`` as an armored OpenPGP message, signed, for every recipient."""
        from notify.pgp import encrypt_and_sign

        if self.signer is None:
            raise ValueError("sealing needs a signer: make the hand-over with prepare()")
        return encrypt_and_sign(data, self.recipients, self.signer).encode("ascii")

    def write(self, data: bytes, path: Path) -> Path:
        """``data`` to ``path``; sealed, only ``path.asc`` and no clear copy. Returns the path."""
        if not self.encrypted:
            return write_atomically(path, data)
        return write_atomically(path.with_name(path.name + ".asc"), self.seal(data))

    def write_with(self, path: Path, write: Callable[[Path], object]) -> Path:
        """For writers that need a file: ``write(tmp)`` in a private folder, then :meth:`write`.

        In clear ``write(path)`` writes in place. Sealed, the clear file lives only in a private
        temporary folder under the work directory and is removed at once.
        """
        if not self.encrypted:
            write(path)
            return path
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.work_dir, prefix="handover-") as private:
            clear = Path(private) / path.name
            write(clear)
            data = clear.read_bytes()
        return self.write(data, path)


def prepare(
    settings: Settings, encrypt_to: Sequence[Path], signer: Signer | None = None
) -> HandOver:
    """Check every recipient key, then load the signing key (unless given): before any write.

    Recipient keys must be pinned in LEAKWATCH_RECIPIENT_FINGERPRINTS, unexpired and able to
    encrypt; the signature is made with LEAKWATCH_SIGNING_KEY_FILE. Without recipients nothing
    is checked and files are written in clear.
    """
    if not encrypt_to:
        return HandOver(settings.work_dir, (), signer)
    from flows.evidence_steps import load_signer
    from notify.pgp import load_recipient

    # Recipients first: a refused key stops before the signing passphrase is ever used.
    recipients = tuple(load_recipient(k, settings.recipient_fingerprints) for k in encrypt_to)
    return HandOver(settings.work_dir, recipients, signer or load_signer(settings))


def hand_over(settings: Settings, data: bytes, path: Path, encrypt_to: Sequence[Path]) -> Path:
    """``data`` to ``path``; with recipients, only ``path.asc`` (encrypted, signed), no clear copy."""
    return prepare(settings, encrypt_to).write(data, path)


def hand_over_written(
    settings: Settings, path: Path, encrypt_to: Sequence[Path], write: Callable[[Path], object]
) -> Path:
    """For writers that need a file; the keys are checked before ``write`` runs.

    See :meth:`HandOver.write_with`.
    """
    return prepare(settings, encrypt_to).write_with(path, write)
