-- Delivery events are recorded within the places of their notices (notices.seq, schema 11).
-- An event names its notice by its random id only: storing a batch of 1 000 events read every
-- notice (to skip events of unknown notices) and every stored event (to skip those already
-- stored), and folding and writing the states read every notice again, 0.40-0.72 s a batch on
-- the 20 M store (5.68 M notices). matching/ledger.py now finds a batch's notices within the
-- places of the requests its events answer, then stores, folds and writes within those places.
--
-- sent_messages: the range of places of each SendGrid request's notices, by its X-Message-Id up
-- to the first '.' (what each of its events' sg_message_id starts with: ledger.message_key),
-- written when the request's answer is recorded. Requests answered before this version are known from their
-- notices' message ids. A request's range only narrows where its events' notices are looked
-- for: an event whose notice is not there is looked up over every place.
CREATE TABLE sent_messages (
    message_id VARCHAR PRIMARY KEY,
    first_place UBIGINT NOT NULL,
    last_place UBIGINT NOT NULL
);
-- (string_split, not split_part: DuckDB 2.0 fails to bind split_part compared with a value
-- when a column's statistics say it is all NULL, "BindBuiltinScalarFunction did not return a
-- BoundFunctionExpression", as in a store that has sent nothing.)
INSERT INTO sent_messages
SELECT string_split(sendgrid_message_id, '.')[1], min(seq), max(seq)
FROM notices
WHERE string_split(sendgrid_message_id, '.')[1] <> ''
GROUP BY 1;

-- Each event carries its notice's place (seq), so that the check for an event already stored
-- reads only the row groups of a batch's places. Existing events get their notice's place and
-- are stored in place order (new ones follow in the order they arrive, close to the order of
-- sending); an event whose notice is gone (none is ever deleted, so far) gets place 0, which
-- no notice holds. The table is rebuilt: DuckDB adds no NOT NULL to a column filled in the
-- same transaction.
CREATE TABLE delivery_events_placed (
    sg_event_id VARCHAR PRIMARY KEY,
    notice_id VARCHAR NOT NULL,
    event VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    raw_reason_code VARCHAR,
    sg_message_id VARCHAR,
    seq UBIGINT NOT NULL
);
INSERT INTO delivery_events_placed
SELECT d.sg_event_id, d.notice_id, d.event, d.ts, d.received_at, d.raw_reason_code,
       d.sg_message_id, coalesce(n.seq, 0)
FROM delivery_events d LEFT JOIN notices n USING (notice_id)
ORDER BY coalesce(n.seq, 0), d.ts, d.sg_event_id;

DROP TABLE delivery_events;
ALTER TABLE delivery_events_placed RENAME TO delivery_events;
