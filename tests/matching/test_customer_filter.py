"""The customer filter: native and numpy bits agree, no customer key is ever missed, it is
stored whole, and the link relies on the leak keys' hints only while they describe the
customer keys of the moment."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from matching import customer_filter as cf
from matching.link import link
from matching.store import Store

_EXPOSURES = (
    "SELECT customer_id, matched_on, categories, category_mask, risk, reasons, matched_rows "
    "FROM exposures WHERE breach_id = 'b' ORDER BY customer_id"
)


@pytest.fixture(params=["native", "numpy"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test once with the native loops and once with numpy's."""
    if request.param == "native":
        assert cf._native() is not None, "the native module was not built"
    else:
        monkeypatch.setattr(cf, "_native", lambda: None)
    return str(request.param)


def _keys(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)


def test_sizes_grow_with_the_keys_within_bounds() -> None:
    assert cf.size_for(0) == cf.MIN_LOG2_BITS
    assert cf.size_for(4096) == 16  # 16 bits a key: 2^16
    assert cf.size_for(4097) == 17
    assert cf.size_for(60_000_000) == 30  # national scale: 128 MiB
    assert cf.size_for(10**10) == cf.MAX_LOG2_BITS


def test_every_key_hits_and_few_others_do(path: str) -> None:
    members = _keys(50_000, 1)
    built = cf.build_from([members[:20_000], members[20_000:]], len(members))
    assert built.id == cf.FilterId(len(members), int(np.bitwise_xor.reduce(members)))
    assert built.probe(members).all()  # never a customer key missed
    others = built.probe(_keys(200_000, 2))
    assert others.dtype == np.bool_ and 0 < others.mean() < 1 / 12  # about 1 in 16


def test_native_and_numpy_give_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    members, probes = _keys(30_000, 3), _keys(100_000, 4)
    # the top bits addressing the last and first words of the set, and every bit of a word
    edges = np.array([0, 2**64 - 1, 2**63, 2**63 - 1] + [b << 58 for b in range(64)], np.uint64)
    members = np.concatenate([members, edges])
    native = cf.build_from([members], len(members))
    native_hits = native.probe(np.concatenate([probes, edges]))
    monkeypatch.setattr(cf, "_native", lambda: None)
    numpy = cf.build_from([members], len(members))
    assert np.array_equal(native.words, numpy.words)
    assert np.array_equal(native_hits, numpy.probe(np.concatenate([probes, edges])))
    # bit i is bit i % 64 of word i // 64: the top key sets the last word's top bit
    assert numpy.words[-1] >> np.uint64(63) == 1 and numpy.words[0] & np.uint64(1) == 1


def test_the_native_loops_refuse_a_set_of_the_wrong_size() -> None:
    native = cf._native()
    assert native is not None
    words = np.zeros(1 << 10, dtype=np.uint64)  # 2^16 bits
    keys = _keys(10, 5)
    out = np.empty(10, dtype=np.uint8)
    with pytest.raises(ValueError, match="length"):
        native.probe(words, keys, 17, out)  # would read past the set
    with pytest.raises(ValueError, match="length"):
        native.set_bits(words[:-1], keys, 16)
    with pytest.raises(ValueError, match="one byte per key"):
        native.probe(words, keys, 16, out[:9])
    with pytest.raises(ValueError, match="between"):
        native.set_bits(words, keys, 2)
    misaligned = np.zeros(8 * 10 + 1, dtype=np.uint8)[1:]
    with pytest.raises(ValueError, match="aligned"):
        native.probe(words, misaligned, 16, out)


def test_the_filter_is_stored_whole_or_not_used(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        assert cf.load_filter(store) is None
        built = cf.build_from([_keys(70_000, 6)], 70_000)
        cf.save_filter(store, built)
        loaded = cf.load_filter(store)
        assert loaded is not None and loaded.id == built.id
        assert loaded.log2_bits == built.log2_bits and np.array_equal(loaded.words, built.words)
        store.con.execute("DELETE FROM customer_filter_words WHERE n = 7")
        assert cf.load_filter(store) is None  # a word missing: no filter rather than a wrong one


def test_columns_are_read_as_views_of_their_arrow_buffers() -> None:
    words = pa.array(np.arange(10, dtype=np.uint64) * 3, type=pa.uint64())
    n = pa.array(np.arange(10, dtype=np.uint32), type=pa.uint32())
    batch = pa.RecordBatch.from_arrays([n, words], ["n", "word"]).slice(4, 5)  # an offset
    assert cf._column(batch, 0, np.uint32).tolist() == [4, 5, 6, 7, 8]
    assert cf._column(batch, 1, np.uint64).tolist() == [12, 15, 18, 21, 24]
    with pytest.raises(ValueError, match="column 1 is uint64, not uint32"):
        cf._column(batch, 1, np.uint32)
    nulls = pa.RecordBatch.from_arrays([pa.array([1, None], type=pa.uint64())], ["k1"])
    with pytest.raises(ValueError, match="column 0 holds NULL"):
        cf._column(nulls, 0, np.uint64)


def test_reading_the_filter_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow's to_numpy() imports pandas where it is installed: 0.34 s at every ingest."""
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        cf.save_filter(store, cf.build_from([_keys(5_000, 8)], 5_000))
    probe = (
        "import sys; from pathlib import Path; from matching.store import Store; "
        "from matching import customer_filter as cf; "
        f"store = Store(Path({str(path)!r})); assert cf.load_filter(store) is not None; "
        "store.close(); print('pandas' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False"]


def _frame(store: Store) -> pl.DataFrame:
    frame: pl.DataFrame = store.con.sql(_EXPOSURES).pl()
    return frame


@pytest.mark.slow
def test_customers_loaded_after_the_leak_are_still_found(leakwatch_env: Path) -> None:
    """The filter a leak was probed against no longer names the customer keys: the link goes
    without the hints, and finds the customers the filter did not know."""
    from flows import steps
    from flows.context import open_store, runtime
    from synthetic import make_customers, make_leak, write_delimited

    base = make_customers(900, seed=5)
    leak = make_leak(base, 900, overlap=0.4, seed=6).frame
    base.head(600).write_csv(leakwatch_env / "first.csv")
    base.write_csv(leakwatch_env / "all.csv")
    write_delimited(leak, leakwatch_env / "leak.csv", delimiter=";")
    rt = runtime()
    steps.load_customer_file(rt, leakwatch_env / "first.csv")
    steps.ingest_source(rt, str(leakwatch_env / "leak.csv"), "b")
    with open_store(rt.settings) as store:
        hinted = link(store, "b")
        first = _frame(store)
        hint_share = store.con.execute(
            "SELECT avg(customer_hint::INTEGER), count(*) FILTER (WHERE customer_hint IS NULL) "
            "FROM leak_keys"
        ).fetchone()
    assert hinted.plan == "hinted" and first.height > 100
    assert hint_share is not None and 0 < hint_share[0] < 0.9 and hint_share[1] == 0

    # 300 more customers, whose identifiers the leak also holds: its keys for them were
    # probed against a filter that did not have them.
    steps.load_customer_file(rt, leakwatch_env / "all.csv")
    with open_store(rt.settings) as store:
        after = link(store, "b")
        found = _frame(store)
        narrowed = link(store, "b", narrow_above=0)
        assert _frame(store).equals(found)
    assert after.plan == "all" and narrowed.plan == "narrowed"
    later = set(base["customer_id"].slice(600))
    assert set(first["customer_id"]) < set(found["customer_id"])
    assert not set(first["customer_id"]) & later and set(found["customer_id"]) & later

    # Ingested again against the new filter, the leak is hinted and gives the same exposures.
    with open_store(rt.settings) as store:
        store.con.execute("DELETE FROM artifacts WHERE breach_id = 'b'")
    steps.ingest_source(rt, str(leakwatch_env / "leak.csv"), "b")
    with open_store(rt.settings) as store:
        again = link(store, "b")
        assert again.plan == "hinted"
        assert _frame(store).equals(found)


@pytest.mark.slow
def test_a_store_without_a_filter_gets_one_at_its_next_ingest(
    two_file_breach: Callable[..., None], leakwatch_env: Path
) -> None:
    """A store from before filters (or whose filter was lost) has none: the next ingest builds
    it from the customer keys, and probes against it."""
    from flows import steps
    from flows.context import open_store, runtime

    two_file_breach(customers=700, repeated=200, seed=8)
    rt = runtime()
    with open_store(rt.settings) as store:
        before = link(store, "b")
        exposures = _frame(store)
        store.con.execute("DELETE FROM customer_filter; DELETE FROM customer_filter_words")
        store.con.execute("DELETE FROM artifacts WHERE breach_id = 'b'")
    steps.ingest_source(rt, str(leakwatch_env / "a.csv"), "b")
    steps.ingest_source(rt, str(leakwatch_env / "b.csv"), "b")
    with open_store(rt.settings) as store:
        stored = cf.load_filter(store)
        assert stored is not None and stored.id == cf.current_id(store)
        after = link(store, "b")
        assert _frame(store).equals(exposures)
    assert before.plan == after.plan == "hinted"
