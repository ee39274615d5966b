"""The Event Webhook receiver: a small HTTP server that verifies each call before anything is stored.

Every call is checked over its raw body (signature, timestamp window) before it is parsed; a
forged, tampered or stale call gets 403 and changes nothing. Verified events go to ``apply``
(given by the composition root), which commits them before the call is answered 200. While
another leakwatch process has the store, the call gets 503 and SendGrid delivers it again later.

``apply`` may keep the store open from one call to the next (the composition root's
``HeldStore``): the server then hands it a :class:`Holding`, and asks it to settle (give the
store back if another process waits for it, or once idle long enough) after every call and
every ``check_s`` between calls, and to close when the server stops. The server knows no
store, file or setting: only that these calls, like ``apply``, happen under its one lock.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from core.errors import StoreBusyError
from core.serving import QuietHTTPServer
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

__all__ = ["CHECK_S", "MAX_BODY", "EventsServer", "Holding"]

MAX_BODY = 8 * 1024 * 1024
CHECK_S = 0.1  # between calls, how often a held store is asked to settle
Apply = Callable[[tuple[DeliveryEvent, ...]], dict[str, int]]


class Holding(Protocol):
    """What ``apply`` keeps open between calls; every method is called under the server's lock."""

    def settle(self) -> None:
        """Give the store back if another process waits for it or it has been idle long enough."""

    def close(self) -> None:
        """Give the store back for good: the server is stopping."""


class EventsServer:
    """``start()`` then ``url``; ``serve_forever()`` for the command (Ctrl-C closes it)."""

    def __init__(
        self,
        key: ec.EllipticCurvePublicKey,
        apply: Apply,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        window_s: float = WINDOW_S,
        holding: Holding | None = None,
        check_s: float = CHECK_S,
    ) -> None:
        self._key = key
        self._apply = apply
        self._clock = clock
        self._window_s = window_s
        self._holding = holding
        self._check_s = check_s
        self._lock = threading.Lock()  # one store writer at a time within this process
        self._closed = False  # under the lock: no call applied once the store is given back
        self._stopping = threading.Event()
        self._watch: threading.Thread | None = None
        self.server = QuietHTTPServer((host, port), self._handler(), label="events serve")
        self._thread: threading.Thread | None = None

    @property
    def holding(self) -> Holding | None:
        return self._holding

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> EventsServer:
        self._start_watch()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C), then :meth:`close`."""
        self._start_watch()
        try:
            self.server.serve_forever()
        finally:
            self.close()

    def stop(self) -> None:
        """Stop serving (from another thread than ``serve_forever``'s) and :meth:`close`."""
        self.server.shutdown()
        self.close()

    def close(self) -> None:
        """Close the socket, and give the store back once a call under way is answered."""
        self._stopping.set()
        if self._watch is not None and self._watch is not threading.current_thread():
            self._watch.join()
        self.server.server_close()
        with self._lock:
            self._closed = True
            if self._holding is not None:
                self._holding.close()

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
                if self._closed:
                    return 503, {"retry": "stopping"}
                try:
                    counts = self._apply(parsed.events)  # committed when it returns
                finally:
                    if self._holding is not None:
                        self._holding.settle()
        except StoreBusyError:
            return 503, {"retry": "store busy"}
        except Exception as exc:  # nothing committed; SendGrid delivers the call again later
            print(f"events serve: recording a call failed ({type(exc).__name__})", file=sys.stderr)
            return 500, {"retry": "failed"}
        return 200, {**counts, "ignored": sum(parsed.ignored.values())}

    def _start_watch(self) -> None:
        """Between calls, ask the held store to settle every ``check_s``."""
        if self._holding is None or self._watch is not None:
            return
        self._watch = threading.Thread(target=self._settle_between_calls, daemon=True)
        self._watch.start()

    def _settle_between_calls(self) -> None:
        while not self._stopping.wait(self._check_s):
            with self._lock:
                if self._holding is None or self._closed:
                    continue
                try:
                    self._holding.settle()
                except Exception as exc:
                    # The watch goes on, so that a store held again later is still given
                    # back; the error's kind only (a statement's values never reach here).
                    reason = type(exc).__name__
                    print(f"events serve: giving the store back failed ({reason})", file=sys.stderr)

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
