"""A threading HTTP server for our loopback and webhook servers: a client that drops its
connection is no error, and any other failure of a call is printed as its type only.

The standard library's server prints the whole traceback of any exception a call raises to
the process's error output, message included: a client resetting its connection (SendGrid
closing a kept-alive one, a download cancelled at its size cap) printed a traceback, and the
message of an unexpected exception could hold a value it was handling.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["QuietHTTPServer"]


class QuietHTTPServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` whose call threads never outlive the process, and whose
    errors say ``<label>: a call failed (<type>)`` (nothing for a dropped connection)."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, label: str
    ) -> None:
        self.label = label
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):  # reset, broken pipe, aborted
            return
        print(f"{self.label}: a call failed ({type(error).__name__})", file=sys.stderr)
