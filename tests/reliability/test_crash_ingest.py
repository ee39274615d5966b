"""SIGKILL at each ingestion, matching and report crash point, re-run: same store as without the fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.crashes import CASES, run_case


@pytest.mark.slow
@pytest.mark.parametrize("point", sorted(CASES))
def test_killed_and_rerun_equals_fault_free(point: str, tmp_path: Path) -> None:
    result = run_case(point, seed=7, root=tmp_path / "case")
    assert result.survived, result.detail
