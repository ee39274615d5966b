-- Join keys as two unsigned 64-bit numbers instead of a 16-byte BLOB: k1 = bytes 0-7 and
-- k2 = bytes 8-15 of the truncated HMAC, each read big-endian (matching/keyed_hash.py). The
-- link joins on (kind, k1) and checks k2: a 64-bit join key is what DuckDB hashes and compares
-- fastest, and two UBIGINT columns insert about twice as fast as a BLOB. Existing keys are
-- converted in place; a key that is not 16 bytes long stops the migration (nothing changes).
SELECT error('customer_keys holds a key that is not 16 bytes long')
FROM customer_keys WHERE octet_length(key) <> 16 LIMIT 1;
SELECT error('leak_keys holds a key that is not 16 bytes long')
FROM leak_keys WHERE octet_length(key) <> 16 LIMIT 1;

CREATE TABLE customer_keys_words (
    customer_id VARCHAR NOT NULL,
    kind key_kind NOT NULL,
    k1 UBIGINT NOT NULL,
    k2 UBIGINT NOT NULL,
    key_id VARCHAR NOT NULL
);
INSERT INTO customer_keys_words
SELECT customer_id, kind, ('0x' || hex(key[1:8]))::UBIGINT, ('0x' || hex(key[9:16]))::UBIGINT,
       key_id
FROM customer_keys;
DROP TABLE customer_keys;
ALTER TABLE customer_keys_words RENAME TO customer_keys;

CREATE TABLE leak_keys_words (
    artifact_no INTEGER NOT NULL,
    table_no INTEGER NOT NULL,
    row UBIGINT NOT NULL,
    kind key_kind NOT NULL,
    k1 UBIGINT NOT NULL,
    k2 UBIGINT NOT NULL,
    categories USMALLINT NOT NULL
);
INSERT INTO leak_keys_words
SELECT artifact_no, table_no, row, kind, ('0x' || hex(key[1:8]))::UBIGINT,
       ('0x' || hex(key[9:16]))::UBIGINT, categories
FROM leak_keys;
DROP TABLE leak_keys;
ALTER TABLE leak_keys_words RENAME TO leak_keys;
