"""SIGKILL during ``leakwatch notify customers``, then run again: every notice sent exactly once, or ambiguous then resolved."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from notify_world import World, build_world, ledger

from notify.fake_sendgrid import FakeSendGrid

LEAKWATCH = str(Path(sys.executable).parent / "leakwatch")
BATCH = 10


def _run(
    env: dict[str, str], *args: str, crash: str | None = None
) -> subprocess.CompletedProcess[str]:
    run_env = {**env, "LEAKWATCH_CRASH_AT": crash} if crash else env
    return subprocess.run(
        [LEAKWATCH, *args], env=run_env, capture_output=True, text=True, timeout=120, check=False
    )


def _notify(
    env: dict[str, str], *extra: str, crash: str | None = None
) -> subprocess.CompletedProcess[str]:
    return _run(env, "notify", "customers", "--breach", "2024-10-test", *extra, crash=crash)


def _import_events(env: dict[str, str], fake: FakeSendGrid, tmp_path: Path) -> None:
    """SendGrid's events for what it accepted, as an exported batch (JSON lines)."""
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in fake.events()) + "\n")
    done = _run(env, "events", "import", str(path))
    assert done.returncode == 0, done.stderr


@pytest.fixture
def small_world(leakwatch_env: Path, tmp_path: Path) -> World:
    return build_world(tmp_path, n=70, seed=11)


@pytest.fixture
def env(small_world: World, fake: FakeSendGrid) -> dict[str, str]:
    return {
        **os.environ,
        "LEAKWATCH_SENDGRID_API_KEY": fake.api_key,
        "LEAKWATCH_SENDGRID_HOST": fake.url,
        "LEAKWATCH_SENDGRID_CONCURRENCY": "1",
        "LEAKWATCH_SENDGRID_PER_REQUEST": "1",  # one notice per request (shared: see below)
        "LEAKWATCH_NOTIFY_BATCH_SIZE": str(BATCH),
    }


def _states(world: World) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, state in ledger(
        world.settings, "SELECT notice_id, state FROM notices WHERE channel = 'email'"
    ):
        counts[state] = counts.get(state, 0) + 1
    return counts


def _exactly_once(world: World, fake: FakeSendGrid) -> None:
    per_notice = fake.sends_per_notice()
    email_notices = {
        r[0]
        for r in ledger(world.settings, "SELECT notice_id FROM notices WHERE channel = 'email'")
    }
    assert set(per_notice) == email_notices and len(email_notices) == world.with_email
    assert set(per_notice.values()) == {1}


def test_killed_between_planning_and_sending(
    small_world: World, fake: FakeSendGrid, env: dict[str, str]
) -> None:
    killed = _notify(env, crash="after-mark-sending")
    assert killed.returncode == -signal.SIGKILL
    assert fake.sent == [] and _states(small_world) == {
        "planned": small_world.with_email - BATCH,
        "sending": BATCH,
    }

    # The interrupted batch may or may not have gone out: listed, not sent; the rest is sent.
    second = _notify(env)
    assert second.returncode == 1 and "ambiguous" in second.stderr
    assert _states(small_world) == {"accepted": small_world.with_email - BATCH, "ambiguous": BATCH}

    # SendGrid saw nothing of them (no events); the officer sends them knowingly.
    third = _notify(env, "--resend-ambiguous")
    assert third.returncode == 0, third.stderr
    _exactly_once(small_world, fake)


def test_killed_in_the_middle_of_a_batch(
    small_world: World, fake: FakeSendGrid, env: dict[str, str], tmp_path: Path
) -> None:
    killed = _notify(env, crash="after-api-answer:4")
    assert killed.returncode == -signal.SIGKILL
    assert len(fake.sent) == 4

    # Events prove the four that went out; the six others of the batch stay ambiguous.
    _import_events(env, fake, tmp_path)
    second = _notify(env)
    assert second.returncode == 1
    states = _states(small_world)
    assert states["ambiguous"] == BATCH - 4 and states["delivered"] == 4
    assert states["accepted"] == small_world.with_email - BATCH

    third = _notify(env, "--resend-ambiguous")
    assert third.returncode == 0, third.stderr
    _exactly_once(small_world, fake)


def test_killed_between_the_answer_and_the_ledger_write(
    small_world: World, fake: FakeSendGrid, env: dict[str, str], tmp_path: Path
) -> None:
    killed = _notify(env, crash=f"after-api-answer:{BATCH}")
    assert killed.returncode == -signal.SIGKILL
    assert len(fake.sent) == BATCH  # all answered, none recorded

    second = _notify(env)  # no events yet: ambiguous, listed, not re-sent
    assert second.returncode == 1
    assert _states(small_world)["ambiguous"] == BATCH

    _import_events(env, fake, tmp_path)  # then SendGrid's events arrive
    third = _notify(env)
    assert third.returncode == 0, third.stderr
    states = _states(small_world)
    assert states == {"delivered": small_world.with_email}  # events for every message sent
    _exactly_once(small_world, fake)


def test_killed_after_the_ledger_write(
    small_world: World, fake: FakeSendGrid, env: dict[str, str]
) -> None:
    killed = _notify(env, crash="after-mark-accepted")
    assert killed.returncode == -signal.SIGKILL
    assert _states(small_world)["accepted"] == BATCH

    again = _notify(env)
    assert again.returncode == 0, again.stderr
    _exactly_once(small_world, fake)


def test_killed_after_a_shared_requests_answer(
    small_world: World, fake: FakeSendGrid, env: dict[str, str], tmp_path: Path
) -> None:
    """Notices of one shape share requests: a kill after the first answer leaves every notice
    of the batch ``sending``; the ones SendGrid accepted are proved by their events, the rest
    stay ambiguous until the officer sends them, and nobody receives a notice twice."""
    shared = {**env, "LEAKWATCH_SENDGRID_PER_REQUEST": "1000"}
    killed = _notify(shared, crash="after-api-answer")
    assert killed.returncode == -signal.SIGKILL
    first = {m.notice_id for m in fake.sent}
    assert len(fake.requests) == 1 and 1 < len(first) < small_world.with_email
    # The batch was at least a request's worth: every notice was marked before sending.
    assert _states(small_world) == {"sending": small_world.with_email}

    second = _notify(shared)  # no events yet: all ambiguous, listed, none sent again
    assert second.returncode == 1 and "ambiguous" in second.stderr
    assert _states(small_world) == {"ambiguous": small_world.with_email}
    assert {m.notice_id for m in fake.sent} == first

    _import_events(shared, fake, tmp_path)
    third = _notify(shared, "--resend-ambiguous")
    assert third.returncode == 0, third.stderr
    states = _states(small_world)
    assert states["delivered"] == len(first)
    assert states["accepted"] == small_world.with_email - len(first)
    _exactly_once(small_world, fake)
