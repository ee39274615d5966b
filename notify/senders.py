"""Senders behind one port: the local ``.eml`` outbox and SendGrid's v3 Mail Send API.

A sender never touches the ledger: it turns a batch of rendered notices into one outcome per
notice, and the send loop (``notify.sending``) records them.

SendGrid, one message per notice. v3 personalizations share one content, and every notice
differs (name, masked hints, reference). Substitutions could batch notices of one shape, but one
request per notice gives one ``X-Message-Id`` per notice (exact proof), and a 400, a lost
answer or a crash concerns one notice instead of a thousand: the ambiguity window of
exactly-once stays one message wide. Throughput comes from a few concurrent requests instead.

Errors, as urllib reports them through the ``sendgrid`` library:

- ``URLError`` — raised while connecting or writing the request: nothing was processed, the
  notice is retried (bounded), then left ``unsent`` (back to planned) if it still fails.
- ``TimeoutError``, ``ConnectionResetError``, ``http.client.HTTPException`` after the request
  went out — the answer was lost: ``ambiguous``, never re-sent silently.
- 429 — retried after ``X-RateLimit-Reset`` (epoch seconds) or ``Retry-After``; 5xx — retried
  with exponential backoff; both bounded, then ``unsent``.
- 401/403 — the whole run halts (:class:`SendGridAuthError`); nothing else is sent.
- other 4xx (400) — ``failed``, with the names of the fields SendGrid objected to (no values).
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.error import URLError

from core import crash
from core.errors import ConfigError, TerminalError
from notify.outbox import UnsafeHeaderError, write_emls
from notify.render import RenderedNotice

__all__ = [
    "MAX_PERSONALIZATIONS",
    "OutboxSender",
    "Outcome",
    "OutcomeState",
    "OutgoingNotice",
    "SendGridAuthError",
    "SendGridSender",
    "SendResult",
    "Sender",
    "build_payload",
    "retry_wait",
]

MAX_PERSONALIZATIONS = 1000  # SendGrid's limit per request (design.md §4)

OutcomeState = Literal["accepted", "drafted", "failed", "ambiguous", "unsent"]

_FIELD = re.compile(r"[A-Za-z0-9_.\[\]-]{1,80}")


class SendGridAuthError(ConfigError):
    """SendGrid refused the API key (401/403): the run halts. The key is never shown."""


@dataclass(frozen=True)
class OutgoingNotice:
    """One rendered notice and its recipient; the notice id is random and non-personal."""

    notice_id: str
    to: str
    notice: RenderedNotice


@dataclass(frozen=True)
class Outcome:
    """What happened to one notice; ``reason`` is from a closed vocabulary, never a value."""

    notice_id: str
    state: OutcomeState
    message_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class SendResult:
    outcomes: tuple[Outcome, ...]
    halt: TerminalError | None = None  # raised by the send loop once the outcomes are recorded
    retries: int = 0


class Sender(Protocol):
    """A way of getting notices to people."""

    @property
    def name(self) -> str: ...

    @property
    def records_before_send(self) -> bool:
        """True when a send cannot be repeated harmlessly (mark ``sending`` first)."""
        ...

    def send(self, batch: Sequence[OutgoingNotice]) -> SendResult: ...


class OutboxSender:
    """Writes each notice to ``<outbox>/<notice_id>.eml``: drafted, not sent (idempotent)."""

    name = "outbox"
    records_before_send = False

    def __init__(self, outbox: Path, sender_email: str) -> None:
        self.outbox = outbox
        self.sender_email = sender_email

    def send(self, batch: Sequence[OutgoingNotice]) -> SendResult:
        """Write the whole batch, durable before returning: ``drafted`` is never premature."""
        answers = write_emls(
            self.outbox, [(item.notice, item.to) for item in batch], sender=self.sender_email
        )
        outcomes: list[Outcome] = []
        for item, answer in zip(batch, answers, strict=True):
            if isinstance(answer, UnsafeHeaderError):
                outcomes.append(Outcome(item.notice_id, "failed", reason=answer.reason))
            else:
                outcomes.append(Outcome(item.notice_id, "drafted"))
        return SendResult(tuple(outcomes))


def build_payload(item: OutgoingNotice, sender_email: str, sender_name: str) -> dict[str, Any]:
    """The v3 request body of one notice, through the library's own helpers.

    Tracking is off: open tracking would add an image and click tracking rewrite links, and a
    notice promises neither. Only the random notice id goes in ``custom_args``.
    """
    from sendgrid.helpers.mail import (
        ClickTracking,
        CustomArg,
        Email,
        Mail,
        OpenTracking,
        SubscriptionTracking,
        To,
        TrackingSettings,
    )

    mail = Mail(
        from_email=Email(sender_email, sender_name),
        to_emails=To(item.to),
        subject=item.notice.subject,
        plain_text_content=item.notice.text,
        html_content=item.notice.html,
    )
    mail.custom_arg = CustomArg("notice_id", item.notice_id)
    tracking = TrackingSettings()
    tracking.click_tracking = ClickTracking(False, False)
    tracking.open_tracking = OpenTracking(False)
    tracking.subscription_tracking = SubscriptionTracking(False)
    mail.tracking_settings = tracking
    body: dict[str, Any] = mail.get()
    return body


def _header(headers: Any, name: str) -> str | None:
    if isinstance(headers, Message | dict):
        value = headers.get(name)
        return str(value) if value is not None else None
    return None


def retry_wait(headers: Any, now: float, attempt: int, *, cap_s: float = 60.0) -> float:
    """Seconds to wait before trying again: the server's word first, else exponential backoff."""
    reset = _header(headers, "X-RateLimit-Reset")
    if reset and reset.strip().isdigit():
        return float(min(cap_s, max(0.0, int(reset) - now)))
    after = _header(headers, "Retry-After")
    if after:
        try:
            return min(cap_s, max(0.0, float(after)))
        except ValueError:
            pass
    return min(cap_s, 0.5 * 2.0**attempt)


def _error_fields(body: Any) -> str:
    """The ``field`` names of SendGrid's error list, never the messages (they may quote values)."""
    try:
        errors = json.loads(body)["errors"]
        names = sorted({str(e.get("field")) for e in errors if isinstance(e, dict)})
    except (ValueError, TypeError, KeyError, AttributeError):
        return "unreadable error body"
    kept = [n for n in names if _FIELD.fullmatch(n)]
    return ", ".join(kept) if kept else "no field named"


@dataclass
class _Run:
    halted: threading.Event = field(default_factory=threading.Event)
    halt: TerminalError | None = None
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class SendGridSender:
    """SendGrid's v3 Mail Send through the official library, one message per notice.

    ``sleep`` and ``clock`` are injected so tests run retries without waiting.
    """

    name = "sendgrid"
    records_before_send = True

    def __init__(
        self,
        api_key: str,
        *,
        host: str,
        timeout_s: float,
        sender_email: str,
        sender_name: str = "",
        concurrency: int = 4,
        max_attempts: int = 5,
        max_wait_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not api_key:
            raise ConfigError("no SendGrid API key")
        self._api_key = api_key
        self.host = host
        self.timeout_s = timeout_s
        self.sender_email = sender_email
        self.sender_name = sender_name
        self.concurrency = max(1, concurrency)
        self.max_attempts = max(1, max_attempts)
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._clock = clock
        self._local = threading.local()
        # python_http_client logs payloads and the Authorization header at DEBUG level: never.
        logging.getLogger("python_http_client").setLevel(logging.INFO)

    def __repr__(self) -> str:  # never the key
        return f"SendGridSender(host={self.host!r})"

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            from sendgrid import SendGridAPIClient

            client = SendGridAPIClient(self._api_key, host=self.host)
            # The library has no timeout by default; every request through it gets this one.
            client.client.timeout = self.timeout_s
            self._local.client = client
        return client

    def send(self, batch: Sequence[OutgoingNotice]) -> SendResult:
        run = _Run()
        if self.concurrency == 1 or len(batch) <= 1:
            outcomes = [self._send_one(item, run) for item in batch]
        else:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                outcomes = list(pool.map(lambda item: self._send_one(item, run), batch))
        return SendResult(tuple(outcomes), halt=run.halt, retries=run.retries)

    def _retry(self, run: _Run, attempt: int, wait: float) -> bool:
        if attempt + 1 >= self.max_attempts:
            return False
        with run.lock:
            run.retries += 1
        self._sleep(min(wait, self.max_wait_s))
        return True

    def _send_one(self, item: OutgoingNotice, run: _Run) -> Outcome:
        from python_http_client.exceptions import HTTPError

        payload = build_payload(item, self.sender_email, self.sender_name)
        reason = "not tried"
        for attempt in range(self.max_attempts):
            if run.halted.is_set():
                return Outcome(item.notice_id, "unsent", reason="run halted")
            try:
                response = self._client().send(payload)
            except HTTPError as exc:
                crash.point("after-api-answer")
                status = int(exc.status_code)
                if status in (401, 403):
                    with run.lock:
                        run.halt = SendGridAuthError(
                            f"SendGrid refused the API key (HTTP {status}): check "
                            "LEAKWATCH_SENDGRID_API_KEY and its Mail Send permission; "
                            "the run stopped, nothing more was sent"
                        )
                    run.halted.set()
                    return Outcome(item.notice_id, "unsent", reason=f"http {status}")
                if status == 429 or status >= 500:
                    reason = f"http {status} after {attempt + 1} attempts"
                    wait = retry_wait(exc.headers, self._clock(), attempt, cap_s=self.max_wait_s)
                    if self._retry(run, attempt, wait):
                        continue
                    return Outcome(item.notice_id, "unsent", reason=reason)
                return Outcome(
                    item.notice_id,
                    "failed",
                    reason=f"http {status}: {_error_fields(exc.body)}",
                )
            except URLError as exc:
                # Raised before the request was fully written: SendGrid processed nothing.
                reason = f"connection failed ({type(exc.reason).__name__})"
                if self._retry(run, attempt, min(self.max_wait_s, 0.5 * 2.0**attempt)):
                    continue
                return Outcome(item.notice_id, "unsent", reason=reason)
            except (OSError, http.client.HTTPException) as exc:
                # The request went out and its answer was lost: it may have been accepted.
                return Outcome(
                    item.notice_id, "ambiguous", reason=f"no answer ({type(exc).__name__})"
                )
            crash.point("after-api-answer")
            message_id = response.headers.get("X-Message-Id") if response.headers else None
            if response.status_code not in (200, 202):
                return Outcome(item.notice_id, "ambiguous", reason=f"http {response.status_code}")
            return Outcome(item.notice_id, "accepted", message_id=message_id)
        return Outcome(item.notice_id, "unsent", reason=reason)
