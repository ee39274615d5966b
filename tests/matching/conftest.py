"""Fixtures shared by the ledger's tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from matching import ledger
from matching.link import link
from matching.store import Store


@pytest.fixture
def plan_breach(leakwatch_env: Path, two_file_breach: Callable[..., None]) -> Callable[[int], Path]:
    """``plan_breach(seed)``: a store whose breach "b" (the two-file leak of ``seed``) is linked
    and its notices planned; its path."""
    from flows.context import runtime

    def planned(seed: int) -> Path:
        two_file_breach(seed=seed)
        current = runtime().settings.store
        with Store(current) as store:
            link(store, "b")
            assert ledger.plan_notices(store, "b") > 100
        return current

    return planned
