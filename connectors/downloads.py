"""Downloading an HTTP(S) source to local disk as an evidence-ready artifact, safely and resumably.

A download is streamed to ``work_dir/downloads/<url digest>/<file name>``; its SHA-256 is computed
while the bytes arrive. Failures are sorted at this boundary:

- transient (retried with exponential backoff and full jitter, ``http_retries`` times): connection
  errors, read errors and timeouts, a connection cut mid-body, 5xx, and 429 (whose ``Retry-After``,
  seconds or an HTTP date, is honoured). After a cut the download resumes with ``Range: bytes=N-``
  when the server answers ``206`` with a matching ``Content-Range``; a server that ignores the
  range (``200``) restarts the file cleanly. When retries are exhausted: ``TransientError``.
- terminal (``InputError``): any other 4xx, a body larger than ``http_max_bytes``, an expected
  SHA-256 that does not match, too many redirects or a redirect to anything but http(s).

An expected SHA-256 is given as a URL fragment, ``https://host/leak.csv#sha256=<64 hex>``
(fragments are never sent to servers), or with ``expected_sha256=``. Messages and the artifact's
``source`` never carry the URL's user info or query string (they may hold credentials).
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from connectors.acquire import AcquireOptions
from connectors.base import Artifact, Digest
from connectors.sniff import read_head, sniff_media_type
from core.errors import InputError, TransientError

__all__ = ["ClientFactory", "display_url", "download"]

ClientFactory = Callable[[httpx.Timeout], httpx.Client]

_BACKOFF_BASE_S = 0.5
_BACKOFF_CAP_S = 60.0
_RETRY_AFTER_CAP_S = 300.0
_SHA256_FRAGMENT = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_REDIRECTS = {301, 302, 303, 307, 308}


def display_url(url: str | httpx.URL) -> str:
    """The URL as errors and evidence show it: no user info, no fragment, query masked."""
    parsed = httpx.URL(url) if isinstance(url, str) else url
    port = f":{parsed.port}" if parsed.port is not None else ""
    shown = f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"
    return f"{shown}?…" if parsed.query else shown


def _default_client(timeout: httpx.Timeout) -> httpx.Client:
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)


class _Retry(Exception):
    """One attempt failed in a way worth trying again; ``wait`` overrides the backoff."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


@dataclass
class _Part:
    """The partial file and the digest of exactly the bytes it holds."""

    path: Path
    size: int = 0

    def __post_init__(self) -> None:
        self.digest = hashlib.sha256()

    def restart(self) -> None:
        self.path.write_bytes(b"")
        self.size = 0
        self.digest = hashlib.sha256()


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), _RETRY_AFTER_CAP_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), _RETRY_AFTER_CAP_S)


def _backoff(attempt: int) -> float:
    """Full jitter: uniform in [0, base * 2**attempt], capped."""
    return random.uniform(0.0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt))


def _split_expected(url: str, expected_sha256: str | None) -> tuple[httpx.URL, str | None]:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise InputError("not a valid URL", file="(url)") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InputError("only http and https URLs are downloaded", file=display_url(parsed))
    expected = expected_sha256.lower() if expected_sha256 else None
    if parsed.fragment:
        match = _SHA256_FRAGMENT.match(parsed.fragment)
        if match is None:
            raise InputError(
                "URL fragment must be #sha256=<64 hex digits>", file=display_url(parsed)
            )
        from_fragment = match.group(1).lower()
        if expected and expected != from_fragment:
            raise InputError("two different expected SHA-256 given", file=display_url(parsed))
        expected = from_fragment
        parsed = parsed.copy_with(fragment=None)
    return parsed, expected


def _target(work_dir: Path, url: httpx.URL) -> Path:
    key = hashlib.sha256(str(url).encode()).hexdigest()[:16]
    name = _SAFE_NAME.sub("_", url.path.rsplit("/", 1)[-1]).strip("._") or "download"
    folder = work_dir / "downloads" / key
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name[:120]


class _Downloader:
    """One download: attempts, redirects, resume. Holds no personal data, only bytes on disk."""

    def __init__(
        self, url: httpx.URL, part: _Part, client: httpx.Client, *, max_bytes: int, redirects: int
    ) -> None:
        self.url = url
        self.shown = display_url(url)
        self.part = part
        self.client = client
        self.max_bytes = max_bytes
        self.max_redirects = redirects

    def attempt(self) -> None:
        """Fetch the rest of the body into the part file; raises ``_Retry`` or ``InputError``."""
        headers = {"Accept-Encoding": "identity"}
        if self.part.size:
            headers["Range"] = f"bytes={self.part.size}-"
        url = self.url
        for _ in range(self.max_redirects + 1):
            request = self.client.build_request("GET", url, headers=headers)
            try:
                response = self.client.send(request, stream=True)
            except (httpx.UnsupportedProtocol, httpx.InvalidURL):
                raise InputError("unsupported URL", file=self.shown) from None
            except httpx.TransportError as exc:
                raise _Retry(f"connection failed ({type(exc).__name__})") from None
            try:
                if response.status_code in _REDIRECTS:
                    url = self._redirect_target(url, response)
                    continue
                self._receive(response)
                return
            finally:
                response.close()
        raise InputError(f"more than {self.max_redirects} redirects", file=self.shown)

    def _redirect_target(self, current: httpx.URL, response: httpx.Response) -> httpx.URL:
        location = response.headers.get("Location")
        if not location:
            raise InputError(f"HTTP {response.status_code} without Location", file=self.shown)
        try:
            target = current.join(location)
        except httpx.InvalidURL:
            raise InputError("redirect to an invalid URL", file=self.shown) from None
        if target.scheme not in ("http", "https"):
            raise InputError(
                f"redirect to a {target.scheme or 'schemeless'} URL refused", file=self.shown
            )
        return target

    def _receive(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}", wait=_retry_after(response.headers.get("Retry-After")))
        if status == 416 and self.part.size:
            # Our range starts at or past the end: either we already hold it all, or the
            # resource changed under us. Start over; the hash check settles it.
            self.part.restart()
            raise _Retry("HTTP 416 on resume", wait=0.0)
        if status >= 400:
            raise InputError(f"HTTP {status}", file=self.shown)
        if status == 206:
            self._check_range(response.headers.get("Content-Range"))
        elif status == 200:
            if self.part.size:
                self.part.restart()  # the server ignored Range: the body is the whole file
        else:
            raise InputError(f"unexpected HTTP {status}", file=self.shown)
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and self.part.size + int(length) > self.max_bytes:
            raise InputError(f"larger than the {self.max_bytes}-byte cap", file=self.shown)
        try:
            with self.part.path.open("ab") as f:
                for chunk in response.iter_raw():  # as received: a cut keeps every byte
                    if self.part.size + len(chunk) > self.max_bytes:
                        raise InputError(
                            f"larger than the {self.max_bytes}-byte cap", file=self.shown
                        )
                    f.write(chunk)
                    self.part.digest.update(chunk)
                    self.part.size += len(chunk)
        except httpx.TransportError as exc:
            raise _Retry(f"cut after {self.part.size} bytes ({type(exc).__name__})") from None

    def _check_range(self, header: str | None) -> None:
        match = _CONTENT_RANGE.match(header or "")
        if match is None or int(match.group(1)) != self.part.size:
            # A range we did not ask for: throw the part away and fetch the whole file.
            self.part.restart()
            raise _Retry("HTTP 206 with a mismatched Content-Range", wait=0.0)


def download(
    url: str,
    options: AcquireOptions,
    *,
    expected_sha256: str | None = None,
    client_factory: ClientFactory | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Artifact:
    """Stream ``url`` to disk under the options' work folder and return it as an Artifact.

    ``client_factory`` builds the httpx client from the timeouts: tests and proxies inject
    theirs; the default trusts no proxy environment. A part file left by an earlier run is
    discarded (it may be another version of the resource); resuming happens within one call.
    """
    settings = options.settings
    parsed, expected = _split_expected(url, expected_sha256)
    shown = display_url(parsed)
    target = _target(options.work_dir, parsed)
    part = _Part(target.with_name(target.name + ".part"))
    part.restart()  # a part left by an earlier run may be another version: never trust it
    timeout = httpx.Timeout(
        connect=settings.http_connect_timeout_s,
        read=settings.http_read_timeout_s,
        write=settings.http_read_timeout_s,
        pool=settings.http_connect_timeout_s,
    )
    attempts = settings.http_retries + 1
    last = ""
    with (client_factory or _default_client)(timeout) as client:
        fetcher = _Downloader(
            parsed,
            part,
            client,
            max_bytes=settings.http_max_bytes,
            redirects=settings.http_max_redirects,
        )
        for attempt in range(attempts):
            try:
                fetcher.attempt()
                break
            except _Retry as retry:
                last = retry.reason
                if attempt + 1 < attempts:
                    sleep(retry.wait if retry.wait is not None else _backoff(attempt))
            except InputError:
                part.path.unlink(missing_ok=True)
                raise
        else:
            raise TransientError(f"{shown}: gave up after {attempts} attempts ({last})")
    sha256 = part.digest.hexdigest()
    if expected is not None and sha256 != expected:
        part.path.unlink(missing_ok=True)
        raise InputError("SHA-256 does not match the expected one", file=shown)
    part.path.replace(target)
    return Artifact(
        path=target,
        source=shown,
        digest=Digest.known(sha256),
        size=part.size,
        acquired_at=datetime.now(UTC),
        media_type=sniff_media_type(read_head(target)),
    )
