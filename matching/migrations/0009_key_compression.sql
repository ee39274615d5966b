-- The key tables, and the rejects, name each column's compression: the one DuckDB chose for it
-- anyway (pragma_storage_info on a 1 M run), so the files stay the same size, but DuckDB no
-- longer tries every other method on each segment it writes. Inserting 2 M leak keys took
-- 0.37-0.42 s of CPU instead of 0.48-0.55. The hash words (k1, k2) are random: uncompressed.
-- RLE keeps runs of one artifact, table or kind in a few bytes, and is exact when they vary.
-- Each table is rebuilt as it is (DuckDB cannot change a column's compression in place).
CREATE TABLE leak_keys_named (
    artifact_no INTEGER NOT NULL USING COMPRESSION rle,
    table_no INTEGER NOT NULL USING COMPRESSION rle,
    row UBIGINT NOT NULL USING COMPRESSION bitpacking,
    kind key_kind NOT NULL USING COMPRESSION rle,
    k1 UBIGINT NOT NULL USING COMPRESSION uncompressed,
    k2 UBIGINT NOT NULL USING COMPRESSION uncompressed,
    categories USMALLINT NOT NULL USING COMPRESSION bitpacking
);
INSERT INTO leak_keys_named SELECT * FROM leak_keys;
DROP TABLE leak_keys;
ALTER TABLE leak_keys_named RENAME TO leak_keys;

CREATE TABLE customer_keys_named (
    customer_no UINTEGER NOT NULL USING COMPRESSION bitpacking,
    kind key_kind NOT NULL USING COMPRESSION rle,
    k1 UBIGINT NOT NULL USING COMPRESSION uncompressed,
    k2 UBIGINT NOT NULL USING COMPRESSION uncompressed,
    key_id VARCHAR NOT NULL USING COMPRESSION dict_fsst
);
INSERT INTO customer_keys_named SELECT * FROM customer_keys;
DROP TABLE customer_keys;
ALTER TABLE customer_keys_named RENAME TO customer_keys;

CREATE TABLE rejects_named (
    artifact_no INTEGER NOT NULL USING COMPRESSION rle,
    table_no INTEGER USING COMPRESSION rle,
    row UBIGINT USING COMPRESSION bitpacking,
    "column" VARCHAR USING COMPRESSION dict_fsst,
    reason VARCHAR NOT NULL USING COMPRESSION dict_fsst
);
INSERT INTO rejects_named SELECT * FROM rejects;
DROP TABLE rejects;
ALTER TABLE rejects_named RENAME TO rejects;
