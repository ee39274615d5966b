"""Outbox .eml files parse back to the notice, and no header can be injected."""

from __future__ import annotations

import email
from dataclasses import replace
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.errors import TerminalError
from notify.outbox import EmlFile, UnsafeHeaderError, write_eml
from notify.render import RenderedNotice

NOTICE = RenderedNotice(
    notice_id="a1b2c3d4e5f60718293a4b5c6d7e8f90",
    language="fr",
    subject="Information importante : vos données personnelles",
    text="Bonjour Marie Durand,\n\nCes démarches sont gratuites. « SIM swap » FR•• •••• 0189\n",
    html='<!DOCTYPE html>\n<html lang="fr"><body><p>Bonjour Marie O&#39;Hara,</p>'
    + "<p>Ces démarches sont gratuites.</p>" * 40
    + "</body></html>\n",
)
TO = "marie.durand@example.org"
SENDER = "Opérateur Exemple <securite@operateur.example>"


@pytest.fixture(params=["native", "python"])
def skeletons(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a notice fills its shape's skeleton: in one native call (``notify/_eml.c``),
    or line by line from Python."""
    from notify import outbox

    if request.param == "native":
        if outbox._native is None:
            pytest.skip("notify._eml was not built")
    else:
        monkeypatch.setattr(outbox, "_native", None)
    return str(request.param)


def parse(path: Path) -> EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_eml_parses_back_to_text_and_html(tmp_path: Path) -> None:
    when = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    path = write_eml(tmp_path / "outbox", NOTICE, to=TO, sender=SENDER, date=when)
    assert path == tmp_path / "outbox" / f"{NOTICE.notice_id}.eml"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    msg = parse(path)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["To"] == TO
    assert msg["From"].addresses[0].addr_spec == "securite@operateur.example"
    assert msg["From"].addresses[0].display_name == "Opérateur Exemple"
    assert msg["Subject"] == NOTICE.subject
    assert msg["Date"].datetime == when
    assert msg["Message-ID"] == f"<{NOTICE.notice_id}@operateur.example>"
    assert msg["X-Leakwatch-Notice-Id"] == NOTICE.notice_id
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content() == NOTICE.text
    assert html.get_content() == NOTICE.html
    raw = path.read_bytes()
    assert raw.isascii()  # quoted-printable and encoded words: safe through any relay
    assert max(len(line) for line in raw.splitlines()) <= 998


def test_rewriting_replaces_the_file(tmp_path: Path) -> None:
    write_eml(tmp_path, NOTICE, to=TO, sender=SENDER)
    path = write_eml(tmp_path, NOTICE, to="autre@example.org", sender=SENDER)
    assert parse(path)["To"] == "autre@example.org"
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize(
    ("to", "sender"),
    [
        (f"{TO}\r\nBcc: attacker@evil.example", SENDER),
        (f"{TO}\nBcc: attacker@evil.example", SENDER),
        (f"Marie\r\n Durand <{TO}>", SENDER),
        (f"{TO}\u2028Bcc: attacker@evil.example", SENDER),
        (f"{TO}\x00", SENDER),
        (TO, "securite@operateur.example\r\nReply-To: attacker@evil.example"),
        (TO, "Opérateur\nExemple <securite@operateur.example>"),
        (f"{TO}, attacker@evil.example", SENDER),
        ("not an address", SENDER),
        ("", SENDER),
    ],
)
def test_header_injection_is_refused(tmp_path: Path, to: str, sender: str) -> None:
    with pytest.raises(UnsafeHeaderError) as caught:
        write_eml(tmp_path, NOTICE, to=to, sender=sender)
    message = str(caught.value)
    assert NOTICE.notice_id in message
    assert "marie" not in message.lower() and "evil" not in message and "operateur" not in message
    assert isinstance(caught.value, TerminalError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("notice_id", ["../escape", "a/b", "x\r\nBcc: y", "", ".hidden"])
def test_unsafe_notice_id_is_refused(tmp_path: Path, notice_id: str) -> None:
    bad = RenderedNotice(notice_id, "fr", NOTICE.subject, NOTICE.text, NOTICE.html)
    with pytest.raises(UnsafeHeaderError):
        write_eml(tmp_path / "outbox", bad, to=TO, sender=SENDER)
    assert not (tmp_path / "outbox").exists()


def test_subject_with_a_line_break_is_refused(tmp_path: Path) -> None:
    bad = RenderedNotice(NOTICE.notice_id, "fr", "Sujet\r\nBcc: x@evil.example", "t", "<p>h</p>")
    with pytest.raises(UnsafeHeaderError, match="Subject"):
        write_eml(tmp_path, bad, to=TO, sender=SENDER)


def test_a_batch_is_written_whole_and_parses_like_the_email_package(tmp_path: Path) -> None:
    from dataclasses import replace

    from notify.outbox import write_emls

    when = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    second = replace(NOTICE, notice_id="b" * 32, text="Line\r\nwithout final break  ")
    answers = write_emls(
        tmp_path,
        [(NOTICE, TO), (NOTICE, f"{TO}\nBcc: x@evil.example"), (second, "Marie <m@example.org>")],
        sender=SENDER,
        date=when,
    )
    assert isinstance(answers[1], UnsafeHeaderError)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{NOTICE.notice_id}.eml", f"{'b' * 32}.eml"]
    )
    fast, slow = parse(tmp_path / f"{NOTICE.notice_id}.eml"), parse(tmp_path / f"{'b' * 32}.eml")
    for msg in (fast, slow):
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
        assert msg["Subject"] == NOTICE.subject
        assert msg["From"].addresses[0].display_name == "Opérateur Exemple"
        assert msg["Date"].datetime == when
    assert fast["To"] == TO and slow["To"] == "Marie <m@example.org>"
    text = slow.get_body(("plain",))
    assert text is not None and text.get_content() == "Line\nwithout final break  \n"


def test_a_rendered_notice_round_trips_through_its_shape_skeleton(
    tmp_path: Path, skeletons: str
) -> None:
    """Bodies built per shape decode to exactly the notice; an altered notice still does."""
    from dataclasses import replace

    from notify.render import NoticeRenderer
    from tests.notify.test_completeness import make_ctx

    renderer = NoticeRenderer()
    for language in ("fr", "en"):
        ctx = replace(make_ctx(language), first_name="Zoé  ", last_name="O'Hara <b>")
        notice = renderer.render(ctx)
        assert notice.shape is not None
        altered = replace(notice, text=notice.text.replace("Zoé", "Zoe\t"))
        for item in (notice, altered):
            path = write_eml(tmp_path, item, to=TO, sender=SENDER)
            msg = parse(path)
            text, html = msg.get_body(("plain",)), msg.get_body(("html",))
            assert text is not None and html is not None
            assert text.get_content() == item.text
            assert html.get_content() == item.html
            raw = path.read_bytes()
            assert raw.isascii() and max(len(line) for line in raw.splitlines()) <= 998


# Every way a notice's words change: each category alone and all together, each set of
# matched keys, both languages, both urgencies; names that need encoding in the body.
_NAMES = [
    ("Zoé", "Lefèvre-Dupré"),
    ("Marie", "O'Hara <b>"),
    ("Ægir", "Øster = Ünal"),
    ("Anne-Sophie", "de La Tour d'Auvergne et de Saint-Exupéry-Montmorency-Laval"),
    ('"Jo"', "Smith & Co"),
    (None, None),
]


def _contexts() -> list[object]:
    from schemas.vocab import Category, KeyKind, Risk
    from tests.notify.test_completeness import make_ctx

    kinds = [(KeyKind.EMAIL,), (KeyKind.IBAN,), (KeyKind.PHONE,), tuple(KeyKind)]
    mixes = [(c,) for c in Category] + [tuple(Category)]
    out = []
    n = 0
    for language in ("fr", "en"):
        for matched in kinds:
            for categories in mixes:
                first, last = _NAMES[n % len(_NAMES)]
                n += 1
                out.append(
                    replace(
                        make_ctx(language),
                        notice_id=f"{n:032x}",
                        matched_on=matched,
                        categories=categories,
                        risk=Risk.HIGH if n % 2 else Risk.MEDIUM,
                        first_name=first,
                        last_name=last,
                    )
                )
    return out


def test_fast_emls_parse_back_like_the_email_package(tmp_path: Path, skeletons: str) -> None:
    """The per-shape .eml equals, parsed back, what the email package writes for the notice;
    and its bytes equal the generic path's (the notice not provably built: encoded whole)."""
    from notify.outbox import _message, build_emls
    from notify.render import NoticeRenderer, as_built

    renderer = NoticeRenderer()
    when = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    contexts = _contexts()
    notices = [renderer.render(ctx) for ctx in contexts]  # type: ignore[arg-type]
    assert all(as_built(n) is not None for n in notices)
    fast = build_emls(tmp_path, [(n, TO) for n in notices], sender=SENDER, date=when)
    generic = build_emls(
        tmp_path, [(replace(n, built=None), TO) for n in notices], sender=SENDER, date=when
    )
    sender = Address(display_name="Opérateur Exemple", addr_spec="securite@operateur.example")
    for notice, f, g in zip(notices, fast, generic, strict=True):
        assert isinstance(f, EmlFile) and isinstance(g, EmlFile)
        assert f.data == g.data
        assert f.data.isascii() and max(len(line) for line in f.data.splitlines()) <= 998
        ours = email.message_from_bytes(f.data, policy=default)
        theirs = email.message_from_bytes(
            _message(notice, Address(addr_spec=TO), sender, when).as_bytes(policy=default),
            policy=default,
        )
        assert isinstance(ours, EmailMessage) and isinstance(theirs, EmailMessage)
        for header in ("From", "To", "Subject", "Date", "Message-ID", "X-Leakwatch-Notice-Id"):
            assert str(ours[header]) == str(theirs[header])
        assert ours.get_content_type() == theirs.get_content_type() == "multipart/alternative"
        for kind in ("plain", "html"):
            mine, ref = ours.get_body((kind,)), theirs.get_body((kind,))
            assert mine is not None and ref is not None
            assert mine["Content-Transfer-Encoding"] == "quoted-printable"
            assert mine.get_content_charset() == "utf-8"
            assert mine.get_content() == ref.get_content()
        assert ours.get_body(("plain",)).get_content() == notice.text  # type: ignore[union-attr]
        assert ours.get_body(("html",)).get_content() == notice.html  # type: ignore[union-attr]


_HOSTILE_NAMES = [
    ("Zoé", 'O\'Hara <b> & "Co"'),
    ("Ægir", "Øster = Ünal = 3D"),
    ("%s", "%(name)s %%"),
    ("Ana\u00a0Maria", "Ôtéa"),
    ("Jean.", "."),
    ("A" * 40, "B" * 39),
    ("—", "ø" * 70),
    ("€", "😀 •"),
]


def test_emls_of_notices_not_yet_joined_equal_the_generic_paths_bytes(
    tmp_path: Path, skeletons: str
) -> None:
    """Built from the shape and values alone, a notice's .eml is byte for byte the one the
    generic path (whole bodies through quoted-printable) writes for the joined notice."""
    from notify.outbox import build_emls
    from notify.render import FilledNotice, NoticeRenderer

    renderer = NoticeRenderer()
    when = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    contexts = _contexts()
    hostile = [
        replace(ctx, first_name=first, last_name=last)  # type: ignore[type-var]
        for n, (first, last) in enumerate(_HOSTILE_NAMES)
        for ctx in contexts[n :: len(_HOSTILE_NAMES)]
    ]
    filled = [renderer.fill(ctx) for ctx in contexts + hostile]  # type: ignore[arg-type]
    assert all(isinstance(f, FilledNotice) for f in filled)
    fast = build_emls(tmp_path, [(f, TO) for f in filled], sender=SENDER, date=when)
    generic = build_emls(
        tmp_path,
        [(replace(f.rendered(), built=None), TO) for f in filled],
        sender=SENDER,
        date=when,
    )
    for f, g in zip(fast, generic, strict=True):
        assert isinstance(f, EmlFile) and isinstance(g, EmlFile)
        assert f.path == g.path and f.data == g.data
    # A display name goes through the email package (its own random boundary): same message.
    (named,) = build_emls(tmp_path, [(filled[0], "Marie <m@example.org>")], sender=SENDER)
    assert isinstance(named, EmlFile)
    msg = email.message_from_bytes(named.data, policy=default)
    assert isinstance(msg, EmailMessage) and msg["To"] == "Marie <m@example.org>"
    text = msg.get_body(("plain",))
    assert text is not None and text.get_content() == filled[0].rendered().text


@settings(max_examples=400, deadline=None)
@given(
    words=st.text(alphabet="ab =.\t%é€•\u00a0,;:-😀", max_size=300),
    rest=st.text(alphabet="ab =.\t%é€•\u00a0,;:-😀", max_size=120),
)
def test_a_lines_head_encodes_as_it_does_within_the_line(words: str, rest: str) -> None:
    """The head encoded once per shape, then the rest of the line: the line's own encoding."""
    import binascii

    from notify.outbox import _encoded_head

    head, cut = _encoded_head(words)
    line = binascii.b2a_qp((words + rest + "\n").encode("utf-8"), istext=True)
    tail = binascii.b2a_qp((words[cut:] + rest + "\n").encode("utf-8"), istext=True)
    assert head + tail == line


@pytest.mark.parametrize(
    "values",
    [
        {"name": "Zoé", "reference": "r1", "iban_hint": "FR•• •••• 0189"},
        {"name": "50 % & <b>", "reference": "%s %(name)s", "iban_hint": "=3D"},
        {"name": "two\nlines", "reference": "r1", "iban_hint": "x"},
        {"name": "a\rb", "reference": "r1", "iban_hint": "x"},
    ],
)
def test_any_value_line_equals_the_generic_paths_bytes(
    values: dict[str, str], skeletons: str
) -> None:
    """One value, two on a line, a hint line, and values the fast path leaves to the generic
    one (a line break): the same bytes as the whole bodies through quoted-printable."""
    from notify.outbox import build_eml
    from notify.render import FilledNotice, NoticeShape

    words = "Des mots assez longs pour qu'une ligne dépasse la largeur permise, " * 2
    text = ("Bonjour ", "name", ",\n" + words + "\nRéf. ", "reference", " et ", "iban_hint", ".\n")
    html = ("<p>", "name", f"</p>\n<p>{words}", "iban_hint", "</p>\n<p>", "reference", "</p>\n")
    shape = NoticeShape(("test",), text, html)
    filled = FilledNotice("a1b2c3d4e5f60718293a4b5c6d7e8f90", "fr", "Objet", shape, values)
    when = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    fast = build_eml(filled, TO, sender=SENDER, date=when)
    generic = build_eml(replace(filled.rendered(), built=None), TO, sender=SENDER, date=when)
    assert fast == generic


# Bytes that quoted-printable treats apart: spaces and tabs (at a line's end), "=", ".", NUL
# and other controls, 8-bit bytes, and plain ones to reach the soft breaks.
_QP_BYTES = st.binary(max_size=0) | st.lists(
    st.sampled_from([b" ", b"\t", b"=", b".", b"\0", b"\x1b", b"\x7f", b"\xc3\xa9", b"a", b"%s"]),
    max_size=120,
).map(b"".join)


@settings(max_examples=600, deadline=None)
@given(before=_QP_BYTES, value=_QP_BYTES, after=_QP_BYTES, html=_QP_BYTES, ended=st.booleans())
@example(before=b".\0", value=b"", after=b"", html=b"", ended=True)  # "." alone, then NUL
@example(before=b"a", value=b" ", after=b"", html=b"\t", ended=False)  # white space at the end
@example(before=b"a" * 76, value=b"", after=b"", html=b"", ended=False)  # no soft break at the end
def test_native_value_lines_encode_as_binascii(
    before: bytes, value: bytes, after: bytes, html: bytes, ended: bool
) -> None:
    """notify/_eml.c's quoted-printable is binascii.b2a_qp(line, istext=True), byte for byte
    (its lines end with a line break; it holds without), and its file is the literals with
    the gaps and the encoded lines between them."""
    import binascii

    from notify import outbox

    if outbox._native is None:
        pytest.skip("notify._eml was not built")
    end = b"\n" if ended else b""
    literals = (b"L0", b"L1", b"L2", b"L3", b"L4", b"L5", b"L6")
    text_line = ((before, after + end), (0,))
    html_line = ((html, b".\n"), (1,))  # a full stop alone at a line's start after a value
    built = outbox._native.assemble(
        literals, (text_line,), (html_line,), (value, b""), (value, html), b"to", b"d", b"id"
    )
    encoded_text = binascii.b2a_qp(before + value + after + end, istext=True)
    encoded_html = binascii.b2a_qp(html + html + b".\n", istext=True)
    assert built == b"L0toL1dL2idL3idL4" + encoded_text + b"L5" + encoded_html + b"L6"


@pytest.mark.parametrize("value", [b"two\nlines", b"a\rb", b"\r"])
def test_native_skeleton_leaves_line_breaks_in_values_to_the_generic_path(value: bytes) -> None:
    from notify import outbox

    if outbox._native is None:
        pytest.skip("notify._eml was not built")
    literals = (b"",) * 6
    line = ((b"Bonjour ", b",\n"), (0,))
    assert outbox._native.assemble(literals, (line,), (), (value,), (value,), b"", b"", b"") is None
    words_with_cr = ((b"Bonjour\r", b",\n"), (0,))  # never made by _body_skeleton; refused too
    assert (
        outbox._native.assemble(literals, (words_with_cr,), (), (b"Zoe",), (b"Zoe",), b"", b"", b"")
        is None
    )
    with pytest.raises(TypeError):  # one literal short: a skeleton we never make
        outbox._native.assemble(literals[1:], (line,), (), (value,), (value,), b"", b"", b"")
