"""Property tests: whatever bytes a parser gets, only leakwatch's own refusal may come out."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reliability.fuzz import SEEDS, TARGETS, TOKENS, mutate, run_target

_pieces = st.one_of(
    st.sampled_from(TOKENS), st.binary(max_size=24), st.text(max_size=12).map(str.encode)
)


@pytest.mark.parametrize("target", sorted(TARGETS))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    pieces=st.lists(_pieces, max_size=6),
)
def test_parsers_raise_only_our_refusal(
    target: str, seed: int, pieces: list[bytes], tmp_path: Path
) -> None:
    rng = random.Random(seed)
    data = mutate(rng.choice(SEEDS[target]), rng)
    at = rng.randint(0, len(data))
    data = data[:at] + b"".join(pieces) + data[at:]
    assert run_target(target, data, tmp_path / f"w{seed}") is None
