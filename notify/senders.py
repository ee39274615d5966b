"""Senders behind one port: the local ``.eml`` outbox and SendGrid's v3 Mail Send API.

A sender never touches the ledger: it turns a batch of rendered notices into one outcome per
notice, and the send loop (``notify.sending``) records them.

SendGrid, by shape (``per_request`` > 1) or one message per notice (``per_request`` = 1).
v3 personalizations share one content, and every notice differs (name, masked hints,
reference). Notices of one shape (the same words, :class:`notify.render.NoticeShape`) do share
their words: a request carries them once, with a substitution tag where each value goes, and
one personalization per notice (its address, its values, its notice id in ``custom_args``), up
to ``per_request`` of them. Each customer receives the very text and HTML the renderer made and
the completeness check passed: a notice goes in a shared request only when it is provably its
shape filled (:func:`notify.render.as_built`), no tag occurs in the words or in any value, and
its address is not already in that request (SendGrid refuses a request naming one address
twice); any other notice is sent alone. At national scale this is what makes sending possible
at all: 5.68 M notices are ~6 000 requests instead of 5.68 M (about 27 notices/s at
concurrency 4 and 150 ms a request, one notice each). The price: one ``X-Message-Id`` per
request rather than per notice (delivery events still name each notice by its id), and a lost
answer leaves the whole request's notices ``ambiguous`` until their events arrive. One notice
per request keeps that window one message wide.

Errors, as urllib reports them through the ``sendgrid`` library:

- ``URLError`` — raised while connecting or writing the request: nothing was processed, the
  notice is retried (bounded), then left ``unsent`` (back to planned) if it still fails.
- ``TimeoutError``, ``ConnectionResetError``, ``http.client.HTTPException`` after the request
  went out — the answer was lost: ``ambiguous``, never re-sent silently.
- 429 — retried after ``X-RateLimit-Reset`` (epoch seconds) or ``Retry-After``; 5xx — retried
  with exponential backoff; both bounded, then ``unsent``.
- 401/403 — the whole run halts (:class:`SendGridAuthError`); nothing else is sent.
- other 4xx (400) — ``failed``, with the names of the fields SendGrid objected to (no values).
  In a shared request, the notices whose personalization SendGrid names are ``failed`` and the
  others are sent again without them; a 400 naming no personalization fails them all.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import Message
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.error import URLError

from core import crash
from core.errors import ConfigError, TerminalError
from notify.outbox import UnsafeHeaderError, write_emls
from notify.render import NoticeShape, RenderedNotice, as_built, escaped_values

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
    "shape_payload",
]

MAX_PERSONALIZATIONS = 1000  # SendGrid's limit per request (design.md §4)
# SendGrid's limit on one personalization's substitutions, in bytes (the API reference's; the
# substitution tags' page gives 50 000).
SUBSTITUTIONS_MAX = 10_000

OutcomeState = Literal["accepted", "drafted", "failed", "ambiguous", "unsent"]

_FIELD = re.compile(r"[A-Za-z0-9_.\[\]-]{1,80}")


class _UnreadableAddress(Exception):
    """The library reads no address in a notice's recipient: it would fail on it later, in
    ``Mail.get()``. Carries the random notice id only."""

    def __init__(self, notice_id: str) -> None:
        super().__init__(notice_id)
        self.notice_id = notice_id


def _to(item: OutgoingNotice) -> Any:
    """The library's ``To`` for the notice's recipient; raises :class:`_UnreadableAddress`."""
    from sendgrid.helpers.mail import To

    to = To(item.to)
    if not to.email:
        raise _UnreadableAddress(item.notice_id)
    return to


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

    @property
    def per_request(self) -> int:
        """The most notices of one shape one request carries: 1 (each notice alone), or more
        (the send loop then hands them over kind by kind, in runs of this many)."""
        ...

    @property
    def min_batch(self) -> int:
        """The fewest notices worth handing to :meth:`send` at once: 1, or (a sender whose
        requests share notices of one shape) enough to fill its requests in flight."""
        ...

    def send(self, batch: Sequence[OutgoingNotice]) -> SendResult: ...


class OutboxSender:
    """Writes each notice to ``<outbox>/<notice_id>.eml``: drafted, not sent (idempotent)."""

    name = "outbox"
    records_before_send = False
    per_request = 1
    min_batch = 1

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


def _without_tracking(mail: Any) -> dict[str, Any]:
    """The request body of ``mail`` (a library ``Mail``) with open, click and subscription
    tracking off: open tracking would add an image and click tracking rewrite links, and a
    notice promises neither."""
    from sendgrid.helpers.mail import (
        ClickTracking,
        OpenTracking,
        SubscriptionTracking,
        TrackingSettings,
    )

    tracking = TrackingSettings()
    tracking.click_tracking = ClickTracking(False, False)
    tracking.open_tracking = OpenTracking(False)
    tracking.subscription_tracking = SubscriptionTracking(False)
    mail.tracking_settings = tracking
    body: dict[str, Any] = mail.get()
    return body


def build_payload(item: OutgoingNotice, sender_email: str, sender_name: str) -> dict[str, Any]:
    """The v3 request body of one notice, through the library's own helpers: tracking off
    (:func:`_without_tracking`), only the random notice id in ``custom_args``."""
    from sendgrid.helpers.mail import CustomArg, Email, Mail

    mail = Mail(
        from_email=Email(sender_email, sender_name),
        to_emails=_to(item),
        subject=item.notice.subject,
        plain_text_content=item.notice.text,
        html_content=item.notice.html,
    )
    mail.custom_arg = CustomArg("notice_id", item.notice_id)
    return _without_tracking(mail)


def _tag_start(token: str) -> str:
    """How every substitution tag of ``token`` begins: words or values holding it go alone."""
    return f"[lw-{token}"


def _tag(token: str, slot: str, html: bool) -> str:
    """The substitution tag of ``slot`` in one request's text (or HTML, whose values are
    escaped): ``token`` is random per sender, so no notice's words or values hold it."""
    return f"{_tag_start(token)}-{slot}-{'h' if html else 't'}]"


def _tagged(parts: tuple[str, ...], token: str, html: bool) -> str:
    """A shape's words (even indexes) with each slot's tag where its value goes."""
    return "".join(p if i % 2 == 0 else _tag(token, p, html) for i, p in enumerate(parts))


def _substitutions(
    shape: NoticeShape, fills: Mapping[str, str], token: str
) -> dict[str, str] | None:
    """One notice's values by tag (escaped for the HTML), or None if any could not be
    substituted exactly (a value holding a tag's start, or more than SendGrid takes)."""
    escaped = escaped_values(fills)
    found = {_tag(token, slot, False): fills[slot] for slot in shape.text[1::2]}
    found.update({_tag(token, slot, True): escaped[slot] for slot in shape.html[1::2]})
    start = _tag_start(token)
    if any(start in value for value in found.values()):
        return None
    if len(json.dumps(found)) > SUBSTITUTIONS_MAX:
        return None
    return found


def shape_payload(
    items: Sequence[OutgoingNotice],
    values: Sequence[Mapping[str, str]],
    sender_email: str,
    sender_name: str,
    token: str,
) -> dict[str, Any]:
    """The v3 request body of notices that share one shape and subject, through the library.

    The shape's words go once, with :func:`_tag` where each value goes; each notice is one
    personalization: its address, its values by tag (``values``, in the order of ``items``:
    :func:`_substitutions` of each), and its random notice id in ``custom_args`` (nothing else
    there). The caller checked that each notice is provably its shape filled. Tracking off
    (:func:`_without_tracking`).
    """
    from sendgrid.helpers.mail import CustomArg, Email, Mail, Personalization, Substitution

    first = items[0].notice
    built = as_built(first)
    assert built is not None  # the caller shares only notices built by the renderer
    shape = built[0]
    mail = Mail(
        from_email=Email(sender_email, sender_name),
        subject=first.subject,
        plain_text_content=_tagged(shape.text, token, False),
        html_content=_tagged(shape.html, token, True),
    )
    for n, (item, substitutions) in enumerate(zip(items, values, strict=True)):
        person = Personalization()
        person.add_to(_to(item))
        for key, value in substitutions.items():
            person.add_substitution(Substitution(key, value))
        person.add_custom_arg(CustomArg("notice_id", item.notice_id))
        mail.add_personalization(person, index=n)  # in order: the default index 0 prepends
    return _without_tracking(mail)


def _address_key(to: str) -> str:
    """The address SendGrid compares for duplicates within a request (case aside). Ledger
    addresses are plain; only a display-name form is parsed (parseaddr costs ~50 µs)."""
    if "<" not in to and '"' not in to and "(" not in to:
        return to.strip().lower()
    return parseaddr(to)[1].lower() or to.lower()


def _requests(groups: Sequence[Sequence[OutgoingNotice]], size: int) -> list[list[OutgoingNotice]]:
    """Each group cut into requests of at most ``size`` notices, in order, no address twice in
    one request (a repeated address waits for the next request)."""
    out: list[list[OutgoingNotice]] = []
    for group in groups:
        pending = list(group)
        while pending:
            request: list[OutgoingNotice] = []
            seen: set[str] = set()
            later: list[OutgoingNotice] = []
            for item in pending:
                key = _address_key(item.to)
                if len(request) < size and key not in seen:
                    request.append(item)
                    seen.add(key)
                else:
                    later.append(item)
            out.append(request)
            pending = later
    return out


_PERSONALIZATION = re.compile(r"personalizations\.(\d+)((?:\.[A-Za-z0-9_\[\]-]+)*)")


def _named_personalizations(body: Any, count: int) -> dict[int, str]:
    """The personalizations (by index) SendGrid's 400 names, each with its fields' names
    (the index taken out: it means nothing outside the request); never the messages."""
    try:
        errors = json.loads(body)["errors"]
        fields = [str(e.get("field")) for e in errors if isinstance(e, dict)]
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}
    named: dict[int, set[str]] = {}
    for name in fields:
        found = _PERSONALIZATION.fullmatch(name)
        if found is not None and int(found[1]) < count:
            named.setdefault(int(found[1]), set()).add(f"personalizations{found[2]}")
    return {
        i: ", ".join(sorted(n for n in names if _FIELD.fullmatch(n))) for i, names in named.items()
    }


def _all(items: Sequence[OutgoingNotice], state: OutcomeState, **kw: Any) -> list[Outcome]:
    return [Outcome(item.notice_id, state, **kw) for item in items]


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
    # Each shared notice's substitutions by notice id, made once when the batch is planned.
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    halted: threading.Event = field(default_factory=threading.Event)
    halt: TerminalError | None = None
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class SendGridSender:
    """SendGrid's v3 Mail Send through the official library: notices of one shape share
    requests of up to ``per_request`` personalizations, or one request each (``per_request=1``).

    ``sleep`` and ``clock`` are injected so tests run retries without waiting; ``tag_token``
    fixes the substitution tags' random part (tests).
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
        per_request: int = 1,
        max_attempts: int = 5,
        max_wait_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        tag_token: str | None = None,
    ) -> None:
        if not api_key:
            raise ConfigError("no SendGrid API key")
        if not 1 <= per_request <= MAX_PERSONALIZATIONS:
            raise ConfigError(f"notices per SendGrid request: 1 to {MAX_PERSONALIZATIONS}")
        self._api_key = api_key
        self.host = host
        self.timeout_s = timeout_s
        self.sender_email = sender_email
        self.sender_name = sender_name
        self.concurrency = max(1, concurrency)
        self.per_request = per_request
        self._token = tag_token or secrets.token_hex(6)
        # Shared requests: a batch fills every request in flight (one shape per batch would
        # otherwise leave one request at a time).
        self.min_batch = 1 if per_request == 1 else per_request * self.concurrency
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
        requests = self._plan(batch, run.values)
        if self.concurrency == 1 or len(requests) <= 1:
            answers = [self._send_request(items, run) for items in requests]
        else:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                answers = list(pool.map(lambda items: self._send_request(items, run), requests))
        by_notice = {o.notice_id: o for outcomes in answers for o in outcomes}
        outcomes = tuple(by_notice[item.notice_id] for item in batch)
        return SendResult(outcomes, halt=run.halt, retries=run.retries)

    def _plan(
        self, batch: Sequence[OutgoingNotice], values: dict[str, dict[str, str]]
    ) -> list[list[OutgoingNotice]]:
        """The batch as requests: notices sharing a shape and subject together (in batch
        order, at most ``per_request`` a request), every other notice alone. Puts each shared
        notice's substitutions in ``values``."""
        if self.per_request == 1:
            return [[item] for item in batch]
        alone: list[list[OutgoingNotice]] = []
        groups: dict[tuple[NoticeShape, str], list[OutgoingNotice]] = {}
        clean: dict[tuple[NoticeShape, str], bool] = {}  # no tag in the words nor the subject
        start = _tag_start(self._token)
        for item in batch:
            built = as_built(item.notice)
            found = None if built is None else _substitutions(*built, self._token)
            if built is None or found is None:
                alone.append([item])
                continue
            key = (built[0], item.notice.subject)
            if key not in clean:
                words = (*built[0].text[0::2], *built[0].html[0::2], item.notice.subject)
                clean[key] = not any(start in w for w in words)
            if not clean[key]:
                alone.append([item])
                continue
            values[item.notice_id] = found
            groups.setdefault(key, []).append(item)
        return alone + _requests(list(groups.values()), self.per_request)

    def _payload(self, items: Sequence[OutgoingNotice], run: _Run) -> dict[str, Any]:
        if len(items) == 1:
            return build_payload(items[0], self.sender_email, self.sender_name)
        values = [run.values[item.notice_id] for item in items]
        return shape_payload(items, values, self.sender_email, self.sender_name, self._token)

    def _retry(self, run: _Run, attempt: int, wait: float) -> bool:
        if attempt + 1 >= self.max_attempts:
            return False
        with run.lock:
            run.retries += 1
        self._sleep(min(wait, self.max_wait_s))
        return True

    def _send_request(self, items: list[OutgoingNotice], run: _Run) -> list[Outcome]:
        """One request for ``items`` (retried as SendGrid advises), an outcome for each; after
        a 400 naming some of them, again without those."""
        from python_http_client.exceptions import HTTPError

        done: list[Outcome] = []
        while items:
            try:
                payload = self._payload(items, run)
            except _UnreadableAddress as exc:  # that notice fails; the others go on
                done.append(Outcome(exc.notice_id, "failed", reason="address not accepted"))
                items = [item for item in items if item.notice_id != exc.notice_id]
                continue
            reason = "not tried"
            for attempt in range(self.max_attempts):
                if run.halted.is_set():
                    return done + _all(items, "unsent", reason="run halted")
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
                        return done + _all(items, "unsent", reason=f"http {status}")
                    if status == 429 or status >= 500:
                        reason = f"http {status} after {attempt + 1} attempts"
                        wait = retry_wait(
                            exc.headers, self._clock(), attempt, cap_s=self.max_wait_s
                        )
                        if self._retry(run, attempt, wait):
                            continue
                        return done + _all(items, "unsent", reason=reason)
                    named = _named_personalizations(exc.body, len(items)) if len(items) > 1 else {}
                    if not named:
                        fields = _error_fields(exc.body)
                        return done + _all(items, "failed", reason=f"http {status}: {fields}")
                    done += [
                        Outcome(items[i].notice_id, "failed", reason=f"http {status}: {named[i]}")
                        for i in sorted(named)
                    ]
                    items = [item for i, item in enumerate(items) if i not in named]
                    break  # the others, in a request of their own
                except URLError as exc:
                    # Raised before the request was fully written: SendGrid processed nothing.
                    reason = f"connection failed ({type(exc.reason).__name__})"
                    if self._retry(run, attempt, min(self.max_wait_s, 0.5 * 2.0**attempt)):
                        continue
                    return done + _all(items, "unsent", reason=reason)
                except (OSError, http.client.HTTPException) as exc:
                    # The request went out and its answer was lost: it may have been accepted.
                    return done + _all(
                        items, "ambiguous", reason=f"no answer ({type(exc).__name__})"
                    )
                else:
                    crash.point("after-api-answer")
                    message_id = response.headers.get("X-Message-Id") if response.headers else None
                    if response.status_code not in (200, 202):
                        return done + _all(
                            items, "ambiguous", reason=f"http {response.status_code}"
                        )
                    return done + _all(items, "accepted", message_id=message_id)
            else:
                return done + _all(items, "unsent", reason=reason)
        return done
