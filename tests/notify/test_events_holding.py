"""``events serve`` keeps the store open between calls and gives it back: to another process
that waits for it (within a second, no call needed), after its idle period, and when it stops;
a waiter's flag left behind by a killed process does not make it give the store back again."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from notify_world import World, ledger

from core.settings import Settings
from flows.context import HeldStore, open_store
from flows.notify_steps import events_server
from matching.store_wanted import wanted_path
from notify.events_server import CHECK_S, EventsServer
from notify.fake_sendgrid import FakeSendGrid
from notify.plan import breach_facts
from notify.senders import SendGridSender
from notify.sending import send_notices

LEAKWATCH = str(Path(sys.executable).parent / "leakwatch")
STORE_USER = str(Path(__file__).with_name("store_user.py"))


def _send_all(world: World, fake: FakeSendGrid) -> list[str]:
    sender = SendGridSender(
        fake.api_key, host=fake.url, timeout_s=5.0, sender_email="securite@operateur.example"
    )
    facts = breach_facts(world.settings, world.breach_id, datetime(2024, 10, 20, tzinfo=UTC))
    with open_store(world.settings) as store:
        assert send_notices(store, world.breach_id, facts, sender).accepted == world.with_email
    return sorted(m.notice_id for m in fake.sent if m.notice_id)


@pytest.fixture
def sent(world: World, fake: FakeSendGrid) -> list[str]:
    return _send_all(world, fake)


@contextmanager
def _serving(
    world: World, fake: FakeSendGrid, *, idle_s: float = 60.0, wait_s: float = 0.5
) -> Iterator[tuple[EventsServer, HeldStore]]:
    """The command's receiver (``events_server``), on loopback; its calls wait ``wait_s`` for
    a busy store."""
    settings = world.settings.model_copy(
        update={"events_hold_idle_s": idle_s, "store_wait_s": wait_s}
    )
    server = events_server(settings, host="127.0.0.1", port=0, public_key=fake.public_key_b64)
    held = server.holding
    assert isinstance(held, HeldStore)
    with server:
        yield server, held


def _post(server: EventsServer, fake: FakeSendGrid, notice_ids: list[str]) -> httpx.Response:
    body = json.dumps(fake.events(notice_ids)).encode()
    return httpx.post(server.url, content=body, headers=fake.sign(body), timeout=60)


def _other(*args: str) -> str:
    """One line from another process using the store (``store_user.py``)."""
    done = subprocess.run(
        [sys.executable, STORE_USER, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _until(condition: Callable[[], bool], within_s: float) -> float | None:
    """Seconds until ``condition`` held, or None if it did not within ``within_s``."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.02)
    return None


class _Waiter:
    """Another process opening the store as every command does (announced, up to ``wait_s``)."""

    def __init__(self, store: Path, wait_s: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, STORE_USER, "wait", str(store), str(wait_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("exited")

    def line(self) -> str:
        return self.lines.get(timeout=30)

    def opened(self) -> float:
        """Seconds it waited, once it says it opened the store."""
        said = self.line()
        assert said.startswith("opened "), said
        return float(said.split()[1])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.line() == "closed"
        self._end()

    def kill(self) -> None:
        self.proc.kill()
        self._end()

    def _end(self) -> None:
        """Wait for the process, then for its reader to reach the end of its output (once:
        a waiter closed may be killed again on the way out)."""
        self.proc.wait(timeout=30)
        assert self.proc.stdout is not None
        if self.proc.stdout.closed:
            return
        while self.line() != "exited":
            pass
        self.proc.stdout.close()


def test_calls_are_recorded_on_a_store_held_between_them(
    world: World, fake: FakeSendGrid, sent: list[str]
) -> None:
    with _serving(world, fake) as (server, held):
        for chunk in (sent[:10], sent[10:20], sent[20:]):
            answer = _post(server, fake, chunk)
            assert answer.status_code == 200 and answer.json()["stored"] > 0
            assert held.held
            assert _other("try", str(world.settings.store)) == "busy"  # locked between calls
        assert held.opens == 1
    assert not held.held
    assert _other("try", str(world.settings.store)) == "free"  # stopping gave it back
    assert {s for n, s in ledger(world.settings) if n in set(sent)} == {"delivered"}


def test_a_waiting_process_gets_the_store_without_a_call_and_the_server_waits_its_turn(
    world: World, fake: FakeSendGrid, sent: list[str]
) -> None:
    with _serving(world, fake) as (server, held):
        assert _post(server, fake, sent[:10]).status_code == 200
        waiter = _Waiter(world.settings.store, 20)
        try:
            assert waiter.line() == "busy"  # its first try: the server held the store
            assert waiter.opened() < 1.5  # with 60 s of idle allowed: its flag did it
            assert not held.held and held.opens == 1
            busy = _post(server, fake, sent[10:20])  # the other process has the store
            assert busy.status_code == 503 and busy.headers["Retry-After"]
        finally:
            waiter.close()
        again = _post(server, fake, sent[10:20])  # SendGrid's re-delivery, once it is done
        assert again.status_code == 200 and again.json()["stored"] > 0
        assert held.held and held.opens == 2


def test_two_waiters_both_get_the_store_in_turn(
    world: World, fake: FakeSendGrid, sent: list[str]
) -> None:
    with _serving(world, fake) as (server, held):
        assert _post(server, fake, sent[:10]).status_code == 200
        waiters = [_Waiter(world.settings.store, 20) for _ in range(2)]
        try:
            # The first to try found the store held; the other may have tried in the moment
            # it was handed over (then it opened and closed it, and waits like the first).
            assert sorted(w.line() for w in waiters)[0] == "busy"
            got = _until(lambda: any(not w.lines.empty() for w in waiters), within_s=10)
            assert got is not None and got < 1.5
            first, second = sorted(waiters, key=lambda w: w.lines.empty())
            assert first.opened() < 1.5  # whichever took it; the other waits on
            assert second.lines.empty()
            assert _post(server, fake, sent[10:20]).status_code == 503
            first.close()
            second.opened()
            assert _post(server, fake, sent[10:20]).status_code == 503
            second.close()
        finally:
            for waiter in waiters:
                waiter.kill()
        assert _post(server, fake, sent[10:20]).status_code == 200
        assert held.held and held.opens == 2


def test_the_store_is_given_back_after_the_idle_period(
    world: World, fake: FakeSendGrid, sent: list[str]
) -> None:
    with _serving(world, fake, idle_s=1.0) as (server, held):
        assert _post(server, fake, sent[:10]).status_code == 200
        assert held.held
        released = _until(lambda: not held.held, within_s=5)
        assert released is not None and 0.5 < released < 2.0
        assert _other("try", str(world.settings.store)) == "free"
        assert _post(server, fake, sent[10:20]).status_code == 200
        assert held.held and held.opens == 2


def test_a_flag_left_by_a_killed_waiter_is_not_a_waiter(
    world: World, fake: FakeSendGrid, sent: list[str]
) -> None:
    """While a waiter lives, the server gives the store back and refuses calls (503); killed,
    it leaves ``<store>.wanted`` behind, and the server holds the store again for good."""
    store = world.settings.store
    with _serving(world, fake) as (server, held):
        assert _post(server, fake, sent[:10]).status_code == 200
        with subprocess.Popen(
            [sys.executable, STORE_USER, "announce", str(store)], stdout=subprocess.PIPE, text=True
        ) as waiter:
            try:
                assert waiter.stdout is not None and waiter.stdout.readline().strip() == "announced"
                assert _until(lambda: not held.held, within_s=2) is not None
                assert _post(server, fake, sent[10:20]).status_code == 503
            finally:
                waiter.kill()
        flag = wanted_path(store)
        assert flag.exists() and flag.stat().st_size == 0 and flag.stat().st_mode & 0o777 == 0o600
        for chunk in (sent[10:20], sent[20:30], sent[30:]):
            assert _post(server, fake, chunk).status_code == 200
        time.sleep(10 * CHECK_S)  # ten checks between calls
        assert held.held and held.opens == 2


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_command_holds_the_store_and_gives_it_back_when_stopped(
    world: World, fake: FakeSendGrid, sent: list[str], stop: signal.Signals
) -> None:
    env = {
        **os.environ,
        "LEAKWATCH_SENDGRID_WEBHOOK_PUBLIC_KEY": fake.public_key_b64,
        "LEAKWATCH_EVENTS_HOLD_IDLE_S": "60",
        "COLUMNS": "200",
    }
    serve = subprocess.Popen(
        [LEAKWATCH, "events", "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stdout is not None
        found = re.search(r"http://\S+/", serve.stdout.readline())
        assert found, serve.stderr.read() if serve.stderr else ""
        body = json.dumps(fake.events(sent[:10])).encode()
        answer = httpx.post(found.group(0), content=body, headers=fake.sign(body), timeout=60)
        assert answer.status_code == 200 and answer.json()["stored"] > 0
        assert _other("try", str(world.settings.store)) == "busy"
    finally:
        serve.send_signal(stop)
        _, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err
    assert _other("try", str(world.settings.store)) == "free"


def test_holding_can_be_turned_off(world: World, fake: FakeSendGrid, sent: list[str]) -> None:
    """``LEAKWATCH_EVENTS_HOLD_IDLE_S=0``: the store is closed after every call, as before."""
    assert Settings(events_hold_idle_s=0).events_hold_idle_s == 0
    with _serving(world, fake, idle_s=0) as (server, held):
        for chunk in (sent[:10], sent[10:20]):
            assert _post(server, fake, chunk).status_code == 200
            assert not held.held
            assert _other("try", str(world.settings.store)) == "free"
        assert held.opens == 2


def test_a_restore_takes_the_store_from_an_idle_receiver(
    world: World, fake: FakeSendGrid, sent: list[str]
) -> None:
    """``store restore`` waits a moment for the store (it is refused while a send holds it:
    tests/matching/test_snapshot.py): the receiver holding it between calls gives it back."""
    from matching.snapshot import take_snapshot

    with open_store(world.settings) as store:
        snap = take_snapshot(store, "test", keep=1)
    assert snap is not None
    with _serving(world, fake) as (server, held):
        assert _post(server, fake, sent[:10]).status_code == 200 and held.held
        done = subprocess.run(
            [LEAKWATCH, "store", "restore", str(snap)],
            env={**os.environ, "LEAKWATCH_STORE": str(world.settings.store)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert not held.held
    # The snapshot was taken before the call: its events are gone with the restore.
    assert {s for n, s in ledger(world.settings) if n in set(sent[:10])} == {"accepted"}


def test_a_call_on_a_store_another_command_holds_is_refused_within_seconds(
    world: World, fake: FakeSendGrid, sent: list[str]
) -> None:
    """A send holds the store for minutes: a call waits a moment for it, not the minute every
    command may wait (``LEAKWATCH_STORE_WAIT_S``), then gets 503 for SendGrid to deliver again."""
    from flows.notify_steps import EVENTS_STORE_WAIT_S

    with _serving(world, fake, idle_s=0.0, wait_s=60.0) as (server, held):
        other = _Waiter(world.settings.store, 5)
        try:
            assert other.line() == "free" and other.opened() < 1.0  # it has the store
            started = time.monotonic()
            busy = _post(server, fake, sent[:10])
            waited = time.monotonic() - started
            assert busy.status_code == 503 and busy.headers["Retry-After"]
            assert EVENTS_STORE_WAIT_S <= waited < 10.0  # not the minute of wait_s
        finally:
            other.close()
        assert _post(server, fake, sent[:10]).status_code == 200
        assert not held.held  # idle 0: given back after the call
