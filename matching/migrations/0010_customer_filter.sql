-- The customer filter (matching/customer_filter.py): a bit set addressed by the top bits of a
-- key's first word (k1), with the bit of every customer key set. It names the customer keys
-- it was built from by their count and the xor of their first words, so that a link can tell
-- whether it still describes the customer keys of the moment. The set is stored as its
-- 64-bit words in order (bit i is bit i % 64 of word i / 64): a plain column DuckDB reads
-- back in a few tens of milliseconds, where BLOBs of the same bytes took half a second.
CREATE TABLE customer_filter (
    keys UBIGINT NOT NULL,
    key_xor UBIGINT NOT NULL,
    log2_bits UTINYINT NOT NULL
);
CREATE TABLE customer_filter_words (
    n UINTEGER NOT NULL,
    word UBIGINT NOT NULL USING COMPRESSION uncompressed
);

-- Each leak key says whether its first word hit that filter when it was ingested (NULL: no
-- filter then, or stored before this schema); its artifact names the filter it was probed
-- against. The link joins only the keys that hit, when the artifacts' filter still names the
-- customer keys (matching/link.py): a key that missed cannot match any of those keys.
CREATE TABLE leak_keys_hinted (
    artifact_no INTEGER NOT NULL USING COMPRESSION rle,
    table_no INTEGER NOT NULL USING COMPRESSION rle,
    row UBIGINT NOT NULL USING COMPRESSION bitpacking,
    kind key_kind NOT NULL USING COMPRESSION rle,
    k1 UBIGINT NOT NULL USING COMPRESSION uncompressed,
    k2 UBIGINT NOT NULL USING COMPRESSION uncompressed,
    categories USMALLINT NOT NULL USING COMPRESSION bitpacking,
    customer_hint BOOLEAN USING COMPRESSION uncompressed
);
INSERT INTO leak_keys_hinted SELECT *, NULL FROM leak_keys;
DROP TABLE leak_keys;
ALTER TABLE leak_keys_hinted RENAME TO leak_keys;

ALTER TABLE artifacts ADD COLUMN hint_keys UBIGINT;
ALTER TABLE artifacts ADD COLUMN hint_xor UBIGINT;
