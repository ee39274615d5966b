"""The Event Webhook receiver: a small HTTP server that verifies each call before anything is stored.

Every call is checked over its raw body (signature, timestamp window) before it is parsed; a
forged, tampered or stale call gets 403 and changes nothing. Verified events go to ``apply``
(given by the composition root: it opens the store, records, closes). While another leakwatch
process holds the store, the call gets 503 and SendGrid delivers it again later.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from core.errors import StoreBusyError
from notify.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WINDOW_S,
    DeliveryEvent,
    WebhookRejectedError,
    decode_body,
    parse_events,
    verify,
)

__all__ = ["MAX_BODY", "EventsServer"]

MAX_BODY = 8 * 1024 * 1024
Apply = Callable[[tuple[DeliveryEvent, ...]], dict[str, int]]


class EventsServer:
    """``start()`` then ``url``; ``serve_forever()`` for the command."""

    def __init__(
        self,
        key: ec.EllipticCurvePublicKey,
        apply: Apply,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        window_s: float = WINDOW_S,
    ) -> None:
        self._key = key
        self._apply = apply
        self._clock = clock
        self._window_s = window_s
        self._lock = threading.Lock()  # one store writer at a time within this process
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> EventsServer:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> EventsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        """Status and answer for one call (the HTTP handler only moves bytes)."""
        try:
            verify(
                self._key,
                headers.get(SIGNATURE_HEADER),
                headers.get(TIMESTAMP_HEADER),
                body,
                now=self._clock(),
                window_s=self._window_s,
            )
            parsed = parse_events(decode_body(body))
        except WebhookRejectedError as exc:
            return 403, {"refused": exc.reason}
        try:
            with self._lock:
                counts = self._apply(parsed.events)
        except StoreBusyError:
            return 503, {"retry": "store busy"}
        return 200, {**counts, "ignored": sum(parsed.ignored.values())}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the command prints counts; addresses never reach a log

            def do_POST(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or "-1")
                except ValueError:
                    length = -1
                if not 0 <= length <= MAX_BODY:
                    self._send(413 if length > MAX_BODY else 411, {"refused": "body size"})
                    return
                status, answer = outer.handle(self.headers, self.rfile.read(length))
                self._send(status, answer)

            def _send(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer).encode("utf-8")
                self.send_response(status)
                if status == 503:
                    self.send_header("Retry-After", "30")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
