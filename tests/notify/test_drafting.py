"""Drafting on every core: the same bytes as the one-process path, refusals named, counts durable."""

from __future__ import annotations

import email
import itertools
import multiprocessing
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from breach_facts import EXAMPLE_BREACH

from core.errors import TerminalError
from notify.completeness import IncompleteNoticeError, check_complete, check_filled
from notify.drafting import DraftError, draft_chunks, pieces, start_drafting, warm_shapes
from notify.outbox import EmlFile, build_emls
from notify.plan import contexts
from notify.render import NoticeRenderer
from schemas.vocab import Category

SENDER = "Opérateur Exemple <securite@operateur.example>"
WHEN = datetime(2026, 1, 15, 8, 0, 7, tzinfo=UTC)
NAMES = [
    ("Zoé", "Lefèvre-Dupré"),
    ("Marie", "O'Hara <b>"),
    ('"Jo"', "Smith & Co %s %(name)s"),
    ("Ægir", "Øster = Ünal"),
    (None, None),
    ("Anne-Sophie", "de La Tour d'Auvergne et de Saint-Exupéry-Montmorency-Laval"),
    ("Ana\u00a0Maria", "Ôtéa\u2028"),
]
MATCHED = ["email", "iban", "phone", "iban;phone", "email;iban;phone"]
CATEGORIES = ["name", "email;name", "iban;name;phone", ";".join(sorted(c.value for c in Category))]
IBAN_HINTS = ["FR•• •••• 0189", "FR7630006000011234567890189", None]
PHONE_HINTS = ["•• •• •• •• 78", "+33612345678", None]
FIELDS = (
    "notice_id", "customer_id", "channel", "state", "language", "first_name", "last_name",
    "email", "matched_on", "categories", "risk", "iban_hint", "phone_hint",
)  # fmt: skip


def _rows(n: int) -> list[dict[str, Any]]:
    """Ledger rows as ``send_candidates`` gives them, every mix of the lists above in turn."""
    mixes = itertools.cycle(
        itertools.product(["fr", "en", None], MATCHED, CATEGORIES, ["low", "medium", "high"])
    )
    rows = []
    for i in range(n):
        language, matched, categories, risk = next(mixes)
        first, last = NAMES[i % len(NAMES)]
        rows.append(
            {
                "notice_id": f"{i:032x}",
                "customer_id": f"C{i:06d}",
                "channel": "email",
                "state": "planned",
                "language": language,
                "first_name": first,
                "last_name": last,
                "email": f"client{i}@example.org",
                "matched_on": matched,
                "categories": categories,
                "risk": risk,
                "iban_hint": IBAN_HINTS[i % 3],
                "phone_hint": PHONE_HINTS[i % 3],
            }
        )
    return rows


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {field: [row[field] for row in rows] for field in FIELDS}


def _reference(outbox: Path, rows: list[dict[str, Any]]) -> dict[str, bytes]:
    """What the one-process path writes for each row that makes a complete notice."""
    renderer = NoticeRenderer()
    items = []
    for ctx in contexts(rows, EXAMPLE_BREACH):
        notice = renderer.render(ctx)
        check_complete(notice, ctx)
        assert ctx.email is not None
        items.append((notice, ctx.email))
    built = build_emls(outbox, items, sender=SENDER, date=WHEN)
    return {f.path.name: f.data for f in built if isinstance(f, EmlFile)}


def _durable_in_one_worker(job: Any, worker: int = 0) -> int:
    """Run a worker's whole life in this process; the notices it reported durable."""
    from multiprocessing import Pipe

    from notify.drafting import _draft_pieces

    receive, send = Pipe(duplex=False)
    _draft_pieces(send, job, multiprocessing.get_context("fork").Value("Q", 0), worker)
    durable = 0
    while (message := receive.recv()) != ("done",):
        assert message[0] == "durable", message
        durable += message[1]
    return durable


def test_the_workers_write_the_one_process_paths_bytes(tmp_path: Path) -> None:
    rows = _rows(240)
    outbox = tmp_path / "outbox"
    drafted = start_drafting(
        _columns(rows), EXAMPLE_BREACH, outbox, sender=SENDER, workers=3, batch_size=17, date=WHEN
    ).wait()
    assert drafted.durable == len(rows) and drafted.refused == ()
    want = _reference(tmp_path / "reference", rows)
    written = {p.name: p.read_bytes() for p in outbox.iterdir()}
    assert written == want  # every file, byte for byte, and nothing else (no temporary left)
    for data in written.values():
        msg = email.message_from_bytes(data, policy=default)
        assert isinstance(msg, EmailMessage) and msg.get_content_type() == "multipart/alternative"


def test_refused_notices_are_named_not_written_nor_counted(tmp_path: Path) -> None:
    rows = _rows(30)
    rows[3]["email"] = None
    rows[4]["email"] = "client4@example.org\nBcc: attacker@evil.example"
    rows[5]["first_name"], rows[5]["last_name"] = "Jean", "www.phish"  # the renderer keeps it
    rows[6]["email"] = "Marie <client6@example.org>"  # a display name: the email package path
    outbox = tmp_path / "outbox"
    drafted = start_drafting(
        _columns(rows), EXAMPLE_BREACH, outbox, sender=SENDER, workers=2, batch_size=4, date=WHEN
    ).wait()
    reasons = {r.notice_id: r.reason for r in drafted.refused}
    assert reasons == {
        f"{3:032x}": "no e-mail address",
        f"{4:032x}": "To: line break or control character refused",
        f"{5:032x}": "incomplete: no_link",
    }
    assert drafted.durable == len(rows) - 3
    assert sorted(p.stem for p in outbox.iterdir()) == sorted(
        row["notice_id"] for row in rows if row["notice_id"] not in reasons
    )
    for reason in reasons.values():
        assert "evil" not in reason and "phish" not in reason and "client" not in reason


def _one_kind(n: int) -> list[dict[str, Any]]:
    """``n`` rows of one kind of notice (language, risk, exposure) whose values vary: names
    with and without one, hints masked, whole or missing (the slots each fills vary too)."""
    plain = [("Zoé", "Lefèvre-Dupré"), ("Ægir", "Øster = Ünal"), ("Ana", None), (None, None)]
    rows = []
    for i in range(n):
        first, last = plain[i % len(plain)]
        rows.append(
            {
                "notice_id": f"{i:032x}",
                "customer_id": f"C{i:06d}",
                "channel": "email",
                "state": "planned",
                "language": "fr",
                "first_name": first,
                "last_name": last,
                "email": f"client{i}@example.org",
                "matched_on": "iban;phone",
                "categories": "iban;name;phone",
                "risk": "high",
                "iban_hint": IBAN_HINTS[(i // 4) % 3],
                "phone_hint": PHONE_HINTS[(i // 12) % 3],
            }
        )
    return rows


def _draft_counting_by_values(job: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """Run one worker's life here; (notices durable, notices drafted from their values)."""
    from notify import drafting

    by_values = 0
    real = drafting._Kind.draft

    def counted(kind: Any, *args: Any) -> bool:
        nonlocal by_values
        drafted: bool = real(kind, *args)
        by_values += drafted
        return drafted

    monkeypatch.setattr(drafting._Kind, "draft", counted)
    return _durable_in_one_worker(job), by_values


def _job(rows: list[dict[str, Any]], outbox: Path) -> Any:
    from notify.drafting import _Job

    columns = _columns(rows)
    outbox.mkdir(parents=True)
    return _Job(
        columns, EXAMPLE_BREACH, outbox, SENDER, NoticeRenderer(), 7, WHEN,
        pieces(columns, 1), (),
    )  # fmt: skip


def test_a_kinds_notices_are_drafted_from_their_values_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first notice of each set of slots of a kind, the others are drafted from their
    values alone, and every file is what the one-process path writes."""
    rows = _one_kind(72)
    slot_sets = {(r["first_name"] is not None, r["iban_hint"], r["phone_hint"]) for r in rows}
    outbox = tmp_path / "outbox"
    durable, by_values = _draft_counting_by_values(_job(rows, outbox), monkeypatch)
    assert durable == len(rows)
    # One notice per set of slots takes the context's path (masked and whole hints of one
    # slot make the same hint, so sets of slots are at most the sets of rows counted here).
    assert len(rows) - len(slot_sets) <= by_values < len(rows)
    written = {p.name: p.read_bytes() for p in outbox.iterdir()}
    assert written == _reference(tmp_path / "reference", rows)


def test_values_that_do_not_decide_a_notice_leave_it_to_its_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notice of a proven kind and slots whose values need more (an address to fold or
    refuse, a name to escape, a name the full check refuses) is decided as before: the same
    files, the same refusals with their reasons."""
    rows = _one_kind(40)
    for i in (9, 21, 33):  # rows of one set of slots, after its first
        assert (rows[i]["first_name"], rows[i]["iban_hint"]) == (rows[1]["first_name"], None)
    rows[9]["email"] = "Client Neuf <client9@example.org>"  # folded by the email package
    rows[21]["last_name"] = "O'Hara & <b>"  # escaped in the HTML
    rows[33]["last_name"] = "www.phish"  # a link: refused by the full check
    rows[25]["email"] = "client25@example.org\nBcc: attacker@evil.example"
    outbox = tmp_path / "outbox"
    durable, by_values = _draft_counting_by_values(_job(rows, outbox), monkeypatch)
    assert durable == len(rows) - 2 and by_values > 0
    written = {p.name: p.read_bytes() for p in outbox.iterdir()}
    folded = email.message_from_bytes(written.pop(f"{9:032x}.eml"), policy=default)
    assert folded["To"] == "Client Neuf <client9@example.org>"  # its boundary is random
    kept = [r for i, r in enumerate(rows) if i not in (9, 25, 33)]
    assert written == _reference(tmp_path / "reference", kept)
    job = _job(rows, tmp_path / "again")
    drafted = start_drafting(
        job.columns, EXAMPLE_BREACH, tmp_path / "workers", sender=SENDER, workers=2, date=WHEN
    ).wait()
    assert {r.notice_id: r.reason for r in drafted.refused} == {
        f"{25:032x}": "To: line break or control character refused",
        f"{33:032x}": "incomplete: no_link",
    }


def test_a_worker_that_cannot_write_stops_the_run_without_a_value(tmp_path: Path) -> None:
    rows = _rows(40)
    outbox = tmp_path / "outbox"
    (outbox / f"{7:032x}.eml").mkdir(parents=True)  # a folder where a notice must go
    with pytest.raises(DraftError) as caught:
        start_drafting(
            _columns(rows), EXAMPLE_BREACH, outbox, sender=SENDER, workers=2, batch_size=5
        ).wait()
    assert isinstance(caught.value, TerminalError)
    message = str(caught.value)
    assert "naming" in message and f"{7:032x}" not in message and "client" not in message
    # What the workers reported durable is on disk under its names (and perhaps more).
    reported = int(message.rsplit("(", 1)[1].split(" notices durable")[0])
    assert len([p for p in outbox.iterdir() if p.suffix == ".eml" and p.is_file()]) >= reported
    # Whatever was written is whole: every .eml parses to both parts, no temporary is left.
    for path in outbox.iterdir():
        if path.is_dir():
            continue
        assert path.suffix == ".eml"
        msg = email.message_from_bytes(path.read_bytes(), policy=default)
        assert isinstance(msg, EmailMessage)
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


def test_warming_compiles_each_kind_once_and_writes_nothing(tmp_path: Path) -> None:
    rows = _rows(200)
    rows[0] = dict(rows[0], last_name="www.phish")  # refused: a link in the notice
    kinds = {(r["language"], r["risk"], r["matched_on"], r["categories"]) for r in rows}
    renderer = NoticeRenderer()
    warmed = warm_shapes(_columns(rows), EXAMPLE_BREACH, sender=SENDER, renderer=renderer)
    assert warmed == len(kinds) - 1  # the refused notice's kind is left to the workers
    assert list(tmp_path.iterdir()) == []
    # The workers forked after it write what the one-process path writes, refusal included.
    drafted = start_drafting(
        _columns(rows), EXAMPLE_BREACH, tmp_path, sender=SENDER, renderer=renderer, date=WHEN
    ).wait()
    assert drafted.durable == len(rows) - 1 and len(drafted.refused) == 1
    expected = _reference(tmp_path / "ref", rows[1:])
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.eml")} == expected


def test_warming_is_best_effort_and_a_failing_row_is_reported_by_its_type(tmp_path: Path) -> None:
    rows = _rows(30)
    rows[4] = dict(rows[4], risk="Zoé-Lefèvre")  # no such risk: building its context fails
    columns = _columns(rows)
    renderer = NoticeRenderer()
    kinds = {(r["language"], r["risk"], r["matched_on"], r["categories"]) for r in rows}
    assert warm_shapes(columns, EXAMPLE_BREACH, sender=SENDER, renderer=renderer) == len(kinds) - 1
    with pytest.raises(DraftError) as caught:
        start_drafting(columns, EXAMPLE_BREACH, tmp_path, sender=SENDER, renderer=renderer).wait()
    assert "ValueError" in str(caught.value) and "Zoé" not in str(caught.value)


def test_workers_stopped_midway_leave_whole_notices_and_no_process(tmp_path: Path) -> None:
    rows = _rows(4000)
    running = start_drafting(
        _columns(rows), EXAMPLE_BREACH, tmp_path, sender=SENDER, workers=2, batch_size=50
    )
    deadline = time.monotonic() + 60
    while not any(tmp_path.glob("*.eml")):  # until the first batch is named
        assert time.monotonic() < deadline, "no batch named in a minute"
        time.sleep(0.001)
    running.stop()
    assert multiprocessing.active_children() == []
    written = list(tmp_path.iterdir())
    assert 0 < len(written) < len(rows)
    for path in written:
        assert path.suffix == ".eml" and not path.name.startswith(".")
        msg = email.message_from_bytes(path.read_bytes(), policy=default)
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


def test_no_rows_draft_nothing(tmp_path: Path) -> None:
    drafted = start_drafting(
        {field: [] for field in FIELDS}, EXAMPLE_BREACH, tmp_path, sender=SENDER
    ).wait()
    assert drafted.durable == 0 and drafted.refused == ()


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_pieces_hold_every_row_once_small_kinds_whole(workers: int) -> None:
    rows = _rows(500) + [dict(_rows(1)[0], notice_id=f"x{i}") for i in range(300)]  # one big kind
    columns = _columns(rows)
    dealt = pieces(columns, workers)
    assert sorted(i for piece in dealt for i in piece) == list(range(len(rows)))
    assert all(piece == sorted(piece) for piece in dealt)
    size = max(map(len, dealt))
    assert size == min(256, -(-len(rows) // (8 * workers)))  # an eighth of a worker's part
    assert len(dealt) >= 8 * workers or size == 256

    def kind(i: int) -> tuple[Any, ...]:
        return tuple(columns[c][i] for c in ("language", "risk", "matched_on", "categories"))

    # A kind that fits in a piece is in one piece; a larger one is cut into pieces of its own.
    holders: dict[tuple[Any, ...], set[int]] = {}
    for n, piece in enumerate(dealt):
        for i in piece:
            holders.setdefault(kind(i), set()).add(n)
    for k, held_by in holders.items():
        count = sum(kind(i) == k for i in range(len(rows)))
        assert len(held_by) == (1 if count <= size else -(-count // size))


def test_pieces_count_each_kind_and_come_costliest_first() -> None:
    """A kind counts as _KIND_ROWS rows in a piece (its compile): a piece of rare kinds holds
    few rows. Pieces come costliest first, so the workers end on small ones, not on the piece
    of the rarest kinds."""
    from notify.drafting import _KIND_ROWS

    big = [dict(_rows(1)[0], notice_id=f"b{i:031x}") for i in range(600)]
    rows = big + _rows(180)[1:]  # one kind of 600 rows, then 179 kinds of one row each
    columns = _columns(rows)
    dealt = pieces(columns, 2)
    size = -(-len(rows) // 16)

    def kind(i: int) -> tuple[Any, ...]:
        return tuple(columns[c][i] for c in ("language", "risk", "matched_on", "categories"))

    costs = [len(piece) + _KIND_ROWS * len({kind(i) for i in piece}) for piece in dealt]
    assert costs == sorted(costs, reverse=True)
    rare = [piece for piece in dealt if piece[0] >= len(big)]
    assert max(map(len, rare)) == size // (1 + _KIND_ROWS) < size
    assert dealt[-1] == list(range(600 - 600 % size, 600))  # the big kind's last, short piece
    assert sorted(i for piece in dealt for i in piece) == list(range(len(rows)))


def test_pieces_go_to_whichever_worker_is_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker that takes the first piece is held on it until the other has drafted every
    other piece: it drafts that one piece, and every notice is still drafted once."""
    import os

    from notify import drafting

    rows = _rows(120)
    outbox, marks = tmp_path / "outbox", tmp_path / "marks"
    marks.mkdir()
    dealt = pieces(_columns(rows), 2)
    real = drafting._draft_piece

    def held_on_the_first(job: Any, indexes: Sequence[int], batch: Any, *rest: Any) -> None:
        if list(indexes) == dealt[0]:
            deadline = time.monotonic() + 30
            while len(list(marks.iterdir())) < len(dealt) - 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        real(job, indexes, batch, *rest)
        (marks / f"{os.getpid()}-{indexes[0]}").touch()

    monkeypatch.setattr(drafting, "_draft_piece", held_on_the_first)  # inherited by the fork
    drafted = start_drafting(
        _columns(rows), EXAMPLE_BREACH, outbox, sender=SENDER, workers=2, batch_size=4
    ).wait()
    assert drafted.durable == len(rows) and drafted.refused == ()
    assert sorted(p.stem for p in outbox.iterdir()) == sorted(r["notice_id"] for r in rows)
    by_worker: dict[str, int] = {}
    for mark in marks.iterdir():
        worker = mark.name.split("-")[0]
        by_worker[worker] = by_worker.get(worker, 0) + 1
    assert sorted(by_worker.values()) == [1, len(dealt) - 1]


def test_incomplete_shape_is_refused_by_the_filled_check() -> None:
    """The filled path refuses what check_complete refuses (here: a value forming a link)."""
    rows = _rows(1)
    rows[0]["last_name"] = "www.phish"
    (ctx,) = contexts(rows, EXAMPLE_BREACH)
    with pytest.raises(IncompleteNoticeError) as caught:
        check_filled(NoticeRenderer().fill(ctx), ctx)
    assert caught.value.missing == ("no_link",)


def test_column_contexts_are_the_row_contexts() -> None:
    from notify.plan import column_contexts

    rows = _rows(60)
    picked = [5, 0, 59, 17]
    assert list(column_contexts(_columns(rows), picked, EXAMPLE_BREACH)) == list(
        contexts([rows[i] for i in picked], EXAMPLE_BREACH)
    )


def test_a_rows_context_takes_each_field_from_its_column() -> None:
    """Contexts are built by position: each field holds its own column's value."""
    from notify.plan import _context
    from schemas.models import NoticeContext
    from schemas.vocab import KeyKind, Risk

    got = _context(
        EXAMPLE_BREACH, "n1", "C1", "en", "Zoé", "Durand", "z@example.org", "iban;phone",
        "iban;name", "high", "FR•• •••• 0189", "•• •• •• •• 78",
    )  # fmt: skip
    assert got == NoticeContext(
        notice_id="n1",
        customer_id="C1",
        language="en",
        first_name="Zoé",
        last_name="Durand",
        email="z@example.org",
        matched_on=(KeyKind.IBAN, KeyKind.PHONE),
        categories=(Category.IBAN, Category.NAME),
        risk=Risk.HIGH,
        breach=EXAMPLE_BREACH,
        iban_hint="FR•• •••• 0189",
        phone_hint="•• •• •• •• 78",
    )


def test_a_worker_stopped_midway_leaves_no_temporary(tmp_path: Path) -> None:
    """Files go to disk as they are built; a worker that stops removes its batch's files."""
    from multiprocessing import Pipe

    from notify.drafting import _draft_pieces, _Job

    rows = _rows(3)
    columns = _columns(rows)
    columns["notice_id"][2] = 7  # not a string: the worker stops on it, mid-batch
    job = _Job(
        columns, EXAMPLE_BREACH, tmp_path, SENDER, NoticeRenderer(), 10, WHEN, [[0, 1, 2]], ()
    )
    receive, send = Pipe(duplex=False)
    _draft_pieces(send, job, multiprocessing.get_context("fork").Value("Q", 0), 0)
    assert receive.recv() == ("failed", "worker stopped on AttributeError")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_worker_leaves_no_piece_to_the_others(tmp_path: Path) -> None:
    """Once a worker fails the chunk fails: a worker that asks for a piece afterwards gets none
    and ends with nothing drafted, instead of drafting the rest for nothing."""
    from multiprocessing import Pipe

    from notify.drafting import _draft_pieces, _Job

    rows = _rows(6)
    columns = _columns(rows)
    columns["notice_id"][0] = 7  # not a string: the worker stops on it
    job = _Job(
        columns,
        EXAMPLE_BREACH,
        tmp_path,
        SENDER,
        NoticeRenderer(),
        10,
        WHEN,
        [[0], [1, 2], [3, 4, 5]],
        (),
    )
    counter = multiprocessing.get_context("fork").Value("Q", 0)
    receive, send = Pipe(duplex=False)
    _draft_pieces(send, job, counter, 0)
    assert receive.recv() == ("failed", "worker stopped on AttributeError")
    receive, send = Pipe(duplex=False)
    _draft_pieces(send, job, counter, 1)  # the other worker, asking for its next piece
    assert receive.recv() == ("durable", 0, [])
    assert receive.recv() == ("done",)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def low_open_files() -> Any:
    """This process's soft limit on open files at 300 for the test, then as it was."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2 * 500 + 256:
        pytest.skip("the hard limit on open files leaves no room to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (300, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_worker_raises_its_open_file_limit_to_hold_two_batches_unnamed(
    tmp_path: Path, low_open_files: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a soft limit of 300 (many systems start at 1 024) two batches of 500 would not fit
    in the descriptor room, and most files would be named by temporaries and renames."""
    import os
    import resource

    from notify import batch_writer
    from notify.drafting import _Job

    if not batch_writer._unnamed_ok:
        pytest.skip("this file system makes no unnamed file")
    renamed: list[str] = []
    replace = os.replace
    monkeypatch.setattr(os, "replace", lambda *a, **k: (renamed.append("x"), replace(*a, **k)))
    rows = _rows(700)
    job = _Job(
        _columns(rows),
        EXAMPLE_BREACH,
        tmp_path,
        SENDER,
        NoticeRenderer(),
        500,
        WHEN,
        [range(700)],
        (),
    )
    assert _durable_in_one_worker(job) == 700
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 2 * 500 + 256
    assert renamed == []  # every draft named by its unnamed file's link
    assert len(list(tmp_path.iterdir())) == 700


def test_a_worker_opens_its_unnamed_files_in_its_own_folder_and_names_them_in_the_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker's inodes go where its own empty folder's do; the notices land in the
    outbox all the same, and start_drafting removes those folders when it ends."""
    import os

    from notify import batch_writer
    from notify.drafting import _Job

    if not batch_writer._unnamed_ok:
        pytest.skip("this file system makes no unnamed file")
    outbox, births = tmp_path / "outbox", [tmp_path / "w0", tmp_path / "w1"]
    for folder in (outbox, *births):
        folder.mkdir()
    opened_in: list[str] = []
    real_open = os.open

    def recording(path: str, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            opened_in.append(os.readlink(f"/proc/self/fd/{kwargs['dir_fd']}"))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording)
    rows = _rows(30)
    job = _Job(
        _columns(rows),
        EXAMPLE_BREACH,
        outbox,
        SENDER,
        NoticeRenderer(),
        7,
        WHEN,
        [range(30)],
        births,
    )
    assert _durable_in_one_worker(job, worker=1) == 30
    assert opened_in == [str(births[1])] * 30
    assert sorted(p.stem for p in outbox.iterdir()) == sorted(r["notice_id"] for r in rows)
    assert [list(b.iterdir()) for b in births] == [[], []]
    monkeypatch.undo()
    drafted = start_drafting(
        _columns(rows), EXAMPLE_BREACH, tmp_path / "again", sender=SENDER, workers=2, date=WHEN
    ).wait()
    assert drafted.durable == 30
    assert all(p.suffix == ".eml" for p in (tmp_path / "again").iterdir())  # no folder left


def test_a_worker_whose_own_folder_is_gone_drafts_from_the_outbox(tmp_path: Path) -> None:

    from notify.drafting import _Job

    outbox = tmp_path / "outbox"
    outbox.mkdir()
    rows = _rows(5)
    job = _Job(
        _columns(rows), EXAMPLE_BREACH, outbox, SENDER, NoticeRenderer(), 2, WHEN, [range(5)],
        [tmp_path / "gone"],
    )  # fmt: skip
    assert _durable_in_one_worker(job) == 5
    assert sorted(p.stem for p in outbox.iterdir()) == sorted(r["notice_id"] for r in rows)


def test_chunks_are_drafted_in_turn_each_reported_once_its_files_are_durable(
    tmp_path: Path,
) -> None:
    rows = _rows(300)
    rows[7] = dict(rows[7], email=None)  # refused, in the first chunk
    outbox = tmp_path / "outbox"
    reported: list[tuple[str, int, int]] = []

    def drafted(chunk: list[dict[str, Any]], made: Any) -> None:
        written = {p.name for p in outbox.iterdir()}
        assert {f"{r['notice_id']}.eml" for r in chunk if r["email"]} <= written
        reported.append((chunk[0]["notice_id"], made.durable, len(made.refused)))

    draft_chunks(
        [rows[:120], rows[120:240], rows[240:]],
        _columns,
        EXAMPLE_BREACH,
        outbox,
        sender=SENDER,
        renderer=NoticeRenderer(),
        drafted=drafted,
        date=WHEN,
    )
    assert reported == [(rows[0]["notice_id"], 119, 1), (rows[120]["notice_id"], 120, 0),
                        (rows[240]["notice_id"], 60, 0)]  # fmt: skip
    kept = [r for r in rows if r["email"]]
    assert {p.name: p.read_bytes() for p in outbox.iterdir()} == _reference(tmp_path / "ref", kept)


def test_a_chunk_that_cannot_be_reported_stops_the_next_chunks_workers(tmp_path: Path) -> None:
    rows = _rows(3000)

    def drafted(chunk: list[dict[str, Any]], made: Any) -> None:
        raise RuntimeError("the store refused the chunk's records")

    with pytest.raises(RuntimeError, match="refused the chunk"):
        draft_chunks(
            [rows[:50], rows[50:]],
            _columns,
            EXAMPLE_BREACH,
            tmp_path / "outbox",
            sender=SENDER,
            renderer=NoticeRenderer(),
            drafted=drafted,
        )
    assert multiprocessing.active_children() == []
