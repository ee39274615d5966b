"""The send loop against the fake SendGrid: exactly once, valid payloads, nothing personal where it stays."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import duckdb
import polars as pl
import pytest
from notify_world import World, build_world, ledger

from flows.context import open_store
from matching import ledger as ledger_mod
from matching.breaches import BreachNotConfirmedError
from matching.ledger import delivery_counts
from matching.store import Store
from notify import sending
from notify.drafting import DraftError
from notify.events_server import EventsServer
from notify.fake_sendgrid import FakeSendGrid, Fault, validate_mail
from notify.plan import breach_facts
from notify.proof import record_events
from notify.render import NoticeRenderer, RenderedNotice
from notify.senders import OutboxSender, SendGridAuthError, SendGridSender
from notify.sending import SendReport, send_notices
from notify.webhook import load_public_key
from schemas.models import NoticeContext


class Sleeps:
    """Injected instead of time.sleep: records the waits, waits for nothing."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _sender(fake: FakeSendGrid, sleeps: Sleeps | None = None, **kw: object) -> SendGridSender:
    options: dict[str, object] = {
        "host": fake.url,
        "timeout_s": 5.0,
        "sender_email": "securite@operateur.example",
        "sender_name": "Opérateur Exemple",
        "concurrency": 2,
        "sleep": sleeps or Sleeps(),
        "clock": lambda: 1_800_000_000.0,
    }
    options.update(kw)
    return SendGridSender(str(options.pop("api_key", fake.api_key)), **options)  # type: ignore[arg-type]


def _send(world: World, sender: object, **kw: object) -> SendReport:
    from datetime import UTC, datetime

    facts = breach_facts(world.settings, world.breach_id, datetime(2024, 10, 20, tzinfo=UTC))
    with open_store(world.settings) as store:
        return send_notices(store, world.breach_id, facts, sender, batch_size=25, **kw)  # type: ignore[arg-type]


def _states(world: World) -> dict[str, int]:
    with open_store(world.settings, read_only=True) as store:
        return delivery_counts(store, world.breach_id)


def test_one_accepted_notice_per_exposed_customer_with_email(
    world: World, fake: FakeSendGrid
) -> None:
    report = _send(world, _sender(fake))
    assert report.accepted == world.with_email
    assert report.ambiguous == [] and report.failed == 0
    assert sorted(fake.sends_per_notice().values()) == [1] * world.with_email
    counts = _states(world)
    assert counts["accepted"] == world.with_email and counts["post"] == world.without_email
    # Every message id recorded is one the fake gave.
    ids = {m.message_id for m in fake.sent}
    recorded = ledger(
        world.settings, "SELECT sendgrid_message_id FROM notices WHERE channel = 'email'"
    )
    assert {r[0] for r in recorded} == ids

    # A second run sends nothing already accepted.
    again = _send(world, _sender(fake))
    assert again.candidates == 0 and again.accepted == 0
    assert len(fake.requests) == world.with_email


def test_payloads_are_valid_v3_and_carry_nothing_personal(world: World, fake: FakeSendGrid) -> None:
    _send(world, _sender(fake))
    notice_ids = {r[0] for r in ledger(world.settings)}
    assert fake.requests
    for request in fake.requests:
        body = json.loads(request.body)
        assert validate_mail(body) == [] and request.status == 202
        # Only a random notice id where SendGrid keeps data forever.
        assert set(body["custom_args"]) == {"notice_id"}
        assert body["custom_args"]["notice_id"] in notice_ids
        assert re.fullmatch(r"[0-9a-f]{32}", body["custom_args"]["notice_id"])
        assert "categories" not in body
        assert all(
            "custom_args" not in p and "substitutions" not in p for p in body["personalizations"]
        )
        assert body["tracking_settings"]["open_tracking"] == {"enable": False}
        # text/plain before text/html (SendGrid refuses the other order).
        assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    # No full IBAN of any customer, in any spelling SendGrid could receive.
    blob = b"\n".join(r.body for r in fake.requests).decode("utf-8")
    squeezed = re.sub(r"[\s\u00a0\u202f.-]", "", blob).upper()
    assert world.ibans
    for iban in world.ibans:
        assert iban not in squeezed
        assert iban[4:] not in squeezed  # nor the BBAN


def test_rate_limits_and_server_errors_are_retried(world: World, fake: FakeSendGrid) -> None:
    sleeps = Sleeps()
    fake.script(
        Fault.rate_limited(reset_epoch=1_800_000_007),
        Fault.retry_after(3),
        Fault.server_error(500),
        Fault.server_error(503),
    )
    report = _send(world, _sender(fake, sleeps, concurrency=1))
    assert report.accepted == world.with_email and report.retries == 4
    assert sleeps.waits[:2] == [7.0, 3.0]  # X-RateLimit-Reset is epoch seconds; then Retry-After
    assert all(w > 0 for w in sleeps.waits[2:])
    assert sorted(fake.sends_per_notice().values()) == [1] * world.with_email


def test_retries_are_bounded_and_leave_the_notice_to_a_later_run(
    world: World, fake: FakeSendGrid
) -> None:
    fake.script(*[Fault.server_error(500)] * 3)
    report = _send(world, _sender(fake, concurrency=1, max_attempts=3), limit=1)
    assert report.unsent == 1 and report.accepted == 0
    assert _states(world)["planned"] == world.with_email  # nothing went out: back to planned


@pytest.mark.parametrize("kind", ["bad key", "forbidden"])
def test_401_and_403_halt_the_whole_run(world: World, fake: FakeSendGrid, kind: str) -> None:
    if kind == "forbidden":
        fake.script(Fault.forbidden())
        sender = _sender(fake, concurrency=1)
    else:
        sender = _sender(fake, api_key="SG.wrong-key-0123456789")
    with pytest.raises(SendGridAuthError) as info:
        _send(world, sender)
    assert "SG." not in str(info.value) and "wrong-key" not in str(info.value)
    assert fake.sent == []
    assert len(fake.requests) <= 2  # stopped at the first refusal (one per worker in flight)
    counts = _states(world)
    assert counts["planned"] == world.with_email and counts["sending"] == 0


def test_400_marks_the_notice_failed_with_field_names_only(
    world: World, fake: FakeSendGrid
) -> None:
    report = _send(world, _sender(fake, sender_email="not-an-address"), limit=3)
    assert report.failed == 3 and fake.sent == []
    reasons = ledger(world.settings, "SELECT error_reason FROM notices WHERE state = 'failed'")
    assert [r[0] for r in reasons] == ["http 400: from.email"] * 3


def test_read_timeout_is_ambiguous_never_resent_then_resolved_from_events(
    world: World, fake: FakeSendGrid
) -> None:
    fake.script(Fault.stall(30), Fault.close())
    report = _send(world, _sender(fake, concurrency=1, timeout_s=0.5))
    fake.release()
    assert len(report.ambiguous) == 2
    assert report.accepted == world.with_email - 2
    lost = set(report.ambiguous)

    # A re-run resolves nothing (no events yet), lists them, and sends nothing again.
    again = _send(world, _sender(fake))
    assert set(again.ambiguous) == lost and again.accepted == 0
    assert all(n == 1 for n in fake.sends_per_notice().values())

    # Their events arrive through the signed webhook; the next run finds them settled.
    def apply(events: tuple[object, ...]) -> dict[str, int]:
        with open_store(world.settings) as store:
            r = record_events(store, events)  # type: ignore[arg-type]
        return {"stored": r.stored}

    with EventsServer(load_public_key(fake.public_key_b64), apply) as server:
        assert fake.post_events(server.url, fake.events(lost)) == 200
    final = _send(world, _sender(fake))
    assert final.ambiguous == [] and final.accepted == 0
    states = dict(ledger(world.settings))
    assert {states[n] for n in lost} == {"delivered"}
    assert sorted(fake.sends_per_notice().values()) == [1] * world.with_email


def test_resend_ambiguous_is_the_officers_explicit_choice(world: World, fake: FakeSendGrid) -> None:
    fake.script(Fault.close())
    first = _send(world, _sender(fake, concurrency=1), limit=1)
    assert len(first.ambiguous) == 1
    again = _send(world, _sender(fake), resend_ambiguous=True)
    assert again.accepted == world.with_email
    assert fake.sends_per_notice()[first.ambiguous[0]] == 2  # knowingly sent twice


def test_a_suspected_breach_is_refused(leakwatch_env: Path, tmp_path: Path) -> None:
    world = build_world(tmp_path, confirm=False, n=60)
    with FakeSendGrid() as fake, pytest.raises(BreachNotConfirmedError):
        _send(world, _sender(fake))
    assert ledger(world.settings) == []  # not even planned


class _Forgetful(NoticeRenderer):
    """A renderer that loses the 'what you can do' section (the check must refuse it)."""

    def render(self, ctx: NoticeContext) -> RenderedNotice:
        notice = super().render(ctx)
        cut = notice.text.find("\n", notice.text.find("Ce que vous pouvez faire"))
        return replace(notice, text=notice.text[: max(cut, 0)])


def test_an_incomplete_notice_is_failed_and_never_sent(world: World, fake: FakeSendGrid) -> None:
    report = _send(world, _sender(fake), renderer=_Forgetful())
    french = report.incomplete
    assert french > 0 and report.failed == french
    assert len(fake.sent) == world.with_email - french
    reasons = ledger(world.settings, "SELECT error_reason FROM notices WHERE state = 'failed'")
    assert all(r[0].startswith("incomplete: ") for r in reasons)


def test_dry_run_changes_nothing(world: World, fake: FakeSendGrid) -> None:
    report = _send(world, _sender(fake), dry_run=True)
    assert report.rendered == world.with_email and report.incomplete == 0
    assert fake.requests == [] and ledger(world.settings) == []


def test_the_outbox_drafts_and_a_later_sendgrid_run_sends(
    world: World, fake: FakeSendGrid, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    drafted = _send(world, OutboxSender(outbox, "securite@operateur.example"))
    assert drafted.drafted == world.with_email == len(list(outbox.glob("*.eml")))
    assert _states(world)["drafted"] == world.with_email
    sent = _send(world, _sender(fake))
    assert sent.accepted == world.with_email


def _candidates(world: World) -> list[str]:
    """The breach's notice ids in the order a run drafts them (planned first if need be)."""
    with open_store(world.settings) as store:
        ledger_mod.plan_notices(store, world.breach_id)
        rows = ledger_mod.send_candidates(store, world.breach_id, ["planned"])
    return [i for i, e in zip(rows["notice_id"], rows["email"], strict=True) if e is not None]


def _queues(store: Store) -> int:
    from matching.sql import Statement

    tables = "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'send_queue'"
    return int(store.scalar(Statement("queues", tables)))


def _fail_while_queued(store: Store, breach_id: str) -> None:
    with ledger_mod.queued_candidates(store, breach_id, ["planned"]):
        assert _queues(store) == 1
        raise ZeroDivisionError


def test_pages_give_every_candidate_once_in_order_of_sending(world: World) -> None:
    """Page after page, the candidates are those of one query joining everything, in its order
    (oldest planned first, then by customer number), whatever the page size; with a limit,
    its first; the queue is gone after the block, even when the block fails."""
    from matching.sql import Statement

    with open_store(world.settings) as store:
        ledger_mod.plan_notices(store, world.breach_id)
        expected = store.rows(
            Statement(
                "every candidate, one query",
                """
                SELECT n.notice_id FROM notices n
                JOIN customers c ON c.customer_id = n.customer_id
                JOIN exposure_rows r
                    ON r.breach_id = n.breach_id AND r.customer_no = c.customer_no
                JOIN exposure_shapes e ON e.breach_id = r.breach_id AND e.kinds = r.kinds
                    AND e.category_mask = r.category_mask
                WHERE n.channel = 'email' AND n.state = 'planned'
                ORDER BY n.planned_at, c.customer_no, n.notice_id
                """,
            )
        )
        every = ledger_mod.send_candidates(store, world.breach_id, ["planned"])
        assert every["notice_id"].to_list() == [r[0] for r in expected]
        for page_rows in (1, 3, every.height - 1):
            with ledger_mod.queued_candidates(
                store, world.breach_id, ["planned"], page_rows=page_rows
            ) as queued:
                assert queued.count == every.height
                pages = list(queued.pages())
            assert [p.height for p in pages[:-1]] == [page_rows] * (len(pages) - 1)
            assert pl.concat(pages).equals(every)
            for limit in (1, 7, every.height, every.height + 5):
                got = ledger_mod.send_candidates(
                    store, world.breach_id, ["planned"], limit, page_rows=page_rows
                )
                assert got.equals(every.head(limit))
        nothing = ledger_mod.send_candidates(store, world.breach_id, ["accepted"])
        assert nothing.height == 0 and nothing.columns == every.columns
        assert _queues(store) == 0
        with pytest.raises(ZeroDivisionError):
            _fail_while_queued(store, world.breach_id)
        assert _queues(store) == 0


def test_candidates_follow_the_order_customers_were_loaded_in_not_their_ids(
    leakwatch_env: Path, tmp_path: Path
) -> None:
    """Within one planning, notices go in the order of the customer file (customer numbers),
    which pages read as neighbours in the store, whatever the customer ids."""
    shuffled = build_world(tmp_path, shuffled=True)
    loaded = pl.read_csv(tmp_path / "customers.csv", infer_schema=False)["customer_id"].to_list()
    with open_store(shuffled.settings) as store:
        ledger_mod.plan_notices(store, shuffled.breach_id)
        candidates = ledger_mod.send_candidates(store, shuffled.breach_id, ["planned"], page_rows=7)
    got = candidates["customer_id"].to_list()
    place = {customer: n for n, customer in enumerate(loaded)}
    assert len(got) == len(set(got)) > 20
    assert got == sorted(got, key=place.__getitem__)
    assert got != sorted(got)  # the file's order is not the ids' order


def test_a_picked_notice_whose_exposure_is_gone_is_replaced_by_the_next(world: World) -> None:
    """A notice whose exposure row is gone is not a candidate: the next one takes its place,
    whatever the page size."""
    from matching.sql import Statement

    with open_store(world.settings) as store:
        ledger_mod.plan_notices(store, world.breach_id)
        every = ledger_mod.send_candidates(store, world.breach_id, ["planned"])
        gone = every["customer_id"][0]
        store.run(
            Statement(
                "drop one exposure",
                """
                DELETE FROM exposure_rows WHERE customer_no =
                    (SELECT customer_no FROM customers WHERE customer_id = $customer_id)
                """,
            ),
            {"customer_id": gone},
        )
        for page_rows in (1, 2, 5):
            got = ledger_mod.send_candidates(
                store, world.breach_id, ["planned"], 5, page_rows=page_rows
            )
            assert got.equals(every.slice(1, 5))
        assert ledger_mod.send_candidates(store, world.breach_id, ["planned"], page_rows=1).equals(
            every.slice(1)
        )
    assert gone not in got["customer_id"].to_list()


def test_candidates_carry_their_exposure_shape_in_words(world: World) -> None:
    """The candidates query names each exposure's shape by number; the words each row gets
    (matched keys, categories, risk) are those its exposure's shape holds."""
    from matching.sql import Statement

    with open_store(world.settings) as store:
        ledger_mod.plan_notices(store, world.breach_id)
        got = ledger_mod.send_candidates(store, world.breach_id, ["planned"])
        limited = ledger_mod.send_candidates(store, world.breach_id, ["planned"], 9)
        expected = store.rows(
            Statement(
                "each notice's shape in words",
                """
                SELECT n.notice_id, e.matched_on, e.categories, e.risk
                FROM notices n
                JOIN customers c ON c.customer_id = n.customer_id
                JOIN exposure_rows r
                    ON r.breach_id = n.breach_id AND r.customer_no = c.customer_no
                JOIN exposure_shapes e ON e.breach_id = r.breach_id AND e.kinds = r.kinds
                    AND e.category_mask = r.category_mask
                WHERE n.channel = 'email'
                """,
            )
        )
    words = {notice: (matched, categories, risk) for notice, matched, categories, risk in expected}
    for frame in (got, limited):
        rows = frame.select(
            "notice_id", *(pl.col(c).cast(pl.String) for c in ("matched_on", "categories", "risk"))
        ).rows()
        assert {notice: tuple(rest) for notice, *rest in rows} == {
            notice: words[notice] for notice, *_ in rows
        }
    assert len(got) == len(words) and len({w[1] for w in words.values()}) > 1


def test_kind_batches_hand_over_runs_of_one_kind_whatever_the_pages(world: World) -> None:
    """For shared SendGrid requests: every candidate once, in batches of the size asked, made
    of runs of ``unit`` notices of one kind (in ledger order within a kind) as soon as a kind
    has that many, the rest last; the same runs however the candidates are paged."""
    unit, size = 3, 6
    with open_store(world.settings) as store:
        ledger_mod.plan_notices(store, world.breach_id)
        every = ledger_mod.send_candidates(store, world.breach_id, ["planned"])
        order = {n: i for i, n in enumerate(every["notice_id"])}
        kinds = ledger_mod.KIND_COLUMNS
        of = dict(
            zip(every["notice_id"], zip(*(every[c] for c in kinds), strict=True), strict=True)
        )
        counts: dict[tuple[object, ...], int] = {}
        for kind in of.values():
            counts[kind] = counts.get(kind, 0) + 1
        assert any(n >= unit for n in counts.values()) and any(n % unit for n in counts.values())
        seen_runs = []
        for page_rows in (1, 4, every.height):
            with ledger_mod.queued_candidates(
                store, world.breach_id, ["planned"], page_rows=page_rows
            ) as queued:
                batches = list(sending._kind_batches(queued.pages(), unit, size))
            assert all(b.height == size for b in batches[:-1]) and 0 < batches[-1].height <= size
            got = pl.concat(batches)
            assert sorted(got.rows()) == sorted(every.rows())
            ids = got["notice_id"].to_list()
            for kind in counts:
                mine = [n for n in ids if of[n] == kind]
                assert mine == sorted(mine, key=order.__getitem__)
            runs = [tuple(ids[at : at + unit]) for at in range(0, len(ids), unit)]
            whole = [r for r in runs if len(r) == unit and len({of[n] for n in r}) == 1]
            for kind, n in counts.items():  # every kind's full runs are whole
                assert sum(1 for r in whole if of[r[0]] == kind) >= n // unit
            seen_runs.append(set(runs))
        assert seen_runs[0] == seen_runs[1] == seen_runs[2]


def test_planning_counts_the_notices_it_adds(world: World) -> None:
    with open_store(world.settings) as store:
        first = ledger_mod.plan_notices(store, world.breach_id)
        again = ledger_mod.plan_notices(store, world.breach_id)
    (total,) = ledger(world.settings, "SELECT count(*) FROM notices")[0]
    assert first == total > world.with_email and again == 0


@pytest.mark.parametrize("page_rows", [3, ledger_mod.PAGE_ROWS])
def test_the_outbox_drafts_and_records_chunk_after_chunk(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page_rows: int
) -> None:
    monkeypatch.setattr(sending, "DRAFT_CHUNK", 7)
    outbox = tmp_path / "outbox"
    seen: list[int] = []
    report = _send(
        world,
        OutboxSender(outbox, "securite@operateur.example"),
        progress=lambda done, total: seen.append(done),
        page_rows=page_rows,
    )
    assert report.drafted == report.rendered == world.with_email
    assert sorted(p.stem for p in outbox.glob("*.eml")) == sorted(_drafted_ids(world))
    assert _states(world)["drafted"] == world.with_email
    # One progress report per chunk, once it is recorded: every chunk, in order.
    chunks = -(-world.with_email // 7)
    assert len(seen) == chunks and seen == sorted(seen)
    assert seen[-1] == report.candidates


def _drafted_ids(world: World) -> list[str]:
    return [
        r[0]
        for r in ledger(world.settings, "SELECT notice_id FROM notices WHERE state = 'drafted'")
    ]


def test_a_chunk_that_fails_stops_the_run_with_the_chunks_before_it_recorded(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sending, "DRAFT_CHUNK", 5)
    order = _candidates(world)
    outbox = tmp_path / "outbox"
    (outbox / f"{order[12]}.eml").mkdir(parents=True)  # the third chunk cannot name one notice
    with pytest.raises(DraftError) as caught:
        _send(world, OutboxSender(outbox, "securite@operateur.example"))
    assert order[12] not in str(caught.value)
    states = dict(ledger(world.settings))
    assert [states[i] for i in order[:10]] == ["drafted"] * 10  # recorded while chunk 3 ran
    assert {states[i] for i in order[10:]} == {"planned"}
    assert set(order[:10]) <= {p.stem for p in outbox.glob("*.eml") if p.is_file()}
    again = _send(world, OutboxSender(tmp_path / "elsewhere", "securite@operateur.example"))
    assert again.drafted == world.with_email  # the rest, and the first ten drafted again


def test_outcomes_without_message_ids_keep_what_an_earlier_answer_recorded(world: World) -> None:
    ids = _candidates(world)[:3]
    with open_store(world.settings) as store:
        ledger_mod.record_outcomes(
            store,
            [(ids[0], "accepted", "sg-0", None), (ids[1], "drafted", None, None)],
            ["planned"],
        )
        # No message id, none accepted: the lighter statement, setting three columns of five.
        ledger_mod.record_outcomes(
            store,
            [(i, "failed", None, "http 400: to") for i in ids],
            ["planned", "drafted", "accepted"],
        )
    rows = ledger(
        world.settings,
        "SELECT notice_id, state, sendgrid_message_id, accepted_at IS NOT NULL, error_reason "
        "FROM notices WHERE notice_id IN ('" + "', '".join(ids) + "')",
    )
    got = {r[0]: r[1:] for r in rows}
    assert got[ids[0]] == ("failed", "sg-0", True, "http 400: to")  # its answer's id kept
    assert got[ids[1]] == ("failed", None, False, "http 400: to")
    assert got[ids[2]] == ("failed", None, False, "http 400: to")


def test_the_outbox_drafts_on_every_core_records_refusals_and_redrafts_harmlessly(
    world: World, tmp_path: Path
) -> None:
    # A name the renderer keeps but the check refuses: a link in a notice.
    con = duckdb.connect(str(world.settings.store))
    try:
        con.execute(
            "UPDATE customers SET last_name = 'www.phish' WHERE customer_id = ("
            "  SELECT min(customer_id) FROM customers WHERE email IS NOT NULL"
            "  AND customer_id IN (SELECT customer_id FROM exposures))"
        )
    finally:
        con.close()
    outbox = tmp_path / "outbox"
    seen: list[tuple[int, int]] = []
    sender = OutboxSender(outbox, "securite@operateur.example")
    first = _send(world, sender, progress=lambda done, total: seen.append((done, total)))
    assert first.incomplete == first.failed == 1 and first.incomplete_reasons == {"no_link": 1}
    assert first.drafted == world.with_email - 1 == len(list(outbox.glob("*.eml")))
    assert seen[-1][0] == seen[-1][1] == first.candidates
    (reason,) = ledger(world.settings, "SELECT error_reason FROM notices WHERE state = 'failed'")
    assert reason == ("incomplete: no_link",)
    assert "phish" not in reason[0]
    before = {p.name: p.read_bytes() for p in outbox.iterdir()}
    again = _send(world, sender)  # drafted notices are picked up again and rewritten
    assert again.drafted == first.drafted and again.failed == 0
    after = {p.name: p.read_bytes() for p in outbox.iterdir()}
    assert after.keys() == before.keys()
    states = _states(world)
    assert (states["drafted"], states["failed"]) == (world.with_email - 1, 1)
