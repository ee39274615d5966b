"""Every class of the hostile corpus through the real ingestion and loading steps: each defence holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings
from flows.context import runtime
from reliability.hostile import CLASSES, build_corpus
from reliability.hostile.run import run_hostile


@pytest.mark.slow
@pytest.mark.parametrize("cls", sorted(CLASSES))
def test_hostile_class_is_refused(cls: str, leakwatch_env: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    cases = build_corpus(corpus, [cls])
    assert cases
    outcomes = run_hostile(runtime(Settings()), cases, corpus)
    failed = [(o.case.label, o.detail) for o in outcomes if not o.refused]
    assert failed == []
