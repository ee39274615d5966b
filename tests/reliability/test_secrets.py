"""Canaries planted in every input never appear in clear anywhere; stored keys resist enumeration."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reliability.canary import PLANTED, WINDOW, run_canary
from reliability.reversal import reverse_keyed, reverse_unkeyed, stored_phone_keys
from reliability.sweep import hits


def test_no_canary_or_pepper_escapes_and_enumeration_recovers_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    run = run_canary(tmp_path)
    assert run.refusals == [] and run.artifacts == 4
    assert run.exposed_canaries == len(PLANTED)
    haystacks = {**run.haystacks, "logs": caplog.text + "".join(capfd.readouterr())}
    assert any(k.startswith("sendgrid request") for k in haystacks)
    assert hits(haystacks, run.needles) == []
    # The sweep does see what it looks for: the customer file itself holds the canary.
    assert hits({"input": (tmp_path / "customers.csv").read_bytes()}, run.needles)

    # Reversal on the window around the planted numbers (the full 2×10⁸ is `make reliability`).
    keys = stored_phone_keys(run.runtime.settings.store)
    assert reverse_unkeyed(keys, WINDOW, processes=1) == []
    assert reverse_keyed(keys, run.runtime.pepper, WINDOW) >= set(PLANTED)
