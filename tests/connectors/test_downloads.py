"""HTTP(S) sources against a real loopback server that cuts, stalls, throttles and fails."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import polars as pl
import pytest

from connectors.acquire import AcquireOptions, Refusal, acquire
from connectors.downloads import display_url, download
from core.errors import InputError, TransientError
from core.serving import QuietHTTPServer
from core.settings import Settings
from flows import steps
from flows.context import Runtime, load_pepper
from synthetic import make_customers, make_leak, write_delimited

BODY = b"".join(b"line %06d;0612345678;someone@example.test\n" % i for i in range(40_000))


@dataclass
class Script:
    """What the server does, per path; and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    # path -> list of behaviours consumed one per request; the last one repeats
    plans: dict[str, list[str]] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, path: str) -> str:
        with self.lock:
            plan = self.plans.get(path, ["ok"])
            return plan.pop(0) if len(plan) > 1 else plan[0]


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            script.seen.append((path, self.headers.get("Range")))
            action = script.next(path)
            body = script.files.get(path, BODY)
            if action.startswith("status:"):
                code, _, retry_after = action[7:].partition(":")
                self.send_response(int(code))
                if retry_after:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if action.startswith("redirect:"):
                self.send_response(302)
                self.send_header("Location", action[9:])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match and action != "ignore-range":
                start = int(match.group(1))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            part = body[start:]
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            if action == "cut":
                self.wfile.write(part[: len(part) // 3])
                self.wfile.flush()
                self.close_connection = True
                return
            if action == "stall":
                self.wfile.write(part[:1000])
                self.wfile.flush()
                script.release.wait(30)
                self.close_connection = True
                return
            self.wfile.write(part)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    httpd = QuietHTTPServer(("127.0.0.1", 0), _handler(script), label="test server")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        script.release.set()
        httpd.shutdown()
        httpd.server_close()


def _options(tmp_path: Path, **overrides: object) -> AcquireOptions:
    values: dict[str, object] = {
        "work_dir": tmp_path / "work",
        "http_read_timeout_s": 0.5,
        "http_connect_timeout_s": 2.0,
        "http_retries": 3,
    }
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    return AcquireOptions(work_dir=settings.work_dir, settings=settings)


Sleeps = list[float]


def _recorder() -> tuple[Sleeps, Callable[[float], None]]:
    sleeps: Sleeps = []
    return sleeps, sleeps.append


def test_plain_download_hashes_while_streaming(tmp_path: Path, server: tuple[str, Script]) -> None:
    base, _ = server
    artifact = download(f"{base}/leak.csv", _options(tmp_path))
    assert artifact.path.read_bytes() == BODY
    assert artifact.sha256 == hashlib.sha256(BODY).hexdigest()
    assert artifact.size == len(BODY)
    assert artifact.source == f"{base}/leak.csv"
    assert artifact.path.is_relative_to(tmp_path / "work" / "downloads")


def test_cut_mid_body_resumes_with_range(tmp_path: Path, server: tuple[str, Script]) -> None:
    base, script = server
    script.plans["/leak.csv"] = ["cut", "ok"]
    sleeps, sleep = _recorder()
    artifact = download(f"{base}/leak.csv", _options(tmp_path), sleep=sleep)
    assert artifact.path.read_bytes() == BODY
    assert artifact.sha256 == hashlib.sha256(BODY).hexdigest()
    first, second = script.seen
    assert first == ("/leak.csv", None)
    assert second[1] is not None and second[1] == f"bytes={len(BODY) // 3}-"
    assert len(sleeps) == 1


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path, server: tuple[str, Script]) -> None:
    base, script = server
    script.plans["/leak.csv"] = ["cut", "ignore-range"]
    artifact = download(f"{base}/leak.csv", _options(tmp_path), sleep=lambda s: None)
    assert artifact.path.read_bytes() == BODY
    assert artifact.sha256 == hashlib.sha256(BODY).hexdigest()
    assert script.seen[1][1] is not None  # it asked for a range, got the whole file


def test_stall_past_read_timeout_is_retried(tmp_path: Path, server: tuple[str, Script]) -> None:
    base, script = server
    script.plans["/leak.csv"] = ["stall", "ok"]
    artifact = download(f"{base}/leak.csv", _options(tmp_path), sleep=lambda s: None)
    assert artifact.sha256 == hashlib.sha256(BODY).hexdigest()
    assert len(script.seen) == 2


def test_503_then_200(tmp_path: Path, server: tuple[str, Script]) -> None:
    base, script = server
    script.plans["/leak.csv"] = ["status:503", "ok"]
    sleeps, sleep = _recorder()
    artifact = download(f"{base}/leak.csv", _options(tmp_path), sleep=sleep)
    assert artifact.size == len(BODY)
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.5  # first backoff: full jitter up to 0.5 s


def test_429_honours_retry_after(tmp_path: Path, server: tuple[str, Script]) -> None:
    base, script = server
    script.plans["/leak.csv"] = ["status:429:1", "ok"]
    sleeps, sleep = _recorder()
    download(f"{base}/leak.csv", _options(tmp_path), sleep=sleep)
    assert sleeps == [1.0]


def test_429_retry_after_http_date_in_the_past_waits_nothing(
    tmp_path: Path, server: tuple[str, Script]
) -> None:
    base, script = server
    script.plans["/leak.csv"] = ["status:429:Wed, 21 Oct 2015 07:28:00 GMT", "ok"]
    sleeps, sleep = _recorder()
    download(f"{base}/leak.csv", _options(tmp_path), sleep=sleep)
    assert sleeps == [0.0]


def test_persistent_5xx_is_transient_after_retries(
    tmp_path: Path, server: tuple[str, Script]
) -> None:
    base, script = server
    script.plans["/leak.csv"] = ["status:500"]
    with pytest.raises(TransientError, match=r"gave up after 4 attempts \(HTTP 500\)"):
        download(f"{base}/leak.csv", _options(tmp_path), sleep=lambda s: None)
    assert len(script.seen) == 4


def test_4xx_is_terminal_and_not_retried(tmp_path: Path, server: tuple[str, Script]) -> None:
    base, script = server
    script.plans["/leak.csv"] = ["status:404"]
    url = base.replace("http://", "http://user:secret@") + "/leak.csv?token=abc"
    with pytest.raises(InputError) as caught:
        download(url, _options(tmp_path), sleep=lambda s: None)
    message = str(caught.value)
    assert "HTTP 404" in message and "/leak.csv" in message
    assert "secret" not in message and "token" not in message and "abc" not in message
    assert len(script.seen) == 1


def test_connection_refused_is_transient(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(TransientError, match="connection failed"):
        download(
            f"http://127.0.0.1:{port}/x.csv",
            _options(tmp_path, http_retries=1),
            sleep=lambda s: None,
        )


def test_size_cap(tmp_path: Path, server: tuple[str, Script]) -> None:
    base, _ = server
    with pytest.raises(InputError, match="larger than the 1000-byte cap"):
        download(f"{base}/leak.csv", _options(tmp_path, http_max_bytes=1000))
    assert not list((tmp_path / "work" / "downloads").rglob("*.part"))


def test_expected_sha256_from_the_fragment(tmp_path: Path, server: tuple[str, Script]) -> None:
    base, _ = server
    good = hashlib.sha256(BODY).hexdigest()
    assert download(f"{base}/leak.csv#sha256={good}", _options(tmp_path)).sha256 == good
    with pytest.raises(InputError, match="SHA-256 does not match"):
        download(f"{base}/leak.csv#sha256={'0' * 64}", _options(tmp_path))
    with pytest.raises(InputError, match="fragment must be"):
        download(f"{base}/leak.csv#md5=abc", _options(tmp_path))


def test_redirects_are_limited_and_must_stay_http(
    tmp_path: Path, server: tuple[str, Script]
) -> None:
    base, script = server
    script.plans["/moved"] = ["redirect:/leak.csv"]
    assert download(f"{base}/moved", _options(tmp_path)).size == len(BODY)
    script.plans["/loop"] = ["redirect:/loop"]
    with pytest.raises(InputError, match="more than 2 redirects"):
        download(f"{base}/loop", _options(tmp_path, http_max_redirects=2))
    script.plans["/escape"] = ["redirect:file:///etc/passwd"]
    with pytest.raises(InputError, match="redirect to a file URL refused"):
        download(f"{base}/escape", _options(tmp_path))


def test_acquire_turns_a_refused_download_into_a_refusal(
    tmp_path: Path, server: tuple[str, Script]
) -> None:
    base, script = server
    script.plans["/gone.csv"] = ["status:410"]
    items = list(acquire(f"{base}/gone.csv", _options(tmp_path)))
    assert len(items) == 1 and isinstance(items[0], Refusal)
    assert "HTTP 410" in items[0].reason


def test_display_url_hides_credentials() -> None:
    assert (
        display_url("https://u:p@h.example:8443/a/b.csv?k=v#f")
        == "https://h.example:8443/a/b.csv?…"
    )


def test_a_downloaded_leak_is_ingested_and_matched_exactly(
    tmp_path: Path, server: tuple[str, Script], leakwatch_env: Path
) -> None:
    base, script = server
    customers = make_customers(1_500, seed=31)
    leak = make_leak(customers, 1_200, overlap=0.3, seed=32)
    write_delimited(leak.frame, tmp_path / "leak.csv", delimiter=";")
    script.files["/dump/leak.csv"] = (tmp_path / "leak.csv").read_bytes()
    script.plans["/dump/leak.csv"] = ["cut", "ok"]  # and it survives a cut on the way
    customers.write_csv(tmp_path / "customers.csv")
    settings = Settings()
    rt = Runtime(settings=settings, pepper=load_pepper(settings))
    steps.load_customer_file(rt, tmp_path / "customers.csv")

    report = steps.ingest_source(rt, f"{base}/dump/leak.csv", "b-http")
    assert report.errors == []
    assert report.artifacts == 1 and report.rows_read == leak.frame.height
    steps.match_breach(rt, "b-http")
    steps.export_exposures(rt, "b-http", tmp_path / "exposures.csv", "csv")
    got = pl.read_csv(tmp_path / "exposures.csv", infer_schema=False)
    columns = ["customer_id", "matched_on", "categories"]
    assert (
        got.select(columns)
        .sort("customer_id")
        .equals(leak.truth.select(columns).sort("customer_id"))
    )
    again = steps.ingest_source(rt, f"{base}/dump/leak.csv", "b-http")
    assert again.artifacts == 0 and again.skipped_known == 1
