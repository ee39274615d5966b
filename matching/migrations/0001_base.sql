-- The base schema: customers, breaches, artifacts, leak keys, exposures, notices.
CREATE TYPE key_kind AS ENUM ('email', 'iban', 'phone');

CREATE TABLE meta (name VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);

CREATE TABLE customers (
    customer_id VARCHAR NOT NULL,
    email VARCHAR,
    first_name VARCHAR,
    last_name VARCHAR,
    language VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    contract_end DATE,
    iban_hint VARCHAR,
    phone_hint VARCHAR,
    fingerprint BLOB NOT NULL,
    key_id VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE customer_keys (
    customer_id VARCHAR NOT NULL,
    kind key_kind NOT NULL,
    key BLOB NOT NULL,
    key_id VARCHAR NOT NULL
);

CREATE SEQUENCE load_seq;
CREATE TABLE customer_loads (
    load_no INTEGER PRIMARY KEY,
    file VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_rejected BIGINT NOT NULL,
    inserted BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    unchanged BIGINT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE customer_rejects (
    load_no INTEGER NOT NULL,
    row BIGINT,
    "column" VARCHAR,
    reason VARCHAR NOT NULL
);

CREATE TABLE breaches (
    breach_id VARCHAR PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    status VARCHAR NOT NULL DEFAULT 'suspected',
    regime VARCHAR NOT NULL,
    aware_at TIMESTAMPTZ,
    confirmed_at TIMESTAMPTZ,
    description JSON
);

CREATE SEQUENCE artifact_seq;
CREATE TABLE artifacts (
    artifact_no INTEGER PRIMARY KEY,
    breach_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    inner_path VARCHAR,
    sha256 VARCHAR NOT NULL,
    size BIGINT NOT NULL,
    media_type VARCHAR NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    telegram JSON,
    state VARCHAR NOT NULL,
    error VARCHAR,
    parser VARCHAR,
    rows_read BIGINT NOT NULL DEFAULT 0,
    rows_rejected BIGINT NOT NULL DEFAULT 0,
    finished_at TIMESTAMPTZ
);

CREATE TABLE leak_tables (
    artifact_no INTEGER NOT NULL,
    table_no INTEGER NOT NULL,
    table_name VARCHAR NOT NULL,
    parser VARCHAR NOT NULL,
    encoding VARCHAR,
    has_header BOOLEAN NOT NULL,
    roles JSON NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_rejected BIGINT NOT NULL
);

-- One row per (leaked row, valid identifier). categories: the row's category bit mask.
CREATE TABLE leak_keys (
    artifact_no INTEGER NOT NULL,
    table_no INTEGER NOT NULL,
    row UBIGINT NOT NULL,
    kind key_kind NOT NULL,
    key BLOB NOT NULL,
    categories USMALLINT NOT NULL,
    key_id VARCHAR NOT NULL
);

-- Leaked rows counted by category mask, for records-per-category figures.
CREATE TABLE leak_row_counts (
    artifact_no INTEGER NOT NULL,
    table_no INTEGER NOT NULL,
    categories USMALLINT NOT NULL,
    rows BIGINT NOT NULL
);

-- Refused records (column NULL) and refused values (column set): where and why, never what.
CREATE TABLE rejects (
    artifact_no INTEGER NOT NULL,
    table_no INTEGER,
    row UBIGINT,
    "column" VARCHAR,
    reason VARCHAR NOT NULL
);

CREATE TABLE exposures (
    breach_id VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    matched_on VARCHAR NOT NULL,
    categories VARCHAR NOT NULL,
    category_mask USMALLINT NOT NULL,
    risk VARCHAR NOT NULL,
    reasons VARCHAR NOT NULL,
    matched_rows BIGINT NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE notices (
    notice_id VARCHAR PRIMARY KEY,
    breach_id VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    channel VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    planned_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    breach_id VARCHAR,
    step VARCHAR NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    counts JSON
);
