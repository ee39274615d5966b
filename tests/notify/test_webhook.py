"""Signed Event Webhook: SendGrid's own verifier agrees, and forged, tampered or stale calls are refused."""

from __future__ import annotations

import json

import pytest
from sendgrid.helpers.eventwebhook import EventWebhook

from notify.fake_sendgrid import FakeSendGrid
from notify.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookRejectedError,
    decode_export,
    load_public_key,
    parse_events,
    verify,
)

NOW = 1_800_000_000
NOTICE = "0123456789abcdef0123456789abcdef"


def _record(**extra: object) -> dict[str, object]:
    return {
        "email": "jeanne.martin@example.test",
        "ip": "198.51.100.7",
        "useragent": "Mozilla/5.0",
        "timestamp": NOW,
        "sg_event_id": "ZmFrZS1ldmVudC0x",
        "sg_message_id": "abcDEF123.recvd-1.0",
        "notice_id": NOTICE,
        "event": "delivered",
        "response": "250 OK jeanne.martin@example.test",
        **extra,
    }


@pytest.fixture
def signer() -> FakeSendGrid:
    return FakeSendGrid(clock=lambda: float(NOW))  # signs without serving


def test_sendgrids_own_helper_accepts_our_signatures(signer: FakeSendGrid) -> None:
    body = json.dumps([_record()]).encode()
    headers = signer.sign(body)
    helper = EventWebhook(signer.public_key_b64)
    assert helper.verify_signature(
        body.decode(), headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER]
    )
    verify(
        load_public_key(signer.public_key_b64),
        headers[SIGNATURE_HEADER],
        headers[TIMESTAMP_HEADER],
        body,
        now=NOW,
    )


@pytest.mark.parametrize("attack", ["tampered", "forged", "stale", "future", "unsigned", "garbage"])
def test_bad_calls_are_refused(signer: FakeSendGrid, attack: str) -> None:
    key = load_public_key(signer.public_key_b64)
    body = json.dumps([_record()]).encode()
    headers = signer.sign(body)
    sig, ts = headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER]
    if attack == "tampered":
        body = body.replace(b"delivered", b"bounce")
    elif attack == "forged":
        sig = FakeSendGrid(clock=lambda: float(NOW)).sign(body)[SIGNATURE_HEADER]
    elif attack == "stale":
        sig, ts = signer.sign(body, NOW - 301).values()
    elif attack == "future":
        sig, ts = signer.sign(body, NOW + 301).values()
    elif attack == "unsigned":
        sig = ""
    else:
        sig = "not base64!"
    with pytest.raises(WebhookRejectedError):
        verify(key, sig, ts, body, now=NOW)


def test_parsing_keeps_no_personal_field_and_drops_what_is_not_ours() -> None:
    parsed = parse_events(
        [
            _record(),
            _record(),  # same sg_event_id
            _record(
                sg_event_id="b2", event="bounce", status="5.1.1", reason="550 jeanne@x.test unknown"
            ),
            _record(sg_event_id="b3", event="dropped", reason="Bounced Address"),
            _record(sg_event_id="b4", event="dropped", reason="jeanne@x.test"),
            _record(sg_event_id="b5", notice_id="not-ours"),
            _record(sg_event_id="b6", event="open"),
            "junk",
        ]
    )
    assert [e.event for e in parsed.events] == ["delivered", "bounce", "dropped", "dropped"]
    assert [e.reason_code for e in parsed.events] == [None, "5.1.1", "Bounced Address", "other"]
    assert "jeanne" not in repr(parsed) and "198.51" not in repr(parsed)
    assert parsed.ignored == {
        "duplicate event id": 1,
        "no notice id": 1,
        "event kind not tracked": 1,
        "not an object": 1,
    }


def test_exports_may_be_an_array_or_json_lines() -> None:
    records = [_record(), _record(sg_event_id="x2")]
    as_lines = "\n".join(json.dumps(r) for r in records).encode()
    assert decode_export(json.dumps(records).encode()) == records == decode_export(as_lines)
