"""Delivery events through the signed webhook into the ledger, the fallback list, and the commands."""

from __future__ import annotations

import csv
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from notify_world import World, ledger

from flows.context import open_store
from matching.ledger import delivery_counts
from notify.events_server import EventsServer
from notify.fake_sendgrid import FakeSendGrid
from notify.plan import breach_facts
from notify.proof import record_events
from notify.senders import SendGridSender
from notify.sending import send_notices
from notify.webhook import DeliveryEvent, load_public_key

LEAKWATCH = str(Path(sys.executable).parent / "leakwatch")


def _send_all(world: World, fake: FakeSendGrid) -> list[str]:
    sender = SendGridSender(
        fake.api_key, host=fake.url, timeout_s=5.0, sender_email="securite@operateur.example"
    )
    facts = breach_facts(world.settings, world.breach_id, datetime(2024, 10, 20, tzinfo=UTC))
    with open_store(world.settings) as store:
        report = send_notices(store, world.breach_id, facts, sender)
    assert report.accepted == world.with_email
    return sorted(m.notice_id for m in fake.sent if m.notice_id)


def _snapshot(world: World) -> list[tuple[object, ...]]:
    return ledger(
        world.settings,
        "SELECT n.*, (SELECT count(*) FROM delivery_events) FROM notices n ORDER BY notice_id",
    )


def _server(world: World, fake: FakeSendGrid) -> EventsServer:
    def apply(events: tuple[DeliveryEvent, ...]) -> dict[str, int]:
        with open_store(world.settings) as store:
            report = record_events(store, events)
        return {"stored": report.stored, "changed": report.changed}

    return EventsServer(load_public_key(fake.public_key_b64), apply)


def test_forged_tampered_and_replayed_calls_change_nothing(
    world: World, fake: FakeSendGrid
) -> None:
    ids = _send_all(world, fake)
    bounced, dropped, deferred = ids[:3]
    fake.outcomes.update({bounced: "bounce", dropped: "dropped", deferred: "deferred"})
    body = json.dumps(fake.events()).encode()
    with _server(world, fake) as server:
        before = _snapshot(world)
        forger = FakeSendGrid()  # a key SendGrid never had
        tampered = body.replace(b'"delivered"', b'"bounce"')
        calls = [
            (body, forger.sign(body)),
            (tampered, fake.sign(body)),
            (body, fake.sign(body, timestamp=int(datetime.now(UTC).timestamp()) - 3600)),
            (body, {}),
        ]
        for content, headers in calls:
            answer = httpx.post(server.url, content=content, headers=headers, timeout=60)
            assert answer.status_code == 403
        assert _snapshot(world) == before

        # The genuine call, then the same call replayed within the window: once only.
        headers = fake.sign(body)
        assert httpx.post(server.url, content=body, headers=headers, timeout=60).status_code == 200
        after = _snapshot(world)
        assert after != before
        assert (
            httpx.post(server.url, content=body, headers=headers, timeout=60).json()["stored"] == 0
        )
        assert _snapshot(world) == after

        # Re-deliveries under new event ids, out of order: still the same ledger.
        again = fake.events(repeat=3, new_ids=True, shuffle=True, seed=5)
        assert fake.post_events(server.url, again) == 200
        assert [r[:-1] for r in _snapshot(world)] == [r[:-1] for r in after]

        # A bounce after a delivery keeps 'delivered' and puts the customer on the fallback list.
        late = ids[3]
        fake.outcomes[late] = "bounce"
        assert fake.post_events(server.url, fake.events([late])) == 200

    states = dict(ledger(world.settings))
    assert states[bounced] == "bounced" and states[dropped] == "dropped"
    assert states[deferred] == "delivered" and states[late] == "delivered"
    with open_store(world.settings, read_only=True) as store:
        counts = delivery_counts(store, world.breach_id)
    assert counts["bounced"] == 1 and counts["dropped"] == 1 and counts["late_bounce"] == 1
    assert counts["delivered"] == world.with_email - 2
    assert counts["fallback"] == 3 + world.without_email
    stored = " ".join(str(r) for r in ledger(world.settings, "SELECT * FROM delivery_events"))
    assert "@" not in stored  # no address
    assert "198.51.100.7" not in stored  # no IP
    assert "mailbox unavailable" not in stored and "250 OK" not in stored  # no server text


def test_commands_send_through_the_fake_and_list_the_fallback(world: World, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_SENDGRID")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LEAKWATCH, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    dry = run("notify", "customers", "--breach", world.breach_id, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert ledger(world.settings) == []

    sent = run("notify", "customers", "--breach", world.breach_id, "--fake-sendgrid")
    assert sent.returncode == 0, sent.stderr
    assert "fake SendGrid" in sent.stderr and f"{world.with_email} accepted" in sent.stdout
    states = {
        s
        for _, s in ledger(
            world.settings, "SELECT channel, state FROM notices WHERE channel = 'email'"
        )
    }
    assert states == {"delivered"}

    out = tmp_path / "fallback.csv"
    listed = run("notify", "fallback", "--breach", world.breach_id, "--output", str(out))
    assert listed.returncode == 0, listed.stderr
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert world.without_email > 0 and len(rows) == world.without_email
    assert {r["reason"] for r in rows} == {"no e-mail address"}
    assert set(rows[0]) == {"customer_id", "notice_id", "reason"}


def test_a_call_that_fails_to_record_gets_500_and_prints_its_type_only(
    world: World, fake: FakeSendGrid, capsys: pytest.CaptureFixture[str]
) -> None:
    """SendGrid delivers a failed call again; the output says the error's type, never its
    message (it could hold a value being recorded), and shows no traceback."""
    ids = _send_all(world, fake)

    def apply(events: tuple[DeliveryEvent, ...]) -> dict[str, int]:
        raise RuntimeError(f"could not record {events[0].notice_id} for jeanne@example.com")

    with EventsServer(load_public_key(fake.public_key_b64), apply) as server:
        assert fake.post_events(server.url, fake.events(ids[:2])) == 500
    err = capsys.readouterr().err
    assert "events serve: recording a call failed (RuntimeError)" in err
    assert "jeanne@example.com" not in err and ids[0] not in err and "Traceback" not in err


def test_a_client_dropping_its_connection_prints_nothing(
    fake: FakeSendGrid, capsys: pytest.CaptureFixture[str]
) -> None:
    """A caller that resets its connection mid-request (a proxy, a kept-alive connection
    closed) is no error of the receiver's: nothing on the output, and it goes on serving."""
    server = EventsServer(load_public_key(fake.public_key_b64), lambda events: {})
    with server:
        host, port = server.server.server_address[:2]
        for _ in range(3):
            with socket.create_connection((str(host), port)) as conn:
                conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n[{")
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        deadline = time.monotonic() + 10
        while any("process_request" in t.name for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the calls' threads never ended"
            time.sleep(0.01)
        assert fake.post_events(server.url, []) == 200  # still serving
    assert capsys.readouterr().err == ""
