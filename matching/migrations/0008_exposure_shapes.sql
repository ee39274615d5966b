-- Exposures are stored as two tables: per exposed customer its number, what matched (kinds),
-- its category mask and its matched rows; per breach and shape (kinds, mask) the decision's
-- words. The view `exposures` gives the rows of before, column for column, to every reader.
-- Writing one customer_id and four repeated strings per exposed customer, then compressing
-- them at the checkpoint, took 0.2-0.3 s of a 1 M x 1 M run (284 000 exposed); numbers and
-- a shape take 0.08 s, and the link no longer looks the ids up.
-- Customers are never deleted (a reload keeps each stored customer's number), so every
-- exposed number has its customer. An exposure of no stored customer, or two decisions for
-- one shape, stops the migration (nothing changes).
CREATE TABLE exposure_shapes (
    breach_id VARCHAR NOT NULL,
    kinds UTINYINT NOT NULL,
    category_mask USMALLINT NOT NULL,
    matched_on VARCHAR NOT NULL,
    categories VARCHAR NOT NULL,
    risk VARCHAR NOT NULL,
    reasons VARCHAR NOT NULL
);
CREATE TABLE exposure_rows (
    breach_id VARCHAR NOT NULL,
    customer_no UINTEGER NOT NULL,
    kinds UTINYINT NOT NULL,
    category_mask USMALLINT NOT NULL,
    matched_rows BIGINT NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL
);

-- matched_on is the kinds' names, sorted and joined with ';' (matching/link.py).
CREATE TEMP TABLE exposures_kinds AS
SELECT e.*, c.customer_no,
       ((CASE WHEN list_contains(string_split(e.matched_on, ';'), 'email') THEN 1 ELSE 0 END)
        | (CASE WHEN list_contains(string_split(e.matched_on, ';'), 'iban') THEN 2 ELSE 0 END)
        | (CASE WHEN list_contains(string_split(e.matched_on, ';'), 'phone') THEN 4 ELSE 0 END)
       )::UTINYINT AS kinds
FROM exposures e LEFT JOIN customers c USING (customer_id);
SELECT error('exposures holds a customer that is not stored')
WHERE EXISTS (SELECT 1 FROM exposures_kinds WHERE customer_no IS NULL);

INSERT INTO exposure_shapes
SELECT DISTINCT breach_id, kinds, category_mask, matched_on, categories, risk, reasons
FROM exposures_kinds;
SELECT error('exposures holds two decisions for one shape')
WHERE (SELECT count(*) FROM exposure_shapes)
    <> (SELECT count(*) FROM (SELECT DISTINCT breach_id, kinds, category_mask FROM exposure_shapes));

INSERT INTO exposure_rows
SELECT breach_id, customer_no, kinds, category_mask, matched_rows, computed_at
FROM exposures_kinds;

DROP TABLE exposures_kinds;
DROP TABLE exposures;

CREATE VIEW exposures AS
SELECT r.breach_id, c.customer_id, s.matched_on, s.categories, r.category_mask, s.risk,
       s.reasons, r.matched_rows, r.computed_at
FROM exposure_rows r
JOIN customers c USING (customer_no)
JOIN exposure_shapes s USING (breach_id, kinds, category_mask);
