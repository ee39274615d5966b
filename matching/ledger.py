"""The notice ledger: one notice per exposed customer and breach, planned once, then tracked."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import polars as pl

from matching.sql import Statement
from matching.store import Store, StoreError

__all__ = [
    "EVERY_PLACE",
    "KIND_COLUMNS",
    "PAGE_ROWS",
    "ROW_GROUP",
    "Candidates",
    "Places",
    "delivery_counts",
    "fallback_rows",
    "fold_input",
    "insert_events",
    "mark_interrupted_ambiguous",
    "mark_notices",
    "mark_sending",
    "message_key",
    "notice_places",
    "notice_states",
    "place_clusters",
    "places_of",
    "plan_notices",
    "plan_notices_in_transaction",
    "queued_candidates",
    "record_outcomes",
    "send_candidates",
    "unresolved_notices",
    "write_folded",
]

# The candidates' columns a notice's words follow from (with which of the name and hints it
# has): rows alike in these share their notices' words.
KIND_COLUMNS = ("language", "risk", "matched_on", "categories")

# A planning places its notices after the last place in use, in customer number order, and
# stores them in that order (the order of sending: see the queue below).
_PLAN = Statement(
    "plan notices",
    """
    INSERT INTO notices (notice_id, breach_id, customer_id, channel, state, planned_at,
                         updated_at, seq)
    SELECT replace(uuid()::VARCHAR, '-', ''), $breach_id, c.customer_id,
           CASE WHEN c.email IS NULL THEN 'post' ELSE 'email' END, 'planned', $now, $now,
           (SELECT coalesce(max(seq), 0) FROM notices)
               + row_number() OVER (ORDER BY c.customer_no)
    FROM exposure_rows e JOIN customers c USING (customer_no)
    WHERE e.breach_id = $breach_id
      AND NOT EXISTS (SELECT 1 FROM notices n
                      WHERE n.breach_id = $breach_id AND n.customer_id = c.customer_id)
    ORDER BY c.customer_no
    """,
)
_MARK = Statement(
    "mark notices",
    """
    UPDATE notices SET state = $state, updated_at = $now
    WHERE notice_id IN (SELECT notice_id FROM marked)
    """,
)
_STATES = Statement(
    "notices by state",
    "SELECT channel, state, count(*) FROM notices WHERE breach_id = $breach_id "
    "GROUP BY ALL ORDER BY ALL",
)


def plan_notices(store: Store, breach_id: str) -> int:
    """Plan a notice for every exposed customer that has none yet; returns how many were added."""
    with store.transaction():
        return plan_notices_in_transaction(store, breach_id)


def plan_notices_in_transaction(store: Store, breach_id: str) -> int:
    """:func:`plan_notices` inside the caller's transaction (a dry run rolls it back).

    DuckDB answers an INSERT with the count of rows it inserted: the new notice ids are not
    fetched (5.68 M strings at national scale).
    """
    return int(store.scalar(_PLAN, {"breach_id": breach_id, "now": datetime.now(UTC)}))


def mark_notices(store: Store, notice_ids: Sequence[str], state: str) -> None:
    marked = pl.DataFrame({"notice_id": list(notice_ids)}, schema={"notice_id": pl.String})
    with store.transaction(), store.registered("marked", marked):
        store.run(_MARK, {"state": state, "now": datetime.now(UTC)})


def notice_states(store: Store, breach_id: str) -> dict[tuple[str, str], int]:
    return {(ch, st): int(n) for ch, st, n in store.rows(_STATES, {"breach_id": breach_id})}


# -- sending with exactly-once and proof of delivery (issue 4, parts 4-6) ---------------------
# Record-before-send: a batch goes ``sending`` in one committed transaction before any request;
# mark-after-send: the answers go in one transaction. Every statement guards on the state it
# expects, so a stale caller cannot move a notice that something else already moved.

# The candidates come a page at a time: at national scale, reading them as one frame peaked at
# 3.15-3.33 GB (SendGrid's kind order) and 4.46-4.57 GB (ledger order) for the 20 M store's
# 5.41 M, growing with them (docs/scale-history.md). A run first queues them in a temporary
# table (_QUEUE): each notice's number in the order of sending (its place, notices.seq: oldest
# planned first, then by customer number, the order customers were loaded in), its place, its
# customer's number and its exposure's shape, 4.4-5.6 s and
# DuckDB's own memory for the 5.41 M. A page is then the next PAGE_ROWS numbers joined with
# their customers by number: consecutive customer numbers, so DuckDB's join skips the
# customers' row groups outside them (0.19 s a page of 250 000). Picking pages straight from
# the notices in customer-id order instead cost 0.7-1.1 s a page when customers had been
# loaded in id order, 4.3-5.9 s when not (their ids scattered over the whole table). Each row
# names its exposure's shape by number (kinds, category_mask); _with_shapes gives the shape's
# words from the few shapes of the breach (_SHAPES): with its matched keys and categories as
# words on every row, the 5.41 M candidates took a 1.18 GB frame against 797 MB.
PAGE_ROWS = 250_000
_QUEUE = Statement(
    "queue the notices to send",
    """
    CREATE OR REPLACE TEMP TABLE send_queue AS
    SELECT row_number() OVER (ORDER BY n.seq) AS pos, n.seq,
           n.notice_id, n.customer_id, n.channel, n.state, c.customer_no, r.kinds,
           r.category_mask
    FROM notices n
    JOIN customers c ON c.customer_id = n.customer_id
    JOIN exposure_rows r ON r.breach_id = n.breach_id AND r.customer_no = c.customer_no
    JOIN exposure_shapes e
        ON e.breach_id = r.breach_id AND e.kinds = r.kinds AND e.category_mask = r.category_mask
    WHERE n.breach_id = $breach_id AND n.channel = 'email' AND list_contains($states, n.state)
    ORDER BY pos
    LIMIT $limit
    """,
)
_QUEUED = Statement("count the queued notices", "SELECT count(*) FROM send_queue")
_QUEUE_PAGE = Statement(
    "a page of queued notices with their context",
    """
    SELECT q.notice_id, q.customer_id, q.channel, q.state, c.language, c.first_name,
           c.last_name, c.email, q.kinds, q.category_mask, c.iban_hint, c.phone_hint, q.seq
    FROM send_queue q
    JOIN customers c ON c.customer_no = q.customer_no
    WHERE q.pos > $after AND q.pos <= $after + $rows
    ORDER BY q.pos
    """,
)
_DROP_QUEUE = Statement("drop the queue", "DROP TABLE IF EXISTS send_queue")
_SHAPES = Statement(
    "exposure shapes of a breach",
    """
    SELECT kinds, category_mask, matched_on, categories, risk
    FROM exposure_shapes
    WHERE breach_id = $breach_id
    """,
)
_CLAIM = Statement(
    "mark notices sending",
    """
    UPDATE notices SET state = 'sending', attempts = attempts + 1, batch_id = $batch_id,
                       sent_at = $now, updated_at = $now, error_reason = NULL
    WHERE notice_id IN (SELECT notice_id FROM claimed) AND list_contains($from_states, state)
      AND seq BETWEEN $first AND $last
    RETURNING notice_id
    """,
)
_OUTCOMES = Statement(
    "record send outcomes",
    """
    UPDATE notices AS n
    SET state = o.state,
        sendgrid_message_id = coalesce(o.message_id, n.sendgrid_message_id),
        accepted_at = CASE WHEN o.state = 'accepted' THEN $now ELSE n.accepted_at END,
        error_reason = o.reason,
        updated_at = $now
    FROM outcomes AS o
    WHERE n.notice_id = o.notice_id AND list_contains($from_states, n.state)
      AND n.seq BETWEEN $first AND $last
    """,
)
# Outcomes without a message id and none accepted (drafts, refusals, notices put back): the
# other two columns would keep their values, so they are not written. Once rows of the same
# row groups have been updated before, DuckDB's update costs per column it sets: a second
# chunk of 20 000 drafts took 0.37-0.38 s setting three columns against 0.57-0.61 s setting
# five (the first chunk, 0.03 s either way), before the statements read only the batch's
# places.
_OUTCOME_STATES = Statement(
    "record outcome states",
    """
    UPDATE notices AS n
    SET state = o.state, error_reason = o.reason, updated_at = $now
    FROM outcomes AS o
    WHERE n.notice_id = o.notice_id AND list_contains($from_states, n.state)
      AND n.seq BETWEEN $first AND $last
    """,
)
# Each SendGrid request answered, by its message key (message_key), with the range of its
# notices' places: its events are looked for there (notice_places). A key recorded again
# (never, from SendGrid) widens its range.
_SENT_MESSAGES = Statement(
    "record the places of sent messages",
    """
    INSERT INTO sent_messages
    SELECT s.message_id, min(n.seq), max(n.seq)
    FROM sent AS s JOIN notices AS n USING (notice_id)
    WHERE n.seq BETWEEN $first AND $last
    GROUP BY 1
    ON CONFLICT DO UPDATE SET first_place = least(first_place, excluded.first_place),
                              last_place = greatest(last_place, excluded.last_place)
    """,
)
_UNRESOLVED = Statement(
    "unresolved notices",
    """
    SELECT notice_id FROM notices
    WHERE breach_id = $breach_id AND state IN ('sending', 'ambiguous')
    ORDER BY notice_id
    """,
)
_TO_AMBIGUOUS = Statement(
    "mark sending notices ambiguous",
    """
    UPDATE notices SET state = 'ambiguous', updated_at = $now,
           error_reason = coalesce(error_reason, 'interrupted after being marked sending')
    WHERE breach_id = $breach_id AND state = 'sending'
    """,
)
_MESSAGE_PLACES = Statement(
    "places of the messages events answer",
    """
    SELECT first_place, last_place FROM sent_messages
    WHERE message_id IN (SELECT message_id FROM asked)
    """,
)
_NOTICE_PLACES = Statement(
    "places of the notices events name",
    """
    SELECT notice_id, seq FROM notices
    WHERE notice_id IN (SELECT notice_id FROM asked) AND seq BETWEEN $first AND $last
    """,
)

# Storing events, each with its notice's place (from the join). A stored event has its
# notice's place, so an earlier event of the notice, or the same event again under a new id,
# is within the batch's places whenever the notice is. So is the same event id, since an id
# names one event of one notice: ids are looked for within $id_first..$id_last, the batch's
# places, or every place (EVERY_PLACE) for a call that an id stored under a notice elsewhere
# (never from SendGrid) made break the table's key (insert_events). ON CONFLICT DO NOTHING
# would skip such an id by the key, but DuckDB 2.0 runs it as a join reading every stored
# event's id (0.04-0.07 s at 1.9 M events).
_INSERT_EVENTS = Statement(
    "store delivery events",
    """
    INSERT INTO delivery_events
    SELECT i.sg_event_id, i.notice_id, i.event, i.ts, $now, i.reason_code, i.sg_message_id,
           n.seq
    FROM incoming i JOIN notices n ON n.notice_id = i.notice_id
    WHERE n.seq BETWEEN $first AND $last
      AND NOT EXISTS (SELECT 1 FROM delivery_events d
                      WHERE d.seq BETWEEN $id_first AND $id_last
                        AND d.sg_event_id = i.sg_event_id)
      AND NOT EXISTS (SELECT 1 FROM delivery_events d
                      WHERE d.seq BETWEEN $first AND $last AND d.notice_id = i.notice_id
                        AND d.event = i.event AND d.ts = i.ts)
    RETURNING notice_id
    """,
)
_FOLD_INPUT = Statement(
    "notices and their events",
    """
    SELECT n.notice_id, n.state, n.accepted_at IS NOT NULL AS accepted, d.event, d.ts,
           d.sg_message_id
    FROM notices n
    LEFT JOIN (SELECT notice_id, event, ts, sg_message_id FROM delivery_events
               WHERE seq BETWEEN $first AND $last) d USING (notice_id)
    WHERE n.notice_id IN (SELECT notice_id FROM touched) AND n.seq BETWEEN $first AND $last
    ORDER BY n.notice_id, d.ts
    """,
)
_WRITE_FOLDED = Statement(
    "record delivery states",
    """
    UPDATE notices AS n
    SET state = f.state, last_event = f.last_event, last_event_at = f.last_event_at,
        delivered_at = f.delivered_at,
        sendgrid_message_id = coalesce(n.sendgrid_message_id, f.message_id),
        error_reason = CASE WHEN f.state = n.state THEN n.error_reason ELSE NULL END,
        updated_at = $now
    FROM folded AS f
    WHERE n.notice_id = f.notice_id AND n.state = f.was AND n.seq BETWEEN $first AND $last
    """,
)
_DELIVERY_COUNTS = Statement(
    "delivery counts",
    """
    SELECT n.channel, n.state,
           count(*) AS n,
           count(*) FILTER (WHERE n.state = 'delivered' AND EXISTS (
               SELECT 1 FROM delivery_events d WHERE d.notice_id = n.notice_id
                 AND d.event IN ('bounce', 'blocked', 'dropped'))) AS late_bounces
    FROM notices n WHERE n.breach_id = $breach_id
    GROUP BY ALL ORDER BY ALL
    """,
)
_FALLBACK = Statement(
    "notices for a fallback channel",
    """
    SELECT n.customer_id, n.notice_id,
           CASE
             WHEN n.channel = 'post' THEN 'no e-mail address'
             WHEN n.state IN ('bounced', 'dropped')
               THEN n.state || coalesce(': ' || (
                   SELECT d.raw_reason_code FROM delivery_events d
                   WHERE d.notice_id = n.notice_id
                     AND d.event IN ('bounce', 'blocked', 'dropped')
                   ORDER BY d.ts LIMIT 1), '')
             ELSE 'bounce after delivery'
           END AS reason
    FROM notices n
    WHERE n.breach_id = $breach_id
      AND (n.channel = 'post' OR n.state IN ('bounced', 'dropped')
           OR (n.state = 'delivered' AND EXISTS (
               SELECT 1 FROM delivery_events d WHERE d.notice_id = n.notice_id
                 AND d.event IN ('bounce', 'blocked', 'dropped'))))
    ORDER BY reason, n.customer_id
    """,
)

_OUTCOME_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "notice_id": pl.String,
    "state": pl.String,
    "message_id": pl.String,
    "reason": pl.String,
}
_EVENT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "sg_event_id": pl.String,
    "notice_id": pl.String,
    "event": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "reason_code": pl.String,
    "sg_message_id": pl.String,
}
_ASKED_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "notice_id": pl.String,
    "message_id": pl.String,
}
_FOLDED_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "notice_id": pl.String,
    "was": pl.String,
    "state": pl.String,
    "last_event": pl.String,
    "last_event_at": pl.Datetime("us", "UTC"),
    "delivered_at": pl.Datetime("us", "UTC"),
    "message_id": pl.String,
}


class Candidates:
    """A run's candidates, queued in the store (:func:`queued_candidates`): how many, and
    their pages."""

    def __init__(self, store: Store, breach_id: str, count: int, page_rows: int) -> None:
        self._store = store
        self._breach_id = breach_id
        self.count = count
        self._page_rows = page_rows

    def pages(self) -> Iterator[pl.DataFrame]:
        """The candidates in order of sending, ``page_rows`` at a time (the first page even
        empty, a frame with the columns). Each page is read when the one before is consumed,
        so the caller records outcomes in between, with no query open."""
        shapes = self._store.frame(_SHAPES, {"breach_id": self._breach_id})
        after = 0
        while True:
            params = {"after": after, "rows": self._page_rows}
            page = _with_shapes(shapes, self._store.frame(_QUEUE_PAGE, params))
            if page.height or not after:
                yield page
            after += self._page_rows
            if after >= self.count:
                return


@contextmanager
def queued_candidates(
    store: Store,
    breach_id: str,
    states: Sequence[str],
    limit: int | None = None,
    *,
    page_rows: int = PAGE_ROWS,
) -> Iterator[Candidates]:
    """E-mail notices in one of ``states``, at most ``limit``, queued for the block in the
    order of sending, their places (notices.seq): oldest planned first, then by customer number
    (the order customers were loaded in). Each is given as it was when queued; the queue is
    dropped when the block ends. One queue per store connection at a time: a second block
    would replace the first's.
    """
    params = {"breach_id": breach_id, "states": list(states), "limit": limit or 2**62}
    store.run(_QUEUE, params)
    try:
        yield Candidates(store, breach_id, int(store.scalar(_QUEUED)), page_rows)
    except BaseException:
        with suppress(StoreError):  # a failed statement may have aborted the transaction
            store.run(_DROP_QUEUE)
        raise
    store.run(_DROP_QUEUE)


def send_candidates(
    store: Store,
    breach_id: str,
    states: Sequence[str],
    limit: int | None = None,
    *,
    page_rows: int = PAGE_ROWS,
) -> pl.DataFrame:
    """The candidates (:func:`queued_candidates`) as one frame: for a bounded ``limit`` or a
    small store."""
    with queued_candidates(store, breach_id, states, limit, page_rows=page_rows) as queued:
        return pl.concat(queued.pages())


_CANDIDATE_COLUMNS = (
    "notice_id", "customer_id", "channel", "state", "language", "first_name", "last_name",
    "email", "matched_on", "categories", "risk", "iban_hint", "phone_hint", "seq",
)  # fmt: skip


def _with_shapes(shapes: pl.DataFrame, frame: pl.DataFrame) -> pl.DataFrame:
    """The candidates with their shape's words in place of its numbers: matched keys,
    categories and risk as enums (a code a row, their words once, the same on every page of a
    breach), ordered as words are."""
    number = pl.col("kinds").cast(pl.UInt32) * 65536 + pl.col("category_mask").cast(pl.UInt32)
    numbers = shapes.select(number.alias("n"))["n"].to_list()
    index = frame.select(
        number.replace_strict(numbers, list(range(len(numbers))), return_dtype=pl.UInt32)
    ).to_series()
    words = {
        column: pl.Series(column, values, dtype=pl.Enum(sorted(set(values)))).gather(index)
        for column in ("matched_on", "categories", "risk")
        for values in [shapes[column].to_list()]
    }
    return frame.with_columns(**words).select(_CANDIDATE_COLUMNS)


# A batch's notices lie within the range of their places (notices.seq): the first and the
# last, as ``places_of`` gives them from its candidates. Given that range, claiming or
# recording the batch reads only the row groups that hold it; without it, every notice. On
# the 20 M store (5.68 M notices) a claim of 4 000 took 0.25-0.34 s reading every notice,
# 0.14 s within a page's range (SendGrid's batches of one kind) and 0.011-0.028 s within
# consecutive places; recording a drafted chunk of 20 000, 0.25-0.31 s of CPU against
# 0.04-0.06 s.
Places = tuple[int, int]
EVERY_PLACE: Places = (0, 2**63 - 1)


def places_of(candidates: pl.DataFrame) -> Places:
    """The range of places of ``candidates`` (rows of :func:`queued_candidates`' pages)."""
    if candidates.height == 0:
        return EVERY_PLACE
    seq = candidates["seq"]
    return int(seq.min()), int(seq.max())  # type: ignore[arg-type]


def mark_sending(
    store: Store,
    notice_ids: Sequence[str],
    batch_id: str,
    from_states: Sequence[str],
    places: Places = EVERY_PLACE,
) -> list[str]:
    """Record-before-send: mark a batch ``sending`` in one committed transaction; returns the
    notices claimed. ``places``: a range holding every notice of the batch (one outside it is
    not claimed)."""
    claimed = pl.DataFrame({"notice_id": list(notice_ids)}, schema={"notice_id": pl.String})
    with store.transaction(), store.registered("claimed", claimed):
        rows = store.rows(
            _CLAIM,
            {
                "batch_id": batch_id,
                "now": datetime.now(UTC),
                "from_states": list(from_states),
                "first": places[0],
                "last": places[1],
            },
        )
    return [r[0] for r in rows]


def record_outcomes(
    store: Store,
    outcomes: Sequence[tuple[str, str, str | None, str | None]],
    from_states: Sequence[str],
    places: Places = EVERY_PLACE,
) -> None:
    """Mark-after-send: (notice_id, state, message_id, reason) for a batch, in one transaction.
    ``places``: a range holding every notice of the batch (one outside it is not recorded).

    Each message id's range of places goes into ``sent_messages`` in the same transaction, so
    its delivery events are looked up there (:func:`notice_places`)."""
    if not outcomes:
        return
    frame = pl.DataFrame(list(outcomes), schema=_OUTCOME_SCHEMA, orient="row")
    states_only = all(o[2] is None and o[1] != "accepted" for o in outcomes)
    range_ = {"first": places[0], "last": places[1]}
    with store.transaction(), store.registered("outcomes", frame):
        store.run(
            _OUTCOME_STATES if states_only else _OUTCOMES,
            {"now": datetime.now(UTC), "from_states": list(from_states), **range_},
        )
        sent = [(o[0], key) for o in outcomes if (key := message_key(o[2])) is not None]
        if sent:
            keys = pl.DataFrame(sent, schema=_ASKED_SCHEMA, orient="row")
            with store.registered("sent", keys):
                store.run(_SENT_MESSAGES, range_)


def unresolved_notices(store: Store, breach_id: str) -> list[str]:
    """Notices left ``sending`` (a crash) or ``ambiguous`` (a lost answer)."""
    return [r[0] for r in store.rows(_UNRESOLVED, {"breach_id": breach_id})]


def mark_interrupted_ambiguous(store: Store, breach_id: str) -> None:
    """Whatever is still ``sending`` once events are applied was interrupted: ambiguous."""
    with store.transaction():
        store.run(_TO_AMBIGUOUS, {"breach_id": breach_id, "now": datetime.now(UTC)})


# -- delivery events within places (schema 12) ------------------------------------------------
# An event names its notice by its random id only, and SendGrid posts several per notice
# (processed, delivered...): more than 11 M for the 20 M store's 5.68 M notices. Recording a
# batch of 1 000 read every notice and every stored event, 0.40-0.72 s, 1 500-2 500 events a
# second: hours behind SendGrid's posts at national scale. A batch's notices are now found
# within the places of the requests its events answer (sent_messages, written with each
# answer), then its events are stored, folded and written per cluster of nearby places, each
# statement reading only the row groups of its cluster (events carry their notice's place).
# An event whose request is unknown (its answer was lost) or holds no such notice is looked up
# over every place: slower, never lost.

# DuckDB's rows per row group: places closer than this share row groups or nearly, so one
# statement over both reads little more than two would.
ROW_GROUP = 122_880


def place_clusters(ranges: Iterable[Places], gap: int = ROW_GROUP) -> list[Places]:
    """``ranges`` merged into clusters of nearby places, in order of places: a range that
    starts more than ``gap`` places after the current cluster's end starts the next one.

    A webhook call may answer requests far apart (a late bounce beside fresh deliveries): one
    range over both would read every row group between them."""
    clusters: list[list[int]] = []
    for first, last in sorted(ranges):
        if clusters and first <= clusters[-1][1] + gap:
            clusters[-1][1] = max(clusters[-1][1], last)
        else:
            clusters.append([first, last])
    return [(first, last) for first, last in clusters]


def message_key(message_id: str | None) -> str | None:
    """A SendGrid message id up to its first '.': a request's ``X-Message-Id`` as each of its
    events' ``sg_message_id`` starts with it (``<X-Message-Id>.<filter>...``). Migration 0012
    applies the same rule to the message ids notices held."""
    key = (message_id or "").split(".", 1)[0]
    return key or None


def notice_places(store: Store, asked: Sequence[tuple[str, str | None]]) -> dict[str, int]:
    """The place of each notice this ledger knows among ``asked`` (notice_id, sg_message_id).

    Looked up first within the places of the requests the message ids name (clustered), then
    over every place for those not found there: no message id, an unknown one (a request
    whose answer was lost, or answered before schema 12 and not kept by its notices), or one
    whose request does not hold that notice. A message id only narrows the search: the place
    always comes from the notice itself."""
    if not asked:
        return {}
    keyed = [(notice_id, message_key(message_id)) for notice_id, message_id in asked]
    frame = pl.DataFrame(keyed, schema=_ASKED_SCHEMA, orient="row")
    found: dict[str, int] = {}
    with store.registered("asked", frame):
        ranges = [(int(a), int(b)) for a, b in store.rows(_MESSAGE_PLACES)]
        for first, last in place_clusters(ranges):
            found.update(store.rows(_NOTICE_PLACES, {"first": first, "last": last}))
    rest = [pair for pair in keyed if pair[0] not in found]
    if rest:
        with store.registered("asked", pl.DataFrame(rest, schema=_ASKED_SCHEMA, orient="row")):
            every = {"first": EVERY_PLACE[0], "last": EVERY_PLACE[1]}
            found.update(store.rows(_NOTICE_PLACES, every))
    return {notice_id: int(seq) for notice_id, seq in found.items()}


def insert_events(
    store: Store,
    events: Sequence[tuple[str, str, str, datetime, str | None, str | None]],
    places: Places = EVERY_PLACE,
    *,
    ids_everywhere: bool = False,
) -> list[str]:
    """Store new events (sg_event_id, notice_id, event, ts, reason_code, sg_message_id), each
    with its notice's place.

    Skips events already stored (same ``sg_event_id``, or same notice, event and time: a
    re-delivery under a new id) and events of notices this ledger does not know, or not
    within ``places``. Returns the notice ids of the events stored. Call inside a transaction
    with :func:`write_folded`.

    Event ids are looked for among the stored events within ``places`` (every stored event
    with ``ids_everywhere``): an id stored under a notice outside them raises a
    :class:`StoreError` of kind ``ConstraintException`` (the table's key), and the transaction
    must be rolled back.
    """
    if not events:
        return []
    frame = pl.DataFrame(
        [(e[0], e[1], e[2], e[3], e[4], e[5]) for e in events],
        schema=_EVENT_SCHEMA,
        orient="row",
    )
    ids = EVERY_PLACE if ids_everywhere else places
    params = {
        "now": datetime.now(UTC),
        "first": places[0],
        "last": places[1],
        "id_first": ids[0],
        "id_last": ids[1],
    }
    with store.registered("incoming", frame):
        return [r[0] for r in store.rows(_INSERT_EVENTS, params)]


def fold_input(
    store: Store, notice_ids: Sequence[str], places: Places = EVERY_PLACE
) -> list[tuple[Any, ...]]:
    """(notice_id, state, accepted, event, ts, sg_message_id) rows, events in time order, of
    the notices within ``places``."""
    touched = pl.DataFrame({"notice_id": list(notice_ids)}, schema={"notice_id": pl.String})
    with store.registered("touched", touched):
        return store.rows(_FOLD_INPUT, {"first": places[0], "last": places[1]})


def write_folded(
    store: Store,
    folded: Sequence[
        tuple[str, str, str, str | None, datetime | None, datetime | None, str | None]
    ],
    places: Places = EVERY_PLACE,
) -> None:
    """(notice_id, was, state, last_event, last_event_at, delivered_at, message_id) per notice.

    A row applies only if the notice is still in state ``was`` (no lost update) and within
    ``places``.
    """
    if not folded:
        return
    frame = pl.DataFrame(list(folded), schema=_FOLDED_SCHEMA, orient="row")
    params = {"now": datetime.now(UTC), "first": places[0], "last": places[1]}
    with store.registered("folded", frame):
        store.run(_WRITE_FOLDED, params)


def delivery_counts(store: Store, breach_id: str) -> dict[str, int]:
    """Counts for the dossier: e-mail notices by state, notified, delivered, fallback needs.

    ``notified`` counts notices SendGrid accepted (accepted or any later delivery state);
    ``fallback`` counts bounced and dropped notices, late bounces after a delivery, and
    customers without an e-mail address (``post``).
    """
    counts: dict[str, int] = dict.fromkeys(
        ("planned", "drafted", "sending", "ambiguous", "accepted", "deferred", "delivered",
         "bounced", "dropped", "failed"),
        0,
    )  # fmt: skip
    post = late = 0
    for channel, state, n, late_bounces in store.rows(_DELIVERY_COUNTS, {"breach_id": breach_id}):
        if channel == "post":
            post += int(n)
            continue
        counts[state] = counts.get(state, 0) + int(n)
        late += int(late_bounces)
    counts["post"] = post
    counts["late_bounce"] = late
    counts["notified"] = sum(
        counts[s] for s in ("accepted", "deferred", "delivered", "bounced", "dropped")
    )
    counts["fallback"] = counts["bounced"] + counts["dropped"] + late + post
    return counts


def fallback_rows(store: Store, breach_id: str) -> pl.DataFrame:
    """customer_id, notice_id, reason for every customer to reach by another channel."""
    return store.frame(_FALLBACK, {"breach_id": breach_id})
