"""A fake SendGrid on loopback: ``POST /v3/mail/send`` as SendGrid answers it, scripted faults, signed events.

For tests and the demo; nothing leaves the machine. It validates payloads as v3 does (the
rules we rely on), answers 202 with an ``X-Message-Id``, 400 with SendGrid's error list, 401 for
a wrong key, and, from a queue of scripted faults, 429 with ``X-RateLimit-Reset``, 5xx, a stall
(the message is accepted, the answer comes too late for the client) or a dropped connection
after accepting. It makes each recipient's message as SendGrid would, its personalization's
substitutions replaced in the subject and every content (:meth:`FakeSendGrid.delivered`). It records every request and every accepted message, and posts signed Event
Webhook batches (its own ECDSA P-256 key) — repeated, shuffled or re-identified on demand.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.serving import QuietHTTPServer

__all__ = ["Delivered", "FakeSendGrid", "Fault", "Recorded", "SentMessage", "validate_mail"]

Outcome = Literal["delivered", "bounce", "dropped", "deferred", "none"]
_MAX_BODY = 30 * 1024 * 1024  # SendGrid's limit on a request


@dataclass(frozen=True)
class Fault:
    """One scripted answer, used by the next request instead of the normal one."""

    kind: Literal["status", "stall", "close"]
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0

    @classmethod
    def rate_limited(cls, reset_epoch: int) -> Fault:
        return cls("status", 429, (("X-RateLimit-Reset", str(reset_epoch)),))

    @classmethod
    def retry_after(cls, seconds: int) -> Fault:
        return cls("status", 429, (("Retry-After", str(seconds)),))

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls("status", status)

    @classmethod
    def forbidden(cls) -> Fault:
        return cls("status", 403)

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """Accept the message, then answer only after ``seconds`` (or :meth:`release`)."""
        return cls("stall", seconds=seconds)

    @classmethod
    def close(cls) -> Fault:
        """Accept the message, then drop the connection without an answer."""
        return cls("close")


@dataclass(frozen=True)
class Recorded:
    """One request as received (the Authorization header left out)."""

    path: str
    body: bytes
    status: int


@dataclass(frozen=True)
class SentMessage:
    message_id: str
    notice_id: str | None
    to: str
    accepted_at: int


@dataclass(frozen=True)
class Delivered:
    """What one recipient of an accepted request receives: the subject and each content
    (by type) with their personalization's substitutions made."""

    notice_id: str | None
    to: str
    subject: str
    content: dict[str, str]


@dataclass
class _State:
    requests: list[Recorded] = field(default_factory=list)
    sent: list[SentMessage] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)


def _error(message: str, field_name: str | None) -> dict[str, Any]:
    return {"message": message, "field": field_name, "help": None}


def _has_one_at(value: Any) -> bool:
    return isinstance(value, str) and value.count("@") == 1 and len(value) <= 320


def _check_args(errors: list[dict[str, Any]], args: Any, where: str) -> None:
    if args is None:
        return
    if not isinstance(args, dict) or not all(isinstance(v, str) for v in args.values()):
        errors.append(_error("custom_args values must be strings", where))
    elif len(json.dumps(args)) > 10_000:
        errors.append(_error("custom_args larger than 10000 bytes", where))


def _check_substitutions(errors: list[dict[str, Any]], subs: Any, where: str) -> None:
    if subs is None:
        return
    if not isinstance(subs, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in subs.items()
    ):
        errors.append(_error("substitutions keys and values must be strings", where))
    elif len(json.dumps(subs)) > 10_000:
        errors.append(_error("substitutions larger than 10000 bytes", where))


def _substituted(value: str, subs: dict[str, str]) -> str:
    """Each tag replaced by its value, as SendGrid does (one pass per tag, in order)."""
    for tag, replacement in subs.items():
        value = value.replace(tag, replacement)
    return value


def validate_mail(body: Any) -> list[dict[str, Any]]:
    """SendGrid's v3 ``mail/send`` rules that matter to us; an empty list means valid."""
    errors: list[dict[str, Any]] = []
    if not isinstance(body, dict):
        return [_error("The request body must be a JSON object", None)]
    sender = body.get("from")
    if not isinstance(sender, dict) or not _has_one_at(sender.get("email")):
        errors.append(_error("The from object must be provided", "from.email"))
    template = body.get("template_id")
    persons = body.get("personalizations")
    if not isinstance(persons, list) or not persons:
        errors.append(_error("The personalizations field is required", "personalizations"))
        persons = []
    if len(persons) > 1000:
        errors.append(_error("at most 1000 personalizations", "personalizations"))
    seen: set[str] = set()
    for i, p in enumerate(persons):
        to = p.get("to") if isinstance(p, dict) else None
        if not isinstance(to, list) or not to:
            errors.append(_error("The to array is required", f"personalizations.{i}.to"))
            continue
        for j, recipient in enumerate(to):
            if not isinstance(recipient, dict) or not _has_one_at(recipient.get("email")):
                errors.append(
                    _error(
                        "Does not contain a valid address.", f"personalizations.{i}.to.{j}.email"
                    )
                )
                continue
            address = recipient["email"].lower()
            if address in seen:
                errors.append(
                    _error(
                        "Each unique email address in the personalizations array should only "
                        "be included once.",
                        f"personalizations.{i}.to.{j}.email",
                    )
                )
            seen.add(address)
        if not template and not body.get("subject") and not p.get("subject"):
            errors.append(_error("The subject is required", f"personalizations.{i}.subject"))
        _check_args(errors, p.get("custom_args"), f"personalizations.{i}.custom_args")
        _check_substitutions(errors, p.get("substitutions"), f"personalizations.{i}.substitutions")
    content = body.get("content")
    if not template:
        if not isinstance(content, list) or not content:
            errors.append(_error("The content is required", "content"))
            content = []
        types = [c.get("type") if isinstance(c, dict) else None for c in content]
        for k, c in enumerate(content):
            if not isinstance(c, dict) or not isinstance(c.get("value"), str) or not c["value"]:
                errors.append(_error("content value must be a non-empty string", f"content.{k}"))
        both = "text/html" in types and "text/plain" in types
        if both and types.index("text/plain") > types.index("text/html"):
            errors.append(_error("text/plain must come before text/html", "content"))
    _check_args(errors, body.get("custom_args"), "custom_args")
    categories = body.get("categories")
    if categories is not None and (
        not isinstance(categories, list)
        or len(categories) > 10
        or not all(isinstance(c, str) and len(c) <= 255 for c in categories)
    ):
        errors.append(_error("at most 10 categories of 255 characters", "categories"))
    return errors


def _message_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")


class FakeSendGrid:
    """Start with :meth:`start` (or as a context manager); ``url`` is the API host."""

    def __init__(
        self, api_key: str | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.api_key = api_key or "SG.fake-" + secrets.token_urlsafe(24)
        self._clock = clock
        self._state = _State()
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.outcomes: dict[
            str, Outcome
        ] = {}  # notice id → what its events say (default delivered)
        self._server: QuietHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeSendGrid:
        handler = _handler(self)
        server = QuietHTTPServer(("127.0.0.1", 0), handler, label="fake SendGrid")
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._state.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSendGrid:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- scripting and inspection ------------------------------------------------------------
    def script(self, *faults: Fault) -> None:
        with self._state.lock:
            self._state.faults.extend(faults)

    def release(self) -> None:
        """Let stalled answers go (their clients have given up by then)."""
        self._state.release.set()

    @property
    def requests(self) -> list[Recorded]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def sent(self) -> list[SentMessage]:
        with self._state.lock:
            return list(self._state.sent)

    def sends_per_notice(self) -> Counter[str]:
        return Counter(m.notice_id for m in self.sent if m.notice_id)

    def delivered(self) -> list[Delivered]:
        """Every recipient's message of the accepted requests, substitutions made."""
        out: list[Delivered] = []
        for request in self.requests:
            if request.status != 202:
                continue
            body = json.loads(request.body)
            args = body.get("custom_args") or {}
            for p in body["personalizations"]:
                subs = p.get("substitutions") or {}
                notice_id = (p.get("custom_args") or {}).get("notice_id") or args.get("notice_id")
                subject = _substituted(p.get("subject") or body.get("subject") or "", subs)
                content = {c["type"]: _substituted(c["value"], subs) for c in body["content"]}
                out += [Delivered(notice_id, r["email"], subject, content) for r in p["to"]]
        return out

    @property
    def public_key_b64(self) -> str:
        """The verification key as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo."""
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode("ascii")

    # -- events ------------------------------------------------------------------------------
    def events(
        self,
        notice_ids: Iterable[str] | None = None,
        *,
        repeat: int = 1,
        shuffle: bool = False,
        new_ids: bool = False,
        seed: int = 0,
    ) -> list[dict[str, Any]]:
        """Event Webhook records for accepted messages, like SendGrid's (with the address).

        ``repeat`` sends each event that many times; ``new_ids`` gives each repetition a
        fresh ``sg_event_id`` (SendGrid re-delivering); ``shuffle`` mixes their order.
        """
        wanted = set(notice_ids) if notice_ids is not None else None
        records: list[dict[str, Any]] = []
        for m in self.sent:
            if m.notice_id is None or (wanted is not None and m.notice_id not in wanted):
                continue
            outcome = self.outcomes.get(m.notice_id, "delivered")
            for offset, extra in _script(outcome):
                event_id = _message_id()
                for copy in range(repeat):
                    record = {
                        "email": m.to,
                        "timestamp": m.accepted_at + offset,
                        "sg_event_id": _message_id() if new_ids and copy else event_id,
                        "sg_message_id": f"{m.message_id}.recvd-fake-1-{offset}.0",
                        "smtp-id": f"<{m.message_id}@ismtpd.fake>",
                        "notice_id": m.notice_id,
                        "ip": "198.51.100.7",
                        **extra,
                    }
                    records.append(record)
        if shuffle:
            random.Random(seed).shuffle(records)
        return records

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The two headers SendGrid adds to a webhook call."""
        stamp = str(int(self._clock()) if timestamp is None else timestamp)
        signature = self._key.sign(stamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode("ascii"),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }

    def post_events(
        self, url: str, records: Sequence[dict[str, Any]], *, timestamp: int | None = None
    ) -> int:
        """Post one signed webhook call; returns the HTTP status."""
        import httpx

        body = json.dumps(list(records)).encode("utf-8")
        headers = {"Content-Type": "application/json", **self.sign(body, timestamp)}
        return httpx.post(url, content=body, headers=headers, timeout=30.0).status_code

    # -- request handling (server threads) ------------------------------------------------------
    def _accept(self, body: dict[str, Any]) -> str:
        message_id = _message_id()
        now = int(self._clock())
        args = body.get("custom_args") or {}
        with self._state.lock:
            for p in body["personalizations"]:
                notice_id = (p.get("custom_args") or {}).get("notice_id") or args.get("notice_id")
                for recipient in p["to"]:
                    self._state.sent.append(
                        SentMessage(message_id, notice_id, recipient["email"], now)
                    )
        return message_id


def _script(outcome: Outcome) -> list[tuple[int, dict[str, Any]]]:
    """(seconds after acceptance, fields) of the events SendGrid would report."""
    processed: tuple[int, dict[str, Any]] = (0, {"event": "processed"})
    if outcome == "none":
        return []
    if outcome == "bounce":
        return [
            processed,
            (
                5,
                {
                    "event": "bounce",
                    "type": "bounce",
                    "status": "5.1.1",
                    "reason": "550 5.1.1 mailbox unavailable",
                },
            ),
        ]
    if outcome == "dropped":
        return [processed, (1, {"event": "dropped", "reason": "Bounced Address"})]
    if outcome == "deferred":
        return [
            processed,
            (3, {"event": "deferred", "response": "451 try later", "attempt": "1"}),
            (60, {"event": "delivered", "response": "250 OK"}),
        ]
    return [processed, (2, {"event": "delivered", "response": "250 OK"})]


def _handler(fake: FakeSendGrid) -> type[BaseHTTPRequestHandler]:
    state = fake._state

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # requests carry addresses: nothing to stderr

        def _answer(
            self, status: int, payload: Any = None, headers: Sequence[tuple[str, str]] = ()
        ) -> None:
            data = b"" if payload is None else json.dumps(payload).encode("utf-8")
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self._answer(413, {"errors": [_error("payload too large", None)]})
                return
            raw = self.rfile.read(length)
            if self.path != "/v3/mail/send":
                state.requests.append(Recorded(self.path, raw, 404))
                self._answer(404, {"errors": [_error("not found", None)]})
                return
            with state.lock:
                fault = state.faults.popleft() if state.faults else None
            if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                state.requests.append(Recorded(self.path, raw, 401))
                self._answer(401, {"errors": [_error("authorization required", None)]})
                return
            if fault is not None and fault.kind == "status":
                state.requests.append(Recorded(self.path, raw, fault.status))
                self._answer(fault.status, {"errors": [_error("scripted", None)]}, fault.headers)
                return
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            errors = validate_mail(body)
            if errors:
                state.requests.append(Recorded(self.path, raw, 400))
                self._answer(400, {"errors": errors})
                return
            message_id = fake._accept(body)
            state.requests.append(Recorded(self.path, raw, 202))
            if fault is not None and fault.kind == "close":
                self.close_connection = True
                self.connection.close()
                return
            if fault is not None and fault.kind == "stall":
                state.release.wait(fault.seconds)
            with contextlib.suppress(OSError):  # the client may have given up waiting
                self._answer(202, None, [("X-Message-Id", message_id)])

    return Handler
