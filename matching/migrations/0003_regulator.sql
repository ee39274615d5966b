-- Regulator notices (CNIL dossiers): one row per dossier generated, with its deadline evaluation.
CREATE SEQUENCE regulator_notice_seq;
CREATE TABLE regulator_notices (
    notice_no INTEGER PRIMARY KEY DEFAULT nextval('regulator_notice_seq'),
    breach_id VARCHAR NOT NULL,
    phase VARCHAR NOT NULL,
    generated_at TIMESTAMPTZ NOT NULL,
    due_at TIMESTAMPTZ,
    on_time BOOLEAN NOT NULL,
    late_reason VARCHAR,
    dossier_sha256 VARCHAR NOT NULL,
    path VARCHAR NOT NULL
);
