"""Sending and delivery proof as plain steps: each builds what it needs from settings, opens the store, calls notify."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from core.errors import ConfigError
from core.settings import Settings
from flows.context import HeldStore, open_store
from matching.breaches import get_breach
from matching.ledger import delivery_counts
from matching.store import Store
from notify.events_server import EventsServer
from notify.fake_sendgrid import FakeSendGrid
from notify.plan import DraftReport, breach_facts
from notify.proof import EventsReport, record_events, write_fallback_csv
from notify.senders import OutboxSender, Sender, SendGridSender
from notify.sending import Progress, SendReport, send_notices
from notify.webhook import DeliveryEvent, decode_export, load_public_key, parse_events
from schemas.models import BreachFacts

__all__ = [
    "build_sender",
    "draft_to_outbox",
    "events_server",
    "fake_events_round",
    "import_events",
    "notice_counts",
    "send_customer_notices",
    "write_fallback",
]


def _facts(
    settings: Settings, store: Store, breach_id: str, detected_at: datetime | None
) -> BreachFacts:
    record = get_breach(store, breach_id)
    detected = detected_at or record.effective_aware_at or record.created_at
    description = {k: str(v) for k, v in record.description.items() if isinstance(v, str)}
    return breach_facts(settings, breach_id, detected, description)


def build_sender(settings: Settings, *, outbox: Path, fake: FakeSendGrid | None = None) -> Sender:
    """SendGrid when a key is set (or the in-process fake is asked for), else the outbox."""
    if fake is not None:
        key, host = fake.api_key, fake.url
    elif settings.sendgrid_api_key is not None:
        key, host = settings.sendgrid_api_key.get_secret_value(), settings.sendgrid_host
    else:
        return OutboxSender(outbox, settings.sender_email)
    return SendGridSender(
        key,
        host=host,
        timeout_s=settings.sendgrid_timeout_s,
        sender_email=settings.sender_email,
        sender_name=settings.operator_name,
        concurrency=settings.sendgrid_concurrency,
        per_request=settings.sendgrid_per_request,
    )


def send_customer_notices(
    settings: Settings,
    breach_id: str,
    sender: Sender,
    *,
    dry_run: bool = False,
    limit: int | None = None,
    resend_ambiguous: bool = False,
    progress: Progress | None = None,
) -> SendReport:
    with open_store(settings) as store:
        return send_notices(
            store,
            breach_id,
            _facts(settings, store, breach_id, None),
            sender,
            batch_size=settings.notify_batch_size,
            limit=limit,
            dry_run=dry_run,
            resend_ambiguous=resend_ambiguous,
            require_confirmation=True,
            progress=progress,
        )


def draft_to_outbox(
    settings: Settings, breach_id: str, outbox: Path, *, detected_at: datetime | None = None
) -> DraftReport:
    """The breach-response flow's drafting: every e-mail notice into the outbox, nothing sent.

    Allowed for a suspected breach: drafting is not notifying.
    """
    with open_store(settings) as store:
        report = send_notices(
            store,
            breach_id,
            _facts(settings, store, breach_id, detected_at or datetime.now(UTC)),
            OutboxSender(outbox, settings.sender_email),
            batch_size=settings.notify_batch_size,
            require_confirmation=False,
        )
        counts = delivery_counts(store, breach_id)
    return DraftReport(
        planned=report.planned, drafted=report.drafted, without_email=counts["post"], outbox=outbox
    )


def notice_counts(settings: Settings, breach_id: str) -> dict[str, int]:
    with open_store(settings, read_only=True) as store:
        return delivery_counts(store, breach_id)


def _counts(report: EventsReport) -> dict[str, int]:
    return {"received": report.received, "stored": report.stored, "changed": report.changed}


def _record(settings: Settings, events: tuple[DeliveryEvent, ...]) -> dict[str, int]:
    with open_store(settings) as store:
        return _counts(record_events(store, events))


def import_events(settings: Settings, path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """An exported batch (JSON array or JSON lines): counts, and ignored records by reason."""
    parsed = parse_events(decode_export(path.read_bytes()))
    return _record(settings, parsed.events), parsed.ignored


# How long a webhook call waits for a store another command holds before its 503: a send holds
# it for minutes, and SendGrid delivers a refused call again later; a longer wait would only
# hold the call's connection, and every call queued behind the receiver's lock.
EVENTS_STORE_WAIT_S = 2.0


def events_server(
    settings: Settings, *, host: str, port: int, public_key: str | None = None
) -> EventsServer:
    """The webhook receiver, keeping the store open between calls (:class:`HeldStore`).

    It gives the store back as soon as another leakwatch process waits for it, after
    ``LEAKWATCH_EVENTS_HOLD_IDLE_S`` without a call, and when it stops.
    """
    key_text = public_key or settings.sendgrid_webhook_public_key
    if not key_text:
        raise ConfigError(
            "set LEAKWATCH_SENDGRID_WEBHOOK_PUBLIC_KEY to the Event Webhook verification key "
            "(SendGrid: Settings → Mail Settings → Signed Event Webhook)"
        )
    waiting = {"store_wait_s": min(settings.store_wait_s, EVENTS_STORE_WAIT_S)}
    held = HeldStore(settings.model_copy(update=waiting), idle_s=settings.events_hold_idle_s)

    def apply(events: tuple[DeliveryEvent, ...]) -> dict[str, int]:
        with held.use() as store:
            return _counts(record_events(store, events))

    return EventsServer(load_public_key(key_text), apply, host=host, port=port, holding=held)


def fake_events_round(settings: Settings, fake: FakeSendGrid) -> int:
    """Demo: the fake posts signed events for what it accepted to a local receiver."""
    with events_server(settings, host="127.0.0.1", port=0, public_key=fake.public_key_b64) as srv:
        return fake.post_events(srv.url, fake.events())


def write_fallback(settings: Settings, breach_id: str, path: Path) -> tuple[int, dict[str, int]]:
    with open_store(settings, read_only=True) as store:
        get_breach(store, breach_id)
        return write_fallback_csv(store, breach_id, path), delivery_counts(store, breach_id)
