"""The local outbox: each notice as one multipart/alternative ``.eml`` file, written atomically."""

from __future__ import annotations

import binascii
import os
import re
import secrets
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime, getaddresses
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

from core.errors import TerminalError
from matching.native import eml_module
from notify.batch_writer import write_batch
from notify.render import (
    HINT_SLOTS,
    FilledNotice,
    NoticeShape,
    RenderedNotice,
    as_built,
    escaped_values,
)

__all__ = [
    "EmlFile",
    "UnsafeHeaderError",
    "build_eml",
    "build_emls",
    "shape_eml",
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


@dataclass(frozen=True, slots=True, eq=False)
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


# A notice's .eml is its shape's .eml with the recipient, the date, the notice id and the body
# lines that hold a value filled in. Quoted-printable is line-local: a body encodes to the
# encodings of its lines, each as it is when a line break follows it (a soft break never
# crosses a hard one; white space at a line's end is judged against the break after it). So a
# line, or run of whole lines, encodes on its own to the very bytes it has in the body: the
# lines without a value are encoded once per shape, and only a notice's value lines per notice.
# A value line's words before its first value encode as they do on their own up to the last
# soft break decided by them alone (the encoder looks one byte ahead, and a soft break leaves
# it as at the start of a line): that head is encoded once too, the rest of the line per notice.
_MARKED = re.compile("\ue000([a-z_]+)\ue001")
_SKELETONS_MAX = 1024

# One value line: its words as a ``%s`` template (UTF-8, with its line break), the values it
# takes (an itemgetter: the value itself for one slot, which ``%`` takes as a single value),
# and how it is encoded.
_Line = tuple[bytes, Callable[[Mapping[str, bytes]], Any], Callable[[bytes], bytes]]
# The same line for notify/_eml.c: its words around the values (UTF-8, the last with the
# line break), and the slots it takes, by name here, by their index in _Skeleton.slots there.
_Cut = tuple[tuple[bytes, ...], tuple[str, ...]]

# Where it was built, a notice's value lines are filled and encoded, and its file joined, in
# one native call (notify/_eml.c: ~7 µs less a notice); else here, line by line.
_native = eml_module()


@dataclass(frozen=True, slots=True)
class _Skeleton:
    """One shape's ``.eml`` for one sender and subject, with gaps for what each notice adds.

    ``parts`` is the whole file, its odd items gaps: the recipient, the date, the notice id
    (twice), then each value line encoded: the text's ``text_lines``, then the HTML's
    ``html_lines`` (filled with escaped values).
    """

    parts: list[bytes]
    text_lines: tuple[_Line, ...]
    html_lines: tuple[_Line, ...]
    slots: tuple[str, ...]  # the slots its value lines hold
    # For notify/_eml.c: the parts between the gaps, and each value line as its words around
    # the values and the values' indexes in ``slots``, the text's lines then the HTML's.
    literals: tuple[bytes, ...]
    text_cuts: tuple[tuple[tuple[bytes, ...], tuple[int, ...]], ...]
    html_cuts: tuple[tuple[tuple[bytes, ...], tuple[int, ...]], ...]


_skeletons: dict[tuple[NoticeShape, _Head], _Skeleton | None] = {}

# A line whose values are all hints (HINT_SLOTS) recurs, and is encoded once (b2a_qp's
# default is istext=True).
_encoded_repeating = lru_cache(maxsize=4096)(binascii.b2a_qp)


@lru_cache(maxsize=2048)
def _encoded_run(lines: str) -> bytes:
    """Whole lines (each with its break), quoted-printable; shapes share most of their runs."""
    return binascii.b2a_qp(lines.encode("utf-8"), istext=True)


@lru_cache(maxsize=1024)
def _encoded_head(words: str) -> tuple[bytes, int]:
    """The encoding of ``words`` up to their last soft break that the rest of a line cannot
    move, and how many characters of ``words`` it covers (0: no such break)."""
    data = words.encode("utf-8")
    encoded = binascii.b2a_qp(data, istext=True)
    cut, consumed, head, pos = 0, 0, b"", 0
    while pos < len(encoded):
        if encoded[pos : pos + 2] == b"=\n":
            # Decided by the byte after it and the one after that, both still in the words; and
            # a character starts there, so the words can be cut there.
            if consumed <= len(data) - 2 and (data[consumed] & 0xC0) != 0x80:
                cut, head = consumed, encoded[: pos + 2]
            pos += 2
        else:
            pos += 3 if encoded[pos] == ord("=") else 1
            consumed += 1
    return head, len(data[:cut].decode("utf-8"))


def _body_skeleton(parts: tuple[str, ...]) -> tuple[list[bytes], list[_Line], list[_Cut]] | None:
    """A body's runs of lines without a value, encoded, around its value lines (as templates,
    and as their words around the values).

    None when the generic path would first normalise the body (a CR, no final line break).
    """
    literals = parts[0::2]
    if any("\r" in p or "\ue000" in p or "\ue001" in p for p in literals):
        return None
    if not literals[-1].endswith("\n"):
        return None
    marked = "".join(p if i % 2 == 0 else f"\ue000{p}\ue001" for i, p in enumerate(parts))
    runs: list[bytes] = []
    lines: list[_Line] = []
    cuts: list[_Cut] = []
    # From one value line to the next by the markers: the lines between are one run, as is.
    end = 0
    found = marked.find("\ue000")
    while found >= 0:
        start = marked.rfind("\n", 0, found) + 1
        stop = marked.find("\n", found)  # the body ends with a line break
        pieces = _MARKED.split(marked[start:stop])
        head, cut = _encoded_head(pieces[0])
        pieces[0] = pieces[0][cut:]
        runs.append(_encoded_run(marked[end:start]) + head)
        words = "".join(p.replace("%", "%%") if i % 2 == 0 else "%s" for i, p in enumerate(pieces))
        slots = pieces[1::2]
        words_around = [p.encode() for p in pieces[0::2]]
        words_around[-1] += b"\n"
        cuts.append((tuple(words_around), tuple(slots)))
        few = HINT_SLOTS.issuperset(slots)
        lines.append(
            (
                f"{words}\n".encode(),
                itemgetter(*slots),
                _encoded_repeating if few else binascii.b2a_qp,
            )
        )
        end = stop + 1
        found = marked.find("\ue000", end)
    runs.append(_encoded_run(marked[end:]))
    return runs, lines, cuts


def _skeleton(shape: NoticeShape, head: _Head) -> _Skeleton | None:
    text = _body_skeleton(shape.text)
    html = _body_skeleton(shape.html)
    if text is None or html is None:
        return None
    # NUL marks the gaps: no header we write and no quoted-printable line can hold one.
    gap = b"\0"
    whole = _envelope(head, gap, gap, gap, gap.join(text[0]), gap.join(html[0]))
    chunks = whole.split(gap)
    if len(chunks) != len(text[1]) + len(html[1]) + 5:
        return None
    parts = [gap] * (2 * len(chunks) - 1)
    parts[0::2] = chunks
    slots = tuple(dict.fromkeys((*shape.text[1::2], *shape.html[1::2])))
    index = {slot: n for n, slot in enumerate(slots)}

    def indexed(cuts: list[_Cut]) -> tuple[tuple[tuple[bytes, ...], tuple[int, ...]], ...]:
        return tuple((words, tuple(index[slot] for slot in names)) for words, names in cuts)

    return _Skeleton(
        parts,
        tuple(text[1]),
        tuple(html[1]),
        slots,
        tuple(chunks),
        indexed(text[2]),
        indexed(html[2]),
    )


def _skeleton_of(shape: NoticeShape, head: _Head) -> _Skeleton | None:
    key = (shape, head)
    found = _skeletons.get(key)
    if found is not None or key in _skeletons:  # None: the shape has no skeleton
        return found
    if len(_skeletons) >= _SKELETONS_MAX:
        _skeletons.clear()
    found = _skeletons[key] = _skeleton(shape, head)
    return found


def _from_skeleton(
    shape: NoticeShape,
    fills: Mapping[str, str],
    escaped: Mapping[str, str],
    notice_id: bytes,
    to: bytes,
    head: _Head,
    date: bytes,
) -> bytes | None:
    """The notice's .eml from its shape's skeleton, or None if the generic path must decide.

    ``escaped``: the values as the HTML carries them (``fills`` itself when none changes).
    """
    skeleton = _skeleton_of(shape, head)
    if skeleton is None:
        return None
    # Each value encoded once, for every line that holds it (a line is its template filled).
    text: dict[str, bytes] = {}
    for slot in skeleton.slots:
        value = fills[slot]
        if "\n" in value or "\r" in value:
            return None  # the generic path breaks the line there (or turns a CR into a break)
        text[slot] = value.encode()
    if _native is not None:
        text_values = tuple(text.values())  # in the order of skeleton.slots
        html_values = (
            text_values
            if escaped is fills
            else tuple(escaped[slot].encode() for slot in skeleton.slots)
        )
        built: bytes | None = _native.assemble(
            skeleton.literals,
            skeleton.text_cuts,
            skeleton.html_cuts,
            text_values,
            html_values,
            to,
            date,
            notice_id,
        )
        return built
    html = text if escaped is fills else {slot: escaped[slot].encode() for slot in skeleton.slots}
    encoded = [encode(words % values(text)) for words, values, encode in skeleton.text_lines]
    encoded += [encode(words % values(html)) for words, values, encode in skeleton.html_lines]
    out = skeleton.parts.copy()
    out[1], out[3], out[5], out[7] = to, date, notice_id, notice_id
    out[9::2] = encoded
    return b"".join(out)


def _envelope(
    head: _Head, to: bytes, date: bytes, notice_id: bytes, text: bytes, html: bytes
) -> bytes:
    """Headers and both parts around bodies already encoded (each ending with a line break)."""
    b = _BOUNDARY
    return b"".join(
        (
            head.sender,
            b"To: %s\n" % to,
            head.subject,
            b"Date: %s\n" % date,
            b"Message-ID: <%s@%s>\n" % (notice_id, head.domain.encode("ascii")),
            b"X-Leakwatch-Notice-Id: %s\n" % notice_id,
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


def _eml_bytes(
    notice: RenderedNotice | FilledNotice, to: str, sender: str, date: datetime, date_header: bytes
) -> bytes:
    """The ``.eml`` of one notice; raises :class:`UnsafeHeaderError` before anything is built.

    Built from its shape's skeleton when it is provably that shape filled (a notice not yet
    joined is, by definition); otherwise from its text and HTML.
    """
    notice_id = notice.notice_id
    if not _NOTICE_ID.fullmatch(notice_id):
        raise UnsafeHeaderError(notice_id, "notice id: unsafe for a file name or header")
    head = _head(notice_id, sender, notice.subject)
    if len(to) > _PLAIN_MAX or not _PLAIN_ADDRESS.fullmatch(to):
        # Display names, non-ASCII, anything to fold or refuse: the email package decides.
        to_address = _address(notice_id, "To", to)
        sender_address = _address(notice_id, "From", sender)
        rendered = notice if isinstance(notice, RenderedNotice) else notice.rendered()
        # LF line ends, as mail tools on this system write .eml files; relays convert to CRLF.
        return _message(rendered, to_address, sender_address, date).as_bytes(policy=default)
    to_bytes = to.encode("ascii")
    id_bytes = notice_id.encode("ascii")
    if isinstance(notice, FilledNotice):
        fast = _from_skeleton(
            notice.shape, notice.fills, notice.escaped, id_bytes, to_bytes, head, date_header
        )
        if fast is not None:
            return fast
    elif (built := as_built(notice)) is not None:
        shape, fills = built
        escaped = escaped_values(fills)
        fast = _from_skeleton(shape, fills, escaped, id_bytes, to_bytes, head, date_header)
        if fast is not None:
            return fast
    rendered = notice if isinstance(notice, RenderedNotice) else notice.rendered()
    return _envelope(head, to_bytes, date_header, id_bytes, _qp(rendered.text), _qp(rendered.html))


def shape_eml(
    shape: NoticeShape,
    subject: str,
    values: Mapping[str, str],
    notice_id: str,
    to: str,
    *,
    sender: str,
    date: datetime,
) -> bytes | None:
    """:func:`build_eml`'s bytes for the notice of ``shape`` and ``subject`` filled with
    ``values`` (unescaped), from the shape's skeleton; None wherever :func:`build_eml` has more
    to decide (an id, a header or an address to refuse or to fold, a value breaking a line, a
    shape without skeleton).

    For a writer that keeps each kind's shapes and checks their notices by their values
    (:class:`notify.completeness.ShapeProof`) rather than per :class:`FilledNotice`.
    """
    if not _NOTICE_ID.fullmatch(notice_id) or len(to) > _PLAIN_MAX:
        return None
    try:
        head = _head(notice_id, sender, subject)
    except UnsafeHeaderError:
        return None
    if not _PLAIN_ADDRESS.fullmatch(to):
        return None
    return _from_skeleton(
        shape,
        values,
        escaped_values(values),
        notice_id.encode("ascii"),
        to.encode("ascii"),
        head,
        _date_header(date),
    )


@lru_cache(maxsize=16)
def _date_header(moment: datetime) -> bytes:
    """The Date header's value (to the second): the same for a whole batch, made once."""
    return format_datetime(moment.replace(microsecond=0)).encode("ascii")


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


def build_eml(
    notice: RenderedNotice | FilledNotice, to: str, *, sender: str, date: datetime
) -> bytes:
    """The ``.eml`` bytes of one notice to ``to``; raises :class:`UnsafeHeaderError`."""
    return _eml_bytes(notice, to, sender, date, _date_header(date))


def build_emls(
    outbox: Path,
    items: Sequence[tuple[RenderedNotice | FilledNotice, str]],
    *,
    sender: str,
    date: datetime | None = None,
) -> list[EmlFile | UnsafeHeaderError]:
    """Build the ``.eml`` of each ``(notice, recipient)``, or the error that refused it."""
    when = date or datetime.now(UTC)
    date_header = _date_header(when)
    answers: list[EmlFile | UnsafeHeaderError] = []
    for notice, to in items:
        try:
            data = _eml_bytes(notice, to, sender, when, date_header)
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
