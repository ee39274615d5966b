"""The local outbox: each notice as one multipart/alternative ``.eml`` file, written atomically."""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime, getaddresses
from pathlib import Path

from core.errors import TerminalError
from notify.render import RenderedNotice

__all__ = ["UnsafeHeaderError", "write_eml"]

# A notice id becomes a file name and a Message-ID: letters, digits, dot, dash, underscore only.
_NOTICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class UnsafeHeaderError(TerminalError):
    """A header value we refuse to write (line break, control character, not one address).

    The message names the notice and the header, never the value.
    """

    def __init__(self, notice_id: str, reason: str) -> None:
        self.notice_id = notice_id
        self.reason = reason
        shown = notice_id if _NOTICE_ID.fullmatch(notice_id) else repr(notice_id[:40])
        super().__init__(f"notice {shown}: {reason}")


def _unsafe_char(value: str) -> bool:
    """Line breaks in any form (CR, LF, NEL, U+2028...) and other control characters."""
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value)


def _address(notice_id: str, header: str, value: str) -> Address:
    if _unsafe_char(value):
        raise UnsafeHeaderError(notice_id, f"{header}: line break or control character refused")
    parsed = getaddresses([value])
    if len(parsed) != 1 or parsed[0][1].count("@") != 1:
        raise UnsafeHeaderError(notice_id, f"{header}: exactly one e-mail address expected")
    name, spec = parsed[0]
    try:
        address = Address(display_name=name, addr_spec=spec)
    except (ValueError, IndexError, TypeError):
        raise UnsafeHeaderError(notice_id, f"{header}: invalid e-mail address") from None
    if not address.username or not address.domain or " " in address.addr_spec:
        raise UnsafeHeaderError(notice_id, f"{header}: invalid e-mail address")
    return address


def _message(notice: RenderedNotice, to: Address, sender: Address, date: datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = notice.subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = f"<{notice.notice_id}@{sender.domain}>"
    msg["X-Leakwatch-Notice-Id"] = notice.notice_id
    # Quoted-printable keeps every line short and ASCII whatever the relay does with 8-bit text.
    msg.set_content(notice.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(notice.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_eml(
    outbox: Path,
    notice: RenderedNotice,
    *,
    to: str,
    sender: str,
    date: datetime | None = None,
) -> Path:
    """Write ``<outbox>/<notice_id>.eml`` (text and HTML alternatives) and return its path.

    Refuses (:class:`UnsafeHeaderError`) a notice id that is not a plain token, and any
    recipient, sender or subject that could inject a header.
    """
    if not _NOTICE_ID.fullmatch(notice.notice_id):
        raise UnsafeHeaderError(notice.notice_id, "notice id: unsafe for a file name or header")
    to_address = _address(notice.notice_id, "To", to)
    sender_address = _address(notice.notice_id, "From", sender)
    if _unsafe_char(notice.subject):
        raise UnsafeHeaderError(
            notice.notice_id, "Subject: line break or control character refused"
        )
    msg = _message(notice, to_address, sender_address, date or datetime.now(UTC))
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / f"{notice.notice_id}.eml"
    # LF line ends, as mail tools on this system write .eml files; relays convert to CRLF.
    _write_atomically(path, msg.as_bytes(policy=default))
    return path
