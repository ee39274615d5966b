"""Hand-over of reports and exports: written in clear, or as OpenPGP messages signed by the operator."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from core.settings import Settings
from notify.register import write_atomically

__all__ = ["hand_over", "hand_over_written"]


def _armored(settings: Settings, data: bytes, encrypt_to: Sequence[Path]) -> bytes:
    from flows.evidence_steps import load_signer
    from notify.pgp import encrypt_and_sign, load_recipient

    # Recipients first: a refused key stops before the signing passphrase is ever used.
    recipients = [load_recipient(k, settings.recipient_fingerprints) for k in encrypt_to]
    return encrypt_and_sign(data, recipients, load_signer(settings)).encode("ascii")


def hand_over(settings: Settings, data: bytes, path: Path, encrypt_to: Sequence[Path]) -> Path:
    """``data`` to ``path``; with recipients, only ``path.asc`` (encrypted, signed), no clear copy.

    Recipient keys must be pinned in LEAKWATCH_RECIPIENT_FINGERPRINTS, unexpired and able to
    encrypt; the signature is made with LEAKWATCH_SIGNING_KEY_FILE.
    """
    if not encrypt_to:
        return write_atomically(path, data)
    return write_atomically(
        path.with_name(path.name + ".asc"), _armored(settings, data, encrypt_to)
    )


def hand_over_written(
    settings: Settings, path: Path, encrypt_to: Sequence[Path], write: Callable[[Path], object]
) -> Path:
    """For writers that need a file: ``write(tmp)`` in a private folder, then :func:`hand_over`.

    Without recipients ``write(path)`` writes in place. With recipients the clear file lives only
    in a private temporary folder under the work directory and is removed at once.
    """
    if not encrypt_to:
        write(path)
        return path
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.work_dir, prefix="handover-") as private:
        clear = Path(private) / path.name
        write(clear)
        data = clear.read_bytes()
    return hand_over(settings, data, path, encrypt_to)
