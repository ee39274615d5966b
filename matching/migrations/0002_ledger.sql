-- The notice ledger for sending with exactly-once and proof of delivery (issue 4, parts 4-6).
-- States: planned, drafted (in the local outbox), sending (recorded before the API call),
-- accepted (SendGrid answered 202), deferred, delivered, bounced, dropped (from events),
-- ambiguous (the request went out, its answer was lost), failed (refused before sending).
ALTER TABLE notices ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE notices ADD COLUMN sendgrid_message_id VARCHAR;
ALTER TABLE notices ADD COLUMN sent_at TIMESTAMPTZ;
ALTER TABLE notices ADD COLUMN accepted_at TIMESTAMPTZ;
ALTER TABLE notices ADD COLUMN delivered_at TIMESTAMPTZ;
ALTER TABLE notices ADD COLUMN last_event VARCHAR;
ALTER TABLE notices ADD COLUMN last_event_at TIMESTAMPTZ;
ALTER TABLE notices ADD COLUMN batch_id VARCHAR;
ALTER TABLE notices ADD COLUMN error_reason VARCHAR;

-- Delivery events as SendGrid's Event Webhook reports them, non-personal fields only: no
-- e-mail address, IP address, user agent or free-text server response is ever stored.
CREATE TABLE delivery_events (
    sg_event_id VARCHAR PRIMARY KEY,
    notice_id VARCHAR NOT NULL,
    event VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    raw_reason_code VARCHAR,
    sg_message_id VARCHAR
);
