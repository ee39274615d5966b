"""Notices of one shape share SendGrid requests; each customer still receives exactly its notice."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from breach_facts import EXAMPLE_BREACH
from notify_world import World, ledger

from core.errors import ConfigError
from flows.context import open_store
from matching.ledger import send_candidates
from notify.fake_sendgrid import FakeSendGrid, Fault, validate_mail
from notify.plan import breach_facts, contexts
from notify.render import NoticeRenderer, RenderedNotice
from notify.senders import MAX_PERSONALIZATIONS, OutgoingNotice, SendGridSender
from notify.sending import send_notices
from schemas.models import NoticeContext
from schemas.vocab import Category as C
from schemas.vocab import KeyKind as K
from schemas.vocab import Risk

BREACH = replace(EXAMPLE_BREACH, support_contact="3900 (appel gratuit)")
RENDERER = NoticeRenderer()


def _notice(
    n: int, first: str = "Marie", email: str | None = None, **changes: object
) -> OutgoingNotice:
    ctx = NoticeContext(
        notice_id=f"{n:032x}",
        customer_id=f"C{n:06d}",
        language="fr",
        first_name=first,
        last_name="Durand",
        email=email or f"client{n}@example.org",
        matched_on=(K.IBAN,),
        categories=(C.IBAN, C.NAME),
        risk=Risk.HIGH,
        breach=BREACH,
        iban_hint=f"FR•• •••• {n % 10000:04d}",
        phone_hint=None,
    )
    ctx = replace(ctx, **changes)  # type: ignore[arg-type]
    assert ctx.email is not None
    return OutgoingNotice(ctx.notice_id, ctx.email, RENDERER.render(ctx))


def _sender(fake: FakeSendGrid, **kw: object) -> SendGridSender:
    options: dict[str, object] = {
        "host": fake.url,
        "timeout_s": 5.0,
        "sender_email": "securite@operateur.example",
        "sender_name": "Opérateur Exemple",
        "concurrency": 1,
        "per_request": 1000,
        "sleep": lambda s: None,
        "clock": lambda: 1_800_000_000.0,
    }
    options.update(kw)
    return SendGridSender(fake.api_key, **options)  # type: ignore[arg-type]


def _bodies(fake: FakeSendGrid) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in fake.requests]


def _reads_as_rendered(fake: FakeSendGrid, notices: list[OutgoingNotice]) -> None:
    """What SendGrid makes of each accepted personalization is the notice, byte for byte."""
    by_id = {n.notice_id: n for n in notices}
    got = fake.delivered()
    assert sorted(d.notice_id or "" for d in got) == sorted(by_id)
    for d in got:
        sent = by_id[d.notice_id or ""]
        assert d.to == sent.to
        assert d.subject == sent.notice.subject
        assert d.content == {"text/plain": sent.notice.text, "text/html": sent.notice.html}


def test_one_shape_one_request_each_customer_reads_its_own_notice(fake: FakeSendGrid) -> None:
    names = ["Marie", "Zoë", "Seán", "Ann-Sophie"]
    notices = [_notice(n, first=names[n % 4]) for n in range(12)]
    # HTML escaping differs from the text: the HTML carries the escaped value.
    notices.append(_notice(12, first="Siobhán", last_name="O'Brien & Fils"))
    result = _sender(fake).send(notices)
    assert [o.state for o in result.outcomes] == ["accepted"] * 13
    assert [o.notice_id for o in result.outcomes] == [n.notice_id for n in notices]
    assert len(fake.requests) == 1
    (body,) = _bodies(fake)
    assert validate_mail(body) == []
    assert len(body["personalizations"]) == 13  # type: ignore[arg-type]
    # In the order given, only the random notice id in custom_args, nothing at the top.
    for p, n in zip(body["personalizations"], notices, strict=True):  # type: ignore[call-overload]
        assert p["custom_args"] == {"notice_id": n.notice_id}
        assert p["to"] == [{"email": n.to}]
    assert "custom_args" not in body and "categories" not in body
    assert body["tracking_settings"]["open_tracking"] == {"enable": False}  # type: ignore[index]
    # The words go once, with no customer's value in them.
    words = "".join(c["value"] for c in body["content"])  # type: ignore[attr-defined]
    assert "Marie" not in words and "O&#39;Brien" not in words and "0012" not in words
    _reads_as_rendered(fake, notices)
    (message_id,) = {o.message_id for o in result.outcomes}
    assert message_id and {m.message_id for m in fake.sent} == {message_id}


def test_shapes_never_mix_and_requests_hold_at_most_per_request(fake: FakeSendGrid) -> None:
    iban = [_notice(n) for n in range(7)]
    # Another shape: no name (a customer base without one), then English.
    nameless = [_notice(n, first=None, last_name=None) for n in range(7, 10)]
    english = [_notice(n, language="en") for n in range(10, 12)]
    notices = [*iban, *nameless, *english]
    result = _sender(fake, per_request=3).send(notices)
    assert {o.state for o in result.outcomes} == {"accepted"}
    sizes = sorted(len(b["personalizations"]) for b in _bodies(fake))  # type: ignore[arg-type]
    assert sizes == [1, 2, 3, 3, 3]  # 7 = 3 + 3 + 1; 3; 2
    # One message id per request; the notices of a request share it.
    assert len({o.message_id for o in result.outcomes}) == 5
    _reads_as_rendered(fake, notices)


def test_an_address_is_never_twice_in_one_request(fake: FakeSendGrid) -> None:
    # Two customers sharing an address (SendGrid refuses a request that names it twice).
    notices = [
        _notice(0, email="famille@example.org"),
        _notice(1, email="FAMILLE@example.org"),
        _notice(2),
    ]
    result = _sender(fake).send(notices)
    assert [o.state for o in result.outcomes] == ["accepted"] * 3
    assert all(r.status == 202 for r in fake.requests) and len(fake.requests) == 2
    _reads_as_rendered(fake, notices)


def test_a_400_naming_one_personalization_fails_that_notice_and_sends_the_others(
    fake: FakeSendGrid,
) -> None:
    notices = [_notice(n) for n in range(5)]
    notices[3] = replace(notices[3], to="x" * 320 + "@example.org")  # too long for SendGrid
    result = _sender(fake).send(notices)
    states = [o.state for o in result.outcomes]
    assert states == ["accepted", "accepted", "accepted", "failed", "accepted"]
    # The field without the request's index, and no value.
    assert result.outcomes[3].reason == "http 400: personalizations.to.0.email"
    assert [r.status for r in fake.requests] == [400, 202]
    assert sorted(fake.sends_per_notice().values()) == [1] * 4
    _reads_as_rendered(fake, [n for i, n in enumerate(notices) if i != 3])


def test_a_400_naming_no_personalization_fails_them_all(fake: FakeSendGrid) -> None:
    notices = [_notice(n) for n in range(4)]
    result = _sender(fake, sender_email="not-an-address").send(notices)
    assert {(o.state, o.reason) for o in result.outcomes} == {("failed", "http 400: from.email")}
    assert len(fake.requests) == 1 and fake.sent == []


def test_a_lost_answer_leaves_the_whole_request_ambiguous(fake: FakeSendGrid) -> None:
    fake.script(Fault.close())
    notices = [_notice(n) for n in range(6)]
    result = _sender(fake).send(notices)
    assert {o.state for o in result.outcomes} == {"ambiguous"}
    # SendGrid had accepted them: never sent again silently, and their events name each one.
    assert sorted(fake.sends_per_notice().values()) == [1] * 6
    assert {e["notice_id"] for e in fake.events()} == {n.notice_id for n in notices}


def test_rate_limits_retry_the_whole_request(fake: FakeSendGrid) -> None:
    fake.script(Fault.rate_limited(reset_epoch=1_800_000_004), Fault.server_error(503))
    waits: list[float] = []
    notices = [_notice(n) for n in range(4)]
    result = _sender(fake, sleep=waits.append).send(notices)
    assert {o.state for o in result.outcomes} == {"accepted"} and result.retries == 2
    assert waits[0] == 4.0 and len(fake.requests) == 3
    assert sorted(fake.sends_per_notice().values()) == [1] * 4


def test_notices_not_provably_rendered_or_holding_a_tag_go_alone(fake: FakeSendGrid) -> None:
    notices = [_notice(n) for n in range(4)]
    # Changed after rendering: no longer provably its shape filled.
    notices[1] = replace(
        notices[1], notice=replace(notices[1].notice, text=notices[1].notice.text + "\n")
    )
    # A value holding the start of this sender's tags (the token is fixed here).
    notices[2] = _notice(2, first="Zoe [lw-abcdef")
    result = _sender(fake, tag_token="abcdef").send(notices)
    assert {o.state for o in result.outcomes} == {"accepted"}
    sizes = sorted(len(b["personalizations"]) for b in _bodies(fake))  # type: ignore[arg-type]
    assert sizes == [1, 1, 2]
    alone = [b for b in _bodies(fake) if len(b["personalizations"]) == 1]  # type: ignore[arg-type]
    assert all(set(b["custom_args"]) == {"notice_id"} for b in alone)  # type: ignore[arg-type]
    _reads_as_rendered(fake, notices)


def test_notices_per_request_is_bounded(fake: FakeSendGrid) -> None:
    for bad in (0, MAX_PERSONALIZATIONS + 1):
        with pytest.raises(ConfigError):
            _sender(fake, per_request=bad)


def test_the_send_loop_groups_a_breach_by_kind_exactly_once(
    world: World, fake: FakeSendGrid
) -> None:
    facts = breach_facts(world.settings, world.breach_id, datetime(2024, 10, 20, tzinfo=UTC))
    with open_store(world.settings) as store:
        report = send_notices(
            store, world.breach_id, facts, _sender(fake, concurrency=2), batch_size=25
        )
    assert report.accepted == world.with_email and report.failed == 0 and report.ambiguous == []
    assert sorted(fake.sends_per_notice().values()) == [1] * world.with_email
    # Fewer requests than notices: the batches were made of at least per_request notices,
    # ordered by kind, so a request holds every notice of its shape.
    assert len(fake.requests) < world.with_email
    with open_store(world.settings, read_only=True) as store:
        rows = send_candidates(store, world.breach_id, ["accepted"]).to_dicts()
    shapes = set()
    sent: list[OutgoingNotice] = []
    for ctx in contexts(rows, facts):
        notice = NoticeRenderer().render(ctx)
        assert isinstance(notice, RenderedNotice) and ctx.email is not None
        shapes.add((notice.shape.key if notice.shape else None, notice.subject))
        sent.append(OutgoingNotice(ctx.notice_id, ctx.email, notice))
    assert len(fake.requests) == len(shapes)
    _reads_as_rendered(fake, sent)
    # Each accepted notice records its request's message id.
    recorded = dict(
        ledger(
            world.settings,
            "SELECT notice_id, sendgrid_message_id FROM notices WHERE state = 'accepted'",
        )
    )
    assert {recorded[m.notice_id or ""] for m in fake.sent} == {m.message_id for m in fake.sent}


def test_an_address_the_library_cannot_read_fails_alone(fake: FakeSendGrid) -> None:
    notices = [_notice(n) for n in range(4)]
    notices[1] = replace(notices[1], to="pas-une-adresse")
    notices[3] = replace(notices[3], to="deux@arobases@example.org")
    for per_request in (1000, 1):
        result = _sender(fake, per_request=per_request).send(notices)
        assert [(o.state, o.reason) for o in result.outcomes] == [
            ("accepted", None),
            ("failed", "address not accepted"),
            ("accepted", None),
            ("failed", "address not accepted"),
        ]
    # Shared: the two others still in one request; one each: two requests.
    assert [len(json.loads(r.body)["personalizations"]) for r in fake.requests] == [2, 1, 1]
    assert all(r.status == 202 for r in fake.requests)


@pytest.mark.parametrize("page_rows", [7, 250_000])
def test_the_send_loop_fills_every_request_in_flight(
    world: World, fake: FakeSendGrid, page_rows: int
) -> None:
    # 5 notices a request, 2 in flight: ledger batches of 10 (the configured 4 is below it),
    # each holding runs of 5 notices of one kind, however the candidates are paged.
    sender = _sender(fake, per_request=5, concurrency=2)
    assert sender.min_batch == 10
    facts = breach_facts(world.settings, world.breach_id, datetime(2024, 10, 20, tzinfo=UTC))
    with open_store(world.settings) as store:
        report = send_notices(
            store, world.breach_id, facts, sender, batch_size=4, page_rows=page_rows
        )
    assert report.accepted == world.with_email
    batches = ledger(
        world.settings, "SELECT count(DISTINCT batch_id) FROM notices WHERE state = 'accepted'"
    )
    assert batches[0][0] == -(-world.with_email // 10)
    sizes = [len(b["personalizations"]) for b in _bodies(fake)]  # type: ignore[arg-type]
    assert max(sizes) == 5 and sum(sizes) == world.with_email
    assert len(sizes) < world.with_email  # notices of one kind came together
    assert sorted(fake.sends_per_notice().values()) == [1] * world.with_email
