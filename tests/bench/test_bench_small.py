"""The bench harness end to end at a tiny size: every JSON key, and the exposures check passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import RESULT_KEYS, ExposuresMismatch, _check_exposures, _from_disk
from tests.page_cache import memory_backed, resident

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_runs_and_prints_every_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--rows", "2000", "--out", str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert tuple(result) == RESULT_KEYS
    assert result["rows"] == 2000 and result["customers"] == 2000
    assert result["peer_extrapolated"] is False
    assert all(result[k] > 0 for k in RESULT_KEYS if k not in ("rows", "peer_extrapolated"))
    assert any("= synthetic truth: OK" in line for line in lines)
    # the cache is reused by the next run, and the run's store is removed without --keep
    assert (tmp_path / "out" / "cache" / "2000-1" / "meta.json").is_file()
    assert not (tmp_path / "out" / "run").exists()
    # its outbox is set aside (deleting it now would slow the next run's drafts)
    (notices_line,) = [line for line in lines if "notices rendered into the outbox" in line]
    rendered = int(notices_line.split("/s")[1].split("notices")[0].replace(",", ""))
    (kept,) = (tmp_path / "out" / "outboxes").iterdir()
    assert "-2000-" in kept.name
    assert rendered > 0 and len(list(kept.glob("*.eml"))) == rendered


@pytest.mark.slow
def test_peer_is_extrapolated_only_when_it_says_so(tmp_path: Path) -> None:
    """Also: a leak of another size than the customer base, checked against its own truth; a
    run deletes no outbox set aside, however old (deleting files slows drafting for minutes
    after), deletes a kept run but for its outbox, which it sets aside, and says how many
    outboxes are set aside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKWATCH_")}
    for left in ("outboxes/old", "outboxes/recent", "run/outbox"):
        (tmp_path / "out" / left).mkdir(parents=True)
        (tmp_path / "out" / left / "0.eml").write_bytes(b"an earlier draft")
    an_hour_ago = time.time() - 3600
    os.utime(tmp_path / "out" / "outboxes" / "old", (an_hour_ago, an_hour_ago))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--rows",
            "1500",
            "--leak-rows",
            "1200",
            "--peer-max-rows",
            "1000",
            "--notices-cap",
            "0",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["peer_extrapolated"] is True
    assert (result["rows"], result["customers"]) == (1200, 1500)
    assert any("EXTRAPOLATED" in line for line in lines)
    assert lines[0].startswith("leakwatch bench: 1,500 customers x 1,200 leaked rows")
    assert any("= synthetic truth: OK" in line for line in lines)
    meta = json.loads((tmp_path / "out" / "cache" / "1500x1200-1" / "meta.json").read_text())
    assert (meta["rows"], meta["leak_rows"]) == (1500, 1200)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cache", "outboxes"]
    kept = sorted(p.name for p in (tmp_path / "out" / "outboxes").iterdir())
    assert len(kept) == 3 and kept[1:] == ["old", "recent"] and "-1500x1200-" in kept[0]
    set_aside = tmp_path / "out" / "outboxes" / kept[0] / "0.eml"
    assert set_aside.read_bytes() == b"an earlier draft"
    (kept_line,) = [line for line in lines if line.startswith("  (outboxes set aside: 3, ")]
    assert kept_line.endswith("; delete it)")  # not bench-output: make bench-clean is not for it


def test_a_wrong_exposure_fails_loudly(tmp_path: Path) -> None:
    import polars as pl

    from bench.data import BREACH_ID
    from matching.store import Store

    store_path = tmp_path / "s.duckdb"
    with Store(store_path) as store:
        store.con.execute(
            "INSERT INTO customers (customer_no, customer_id, language, status, fingerprint, "
            "key_id, updated_at) VALUES (1, 'C1', 'fr', 'active', ''::BLOB, 'k', now())"
        )
        store.con.execute(
            "INSERT INTO exposure_shapes VALUES ($b, 1, 2, 'email', 'email', 'low', '')",
            {"b": BREACH_ID},
        )
        store.con.execute(
            "INSERT INTO exposure_rows VALUES ($b, 1, 1, 2, 1, now())", {"b": BREACH_ID}
        )
    right = pl.DataFrame({"customer_id": ["C1"], "matched_on": ["email"], "categories": ["email"]})
    assert _check_exposures(store_path, right) == 1
    with pytest.raises(ExposuresMismatch, match="DIFFER"):
        _check_exposures(store_path, right.with_columns(matched_on=pl.lit("email;iban")))


def test_inputs_generated_apart_are_those_generated_here(tmp_path: Path) -> None:
    """The bench generates its inputs in a process of its own (which ends with the memory it
    took): the same files as generated in this one, then found in the cache."""
    from bench.data import cached, inputs, inputs_apart

    apart_cache, here_cache = tmp_path / "apart", tmp_path / "here"
    assert cached(apart_cache, 300, 7, 200) is None
    # In a fresh interpreter: generating in-process would import the generator there.
    script = (
        "import sys; from pathlib import Path; from bench.data import inputs_apart; "
        f"made = inputs_apart(Path({str(apart_cache)!r}), 300, 7, 200); "
        "print(made.generated_s is not None, 'synthetic' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "False"]  # generated, and not in that process
    apart = cached(apart_cache, 300, 7, 200)
    assert apart is not None and apart.folder.name == "300x200-7"
    here = inputs(here_cache, 300, 7, 200)
    for name in ("customers.csv", "leak.csv", "truth.parquet", "meta.json"):
        assert (apart.folder / name).read_bytes() == (here.folder / name).read_bytes(), name
    again = inputs_apart(apart_cache, 300, 7, 200)
    assert again == apart and again.generated_s is None
    assert cached(apart_cache, 300, 8, 200) is None  # another seed: not those


def test_measured_steps_read_their_files_from_disk(tmp_path: Path) -> None:
    if memory_backed(tmp_path.resolve()):
        pytest.skip("a file system held in memory keeps its pages")
    path = tmp_path / "leak.csv"
    path.write_bytes(os.urandom(4 << 20))  # written: cached, and dirty
    assert sum(resident(path)) > 0
    _from_disk(path, tmp_path / "absent.csv")
    assert sum(resident(path)) == 0
    assert path.read_bytes()  # still readable, from disk
    assert sum(resident(path)) > 0
