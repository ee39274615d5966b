"""Fixtures: a confirmed breach with exposed customers in a private store, and a fake SendGrid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from notify_world import World, build_world

from notify.fake_sendgrid import FakeSendGrid


@pytest.fixture
def world(leakwatch_env: Path, tmp_path: Path) -> World:
    w = build_world(tmp_path)
    assert w.with_email > 20
    return w


@pytest.fixture
def fake() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as server:
        yield server
