"""SendGrid's signed Event Webhook: signature and timestamp checks, and events reduced to non-personal facts.

Pure: bytes and a clock in, values out. SendGrid signs ``timestamp + raw body`` with ECDSA
P-256 / SHA-256 and sends the base64 DER signature and the timestamp in two headers; the public
key is the base64 DER (SubjectPublicKeyInfo) string shown in SendGrid's settings.

An event carries the recipient's address, IP, user agent and the receiving server's free-text
answer: none of that survives parsing. What is kept: ``sg_event_id``, our ``notice_id`` custom
argument, the event kind, its time, SendGrid's message id and an SMTP status code (or a
SendGrid drop reason from a closed list).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from core.errors import ConfigError, TerminalError

__all__ = [
    "EVENT_KINDS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WINDOW_S",
    "DeliveryEvent",
    "ParsedEvents",
    "WebhookRejectedError",
    "decode_body",
    "decode_export",
    "load_public_key",
    "parse_events",
    "verify",
]

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
WINDOW_S = 300.0  # a signed call older or newer than this is a replay or a wrong clock
EVENT_KINDS = frozenset({"processed", "deferred", "delivered", "bounce", "blocked", "dropped"})

_NOTICE_ID = re.compile(r"[0-9a-f]{32}")
_TOKEN = re.compile(r"[A-Za-z0-9_.=+/-]{1,200}")
_SMTP_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
# SendGrid's documented reasons for a drop: nothing else is kept from the free-text field.
_DROP_REASONS = frozenset(
    {
        "Bounced Address",
        "Unsubscribed Address",
        "Spam Reporting Address",
        "Invalid",
        "Invalid SMTPAPI header",
        "Recipient List over Package Quota",
        "Spam Content (if spam checker app enabled)",
    }
)


class WebhookRejectedError(TerminalError):
    """A webhook call we refuse: unsigned, badly signed, stale, or not an event batch."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"event webhook call refused: {reason}")


@dataclass(frozen=True)
class DeliveryEvent:
    """One delivery event of one of our notices, non-personal fields only."""

    sg_event_id: str
    notice_id: str
    event: str
    ts: datetime
    sg_message_id: str | None
    reason_code: str | None


@dataclass(frozen=True)
class ParsedEvents:
    events: tuple[DeliveryEvent, ...]
    ignored: dict[str, int] = field(default_factory=dict)  # reason → count


def load_public_key(b64_der: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key (base64 DER); a :class:`ConfigError` if it is not P-256."""
    try:
        key = load_der_public_key(base64.b64decode(b64_der.strip(), validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise ConfigError(
            "LEAKWATCH_SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER public key"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigError("LEAKWATCH_SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA P-256 key")
    return key


def verify(
    key: ec.EllipticCurvePublicKey,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    *,
    now: float,
    window_s: float = WINDOW_S,
) -> None:
    """Raise :class:`WebhookRejectedError` unless ``body`` is signed by ``key`` and fresh."""
    if not signature or not timestamp:
        raise WebhookRejectedError("signature or timestamp header missing")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise WebhookRejectedError("malformed timestamp")
    if abs(now - int(timestamp)) > window_s:
        raise WebhookRejectedError("timestamp outside the accepted window (stale or replayed)")
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise WebhookRejectedError("bad signature") from None


def decode_body(body: bytes) -> list[Any]:
    """A webhook body: a JSON array of event objects."""
    try:
        records = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejectedError("body is not JSON") from None
    if not isinstance(records, list):
        raise WebhookRejectedError("body is not a JSON array")
    return records


def decode_export(data: bytes) -> list[Any]:
    """An exported batch: a JSON array, or one JSON object per line."""
    text = data.decode("utf-8-sig")
    if text.lstrip().startswith("["):
        return decode_body(text.encode("utf-8"))
    records: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                raise WebhookRejectedError(f"line {number} is not JSON") from None
    return records


def _reason_code(record: dict[str, Any], event: str) -> str | None:
    if event == "dropped":
        reason = record.get("reason")
        return reason if reason in _DROP_REASONS else "other"
    status = record.get("status")
    if isinstance(status, str) and _SMTP_STATUS.fullmatch(status.strip()):
        return status.strip()
    return None


def _one(record: Any) -> DeliveryEvent | str:
    """The event, or why it is ignored."""
    if not isinstance(record, dict):
        return "not an object"
    event = record.get("event")
    if event not in EVENT_KINDS:
        return "event kind not tracked"
    notice_id = record.get("notice_id")
    if not isinstance(notice_id, str) or not _NOTICE_ID.fullmatch(notice_id):
        return "no notice id"
    event_id = record.get("sg_event_id")
    if not isinstance(event_id, str) or not _TOKEN.fullmatch(event_id):
        return "no event id"
    stamp = record.get("timestamp")
    if not isinstance(stamp, int) or isinstance(stamp, bool) or not 0 < stamp < 2**37:
        return "bad timestamp"
    message_id = record.get("sg_message_id")
    return DeliveryEvent(
        sg_event_id=event_id,
        notice_id=notice_id,
        event=str(event),
        ts=datetime.fromtimestamp(stamp, UTC),
        sg_message_id=message_id
        if isinstance(message_id, str) and _TOKEN.fullmatch(message_id)
        else None,
        reason_code=_reason_code(record, str(event)),
    )


def parse_events(records: Iterable[Any]) -> ParsedEvents:
    """Our notices' delivery events, deduplicated by ``sg_event_id``; the rest counted by reason."""
    kept: dict[str, DeliveryEvent] = {}
    ignored: Counter[str] = Counter()
    for record in records:
        parsed = _one(record)
        if isinstance(parsed, str):
            ignored[parsed] += 1
        elif parsed.sg_event_id in kept:
            ignored["duplicate event id"] += 1
        else:
            kept[parsed.sg_event_id] = parsed
    return ParsedEvents(tuple(kept.values()), dict(ignored))
