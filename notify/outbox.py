"""The local outbox: each notice as one multipart/alternative ``.eml`` file, written atomically."""

from __future__ import annotations

import binascii
import ctypes
import os
import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime, getaddresses
from functools import lru_cache
from pathlib import Path

from markupsafe import escape

from core.errors import TerminalError
from notify.render import NoticeShape, RenderedNotice, fill_spans

__all__ = [
    "EmlFile",
    "UnsafeHeaderError",
    "build_emls",
    "write_durably",
    "write_eml",
    "write_emls",
]

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


# A recipient in this plain form (dot-atom, ASCII, no display name) is written as it is: one
# address, no line break, nothing to fold. Any other form goes through the email package.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_PLAIN_MAX = 254
# "=_" never occurs in quoted-printable output ("=" is always followed by two hex digits or a
# line break), so no body line can ever be taken for this boundary.
_BOUNDARY = f"=_leakwatch_{secrets.token_hex(12)}".encode("ascii")
_PART = b'Content-Type: text/%s; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable\n\n'


@dataclass(frozen=True, slots=True)
class _Head:
    """The header lines every notice of one sender and subject shares, already folded."""

    sender: bytes
    subject: bytes
    domain: str


_heads: dict[tuple[str, str], _Head] = {}


def _head(notice_id: str, sender: str, subject: str) -> _Head:
    found = _heads.get((sender, subject))
    if found is not None:
        return found
    address = _address(notice_id, "From", sender)
    if _unsafe_char(subject):
        raise UnsafeHeaderError(notice_id, "Subject: line break or control character refused")
    head = _Head(
        sender=_folded("From", str(address)),
        subject=_folded("Subject", subject),
        domain=address.domain,
    )
    if len(_heads) >= 64:
        _heads.clear()
    _heads[sender, subject] = head
    return head


def _folded(name: str, value: str) -> bytes:
    """One header as the email package writes it (non-ASCII as encoded words, folded)."""
    folded: str = default.header_factory(name, value).fold(policy=default)
    return folded.encode("ascii")


def _qp(body: str) -> bytes:
    """Quoted-printable of the body as the email package stores it: LF lines, final LF."""
    data = body.encode("utf-8")
    if b"\r" in data or not data.endswith(b"\n"):
        data = b"\n".join(data.splitlines()) + b"\n"
    return binascii.b2a_qp(data, istext=True)


# A body of one shape, quoted-printable: each line without a slot encoded once per shape (the
# encoding is line-local: a hard line break resets it), lines with a slot encoded per notice.
_Skeleton = tuple[bytes | tuple[str, ...], ...]
_MARKED = re.compile("\ue000([a-z_]+)\ue001")
_skeletons: dict[NoticeShape, tuple[_Skeleton | None, _Skeleton | None]] = {}


def _skeleton(parts: tuple[str, ...]) -> _Skeleton | None:
    literals = parts[0::2]
    if any("\r" in p or "\ue000" in p or "\ue001" in p for p in literals):
        return None
    if not literals[-1].endswith("\n"):
        return None
    marked = "".join(p if i % 2 == 0 else f"\ue000{p}\ue001" for i, p in enumerate(parts))
    items: list[bytes | tuple[str, ...]] = []
    static: list[bytes] = []
    for line in marked.split("\n"):
        if "\ue000" in line:
            if static:
                items.append(b"\n".join(static))
                static = []
            items.append(tuple(_MARKED.split(line)))
        else:
            static.append(binascii.b2a_qp(line.encode("utf-8"), istext=True))
    if static:
        items.append(b"\n".join(static))
    return tuple(items)


def _skeletons_of(shape: NoticeShape) -> tuple[_Skeleton | None, _Skeleton | None]:
    found = _skeletons.get(shape)
    if found is None:
        if len(_skeletons) >= 1024:
            _skeletons.clear()
        found = _skeletons[shape] = (_skeleton(shape.text), _skeleton(shape.html))
    return found


def _qp_filled(skeleton: _Skeleton, fills: Mapping[str, str], escaped: bool) -> bytes:
    out: list[bytes] = []
    for item in skeleton:
        if isinstance(item, bytes):
            out.append(item)
            continue
        line = "".join(
            p if i % 2 == 0 else (str(escape(fills[p])) if escaped else fills[p])
            for i, p in enumerate(item)
        )
        out.append(binascii.b2a_qp(line.encode("utf-8"), istext=True))
    return b"\n".join(out)


def _bodies(notice: RenderedNotice) -> tuple[bytes, bytes]:
    """Both bodies encoded: from the shape's skeleton when the notice is provably that shape."""
    shape, fills = notice.shape, notice.fills
    if shape is not None and fills is not None and not any("\r" in v for v in fills.values()):
        text_skeleton, html_skeleton = _skeletons_of(shape)
        if (
            text_skeleton is not None
            and html_skeleton is not None
            and fill_spans(notice.text, shape.text, fills, False) is not None
            and fill_spans(notice.html, shape.html, fills, True) is not None
        ):
            return _qp_filled(text_skeleton, fills, False), _qp_filled(html_skeleton, fills, True)
    return _qp(notice.text), _qp(notice.html)


def _eml_bytes(notice: RenderedNotice, to: str, sender: str, date: datetime) -> bytes:
    """The ``.eml`` of one notice; raises :class:`UnsafeHeaderError` before anything is built."""
    notice_id = notice.notice_id
    if not _NOTICE_ID.fullmatch(notice_id):
        raise UnsafeHeaderError(notice_id, "notice id: unsafe for a file name or header")
    head = _head(notice_id, sender, notice.subject)
    if len(to) > _PLAIN_MAX or not _PLAIN_ADDRESS.fullmatch(to):
        # Display names, non-ASCII, anything to fold or refuse: the email package decides.
        to_address = _address(notice_id, "To", to)
        sender_address = _address(notice_id, "From", sender)
        # LF line ends, as mail tools on this system write .eml files; relays convert to CRLF.
        return _message(notice, to_address, sender_address, date).as_bytes(policy=default)
    b = _BOUNDARY
    text, html = _bodies(notice)
    return b"".join(
        (
            head.sender,
            b"To: %s\n" % to.encode("ascii"),
            head.subject,
            b"Date: %s\n" % _date_header(date),
            b"Message-ID: <%s@%s>\n" % (notice_id.encode(), head.domain.encode("ascii")),
            b"X-Leakwatch-Notice-Id: %s\n" % notice_id.encode(),
            b'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="%s"\n\n' % b,
            b"--%s\n" % b,
            _PART % b"plain",
            text,
            b"\n--%s\n" % b,
            _PART % b"html",
            html,
            b"\n--%s--\n" % b,
        )
    )


@lru_cache(maxsize=16)
def _date_header_at(moment: datetime) -> bytes:
    return format_datetime(moment).encode("ascii")


def _date_header(moment: datetime) -> bytes:
    return _date_header_at(moment.replace(microsecond=0))


def _syncfs(fd: int) -> bool:
    """Flush the whole file system holding ``fd`` at once (Linux); False where unavailable."""
    fn = getattr(_LIBC, "syncfs", None) if _LIBC is not None else None
    return fn is not None and fn(fd) == 0


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - no C library to load
    _LIBC = None


def _make_durable(directory: int, paths: Sequence[Path]) -> None:
    """Every file's data on disk: one syncfs for the batch, else one fsync per file."""
    if _syncfs(directory):
        return
    for path in paths:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_batch(outbox: Path, files: Sequence[tuple[Path, bytes]]) -> None:
    """Write every file durably and atomically: the batch's durability policy.

    Each file goes to a temporary name first (one write); then the data of all of them is made
    durable at once; only then are they renamed into place and the directory synced. A crash
    leaves either no file or the whole previous one under each final name, never a partial
    one; when this returns, every file survives power loss, so the caller may record them.
    """
    if not files:
        return
    outbox.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(6)
    temporaries: list[Path] = []
    try:
        for n, (path, data) in enumerate(files):
            tmp = path.with_name(f".{path.name}.{token}-{n}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            temporaries.append(tmp)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        directory = os.open(outbox, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _make_durable(directory, temporaries)
            for tmp, (path, _) in zip(temporaries, files, strict=True):
                os.replace(tmp, path)
            os.fsync(directory)
        finally:
            os.close(directory)
    except BaseException:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True, slots=True)
class EmlFile:
    """One notice's ``.eml``, built and not yet written."""

    path: Path
    data: bytes


def build_emls(
    outbox: Path,
    items: Sequence[tuple[RenderedNotice, str]],
    *,
    sender: str,
    date: datetime | None = None,
) -> list[EmlFile | UnsafeHeaderError]:
    """Build the ``.eml`` of each ``(notice, recipient)``, or the error that refused it."""
    when = date or datetime.now(UTC)
    answers: list[EmlFile | UnsafeHeaderError] = []
    for notice, to in items:
        try:
            data = _eml_bytes(notice, to, sender, when)
        except UnsafeHeaderError as exc:
            answers.append(exc)
            continue
        answers.append(EmlFile(outbox / f"{notice.notice_id}.eml", data))
    return answers


def write_durably(outbox: Path, files: Sequence[EmlFile]) -> None:
    """Write built files into ``outbox``; every one survives power loss when this returns.

    Releases the GIL for its system calls: a caller may build the next batch meanwhile.
    """
    _write_batch(outbox, [(f.path, f.data) for f in files])


def write_emls(
    outbox: Path,
    items: Sequence[tuple[RenderedNotice, str]],
    *,
    sender: str,
    date: datetime | None = None,
) -> list[Path | UnsafeHeaderError]:
    """Write a batch of ``(notice, recipient)`` as ``<outbox>/<notice_id>.eml``, durably.

    One answer per item, in order: the path, or the :class:`UnsafeHeaderError` that refused it
    (nothing written for that one). Every path returned is on disk when this returns (see
    :func:`_write_batch`), so a ledger may mark them drafted.
    """
    built = build_emls(outbox, items, sender=sender, date=date)
    write_durably(outbox, [f for f in built if isinstance(f, EmlFile)])
    return [f.path if isinstance(f, EmlFile) else f for f in built]


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
    recipient, sender or subject that could inject a header. Durable when it returns; for
    many notices :func:`write_emls` makes a whole batch durable at once.
    """
    (answer,) = write_emls(outbox, [(notice, to)], sender=sender, date=date)
    if isinstance(answer, UnsafeHeaderError):
        raise answer
    return answer
