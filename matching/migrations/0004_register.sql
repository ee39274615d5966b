-- The breach register (GDPR art. 33(5)): each breach's facts, effects, decisions with their
-- reasons and remedial actions. One row per revision, never updated, so the register keeps its
-- history; a new revision is written only when the entry changed. Counts only, no identifier.
CREATE SEQUENCE register_seq;
CREATE TABLE breach_register (
    revision INTEGER PRIMARY KEY DEFAULT nextval('register_seq'),
    breach_id VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    facts JSON NOT NULL,
    effects JSON NOT NULL,
    decisions JSON NOT NULL,
    remedial_actions JSON NOT NULL,
    content_sha256 VARCHAR NOT NULL
);
