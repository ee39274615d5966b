"""The local outbox: each notice as one multipart/alternative ``.eml`` file, written atomically."""

from __future__ import annotations

import binascii
import contextlib
import fcntl
import os
import re
import secrets
import subprocess
import sys
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
from types import TracebackType

from markupsafe import escape

from core.errors import TerminalError
from notify import batch_writer
from notify.batch_writer import BatchError, write_batch
from notify.render import NoticeShape, RenderedNotice, as_built

__all__ = [
    "EmlFile",
    "OutboxWriteError",
    "OutboxWriter",
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


@lru_cache(maxsize=4096)
def _escaped(value: str) -> str:
    return str(escape(value))


def _qp_filled(skeleton: _Skeleton, fills: Mapping[str, str], escaped: bool) -> bytes:
    out: list[bytes] = []
    for item in skeleton:
        if isinstance(item, bytes):
            out.append(item)
            continue
        line = "".join(
            p if i % 2 == 0 else (_escaped(fills[p]) if escaped else fills[p])
            for i, p in enumerate(item)
        )
        out.append(binascii.b2a_qp(line.encode("utf-8"), istext=True))
    return b"\n".join(out)


def _bodies(notice: RenderedNotice) -> tuple[bytes, bytes]:
    """Both bodies encoded: from the shape's skeleton when the notice is provably that shape."""
    built = as_built(notice)
    if built is not None:
        shape, fills = built
        text_skeleton, html_skeleton = _skeletons_of(shape)
        if (
            text_skeleton is not None
            and html_skeleton is not None
            and not any("\r" in v for v in fills.values())
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


class OutboxWriteError(TerminalError):
    """A batch of ``.eml`` files not written; names the step and the errno, never a file."""


def _write_batch(outbox: Path, files: Sequence[tuple[Path, bytes]]) -> None:
    """Write every file durably and atomically (:func:`notify.batch_writer.write_batch`)."""
    if not files:
        return
    outbox.mkdir(parents=True, exist_ok=True)
    folder = os.open(outbox, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        write_batch(folder, [(path.name, data) for path, data in files])
    finally:
        os.close(folder)


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


class OutboxWriter:
    """Writes batches of built ``.eml`` files durably from a child process of its own.

    The child makes each batch durable exactly as :func:`write_durably` does (same function),
    while this process builds the next one: the file system's system calls no longer wait for
    the GIL behind the renderer, and both cores work. One batch is in flight at a time;
    :attr:`durable` counts the files the child has reported on disk, durable and renamed into
    place, and nothing else. Use as a context manager; leaving it waits for the last batch.
    """

    _SCRIPT = str(Path(batch_writer.__file__).resolve())
    _PIPE_SIZE = 1 << 20

    def __init__(self, outbox: Path) -> None:
        outbox.mkdir(parents=True, exist_ok=True)
        self.outbox = outbox
        self.durable = 0
        self._in_flight = 0
        # -I -S: the child imports nothing of ours or of the environment, only the stdlib.
        self._child = subprocess.Popen(
            [sys.executable, "-I", "-S", self._SCRIPT, str(outbox)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self._child.stdin is not None and self._child.stdout is not None
        self._to = self._child.stdin.fileno()
        self._from = self._child.stdout.fileno()
        # Fewer wake-ups per batch; the default (64 KiB) works too, if pipe-max-size is lower.
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._to, fcntl.F_SETPIPE_SZ, self._PIPE_SIZE)

    def submit(self, files: Sequence[EmlFile]) -> None:
        """Hand a batch to the child, once the previous one is durable (see :meth:`wait`)."""
        self.wait()
        if not files:
            return
        buffers: list[bytes] = []
        size = 0
        for f in files:
            if f.path.parent != self.outbox:
                raise ValueError("every file of a batch belongs in this writer's outbox")
            name = f.path.name.encode("ascii")
            head = batch_writer.FILE_HEADER.pack(len(name), len(f.data)) + name
            buffers += (head, f.data)
            size += len(head) + len(f.data)
        buffers.insert(0, batch_writer.BATCH_HEADER.pack(len(files), size))
        self._send(buffers)
        self._in_flight = len(files)

    def _send(self, buffers: list[bytes]) -> None:
        # writev releases the GIL for the copy into the pipe; a short write finishes with write.
        for start in range(0, len(buffers), 512):
            chunk = buffers[start : start + 512]
            sent = os.writev(self._to, chunk)
            if sent < sum(len(b) for b in chunk):
                rest = memoryview(b"".join(chunk))[sent:]
                while rest:
                    rest = rest[os.write(self._to, rest) :]

    def wait(self) -> None:
        """Return once the batch in flight (if any) is durable; raise if it was refused."""
        if not self._in_flight:
            return
        answer = bytearray()
        while len(answer) < batch_writer.REPLY.size:
            got = os.read(self._from, batch_writer.REPLY.size - len(answer))
            if not got:
                self._in_flight = 0
                raise OutboxWriteError("outbox batch: the writer process ended before answering")
            answer += got
        status, step, errno = batch_writer.REPLY.unpack(answer)
        count, self._in_flight = self._in_flight, 0
        if status:
            error = BatchError(step, errno)
            raise OutboxWriteError(f"{error} (errno {errno})")
        self.durable += count

    def close(self) -> None:
        """Wait for the last batch, then let the child end (end of its input)."""
        try:
            self.wait()
        finally:
            assert self._child.stdin is not None and self._child.stdout is not None
            self._child.stdin.close()
            self._child.stdout.close()
            status = self._child.wait(timeout=60)
        if status != 0:
            raise OutboxWriteError(f"outbox batch: the writer process ended with status {status}")

    def __enter__(self) -> OutboxWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
            return
        # Already failing: let the batch in flight finish (never half a batch of temporaries),
        # and keep the error that brought us here rather than one from the writer.
        with contextlib.suppress(OutboxWriteError):
            self.close()


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
