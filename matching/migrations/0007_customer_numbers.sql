-- Each customer gets a number, and customer keys carry it instead of the customer_id: the link
-- joins and groups on a 4-byte integer instead of a string (grouping by the string spilled past
-- DuckDB's memory cap at 20 M customers) and looks the ids of exposed customers up at the end.
-- The loader numbers new customers after the highest number in use and keeps a stored
-- customer's number for good (matching/customers.py). Existing customers are numbered 1..n in
-- customer_id order; a customer_id stored twice, or a key of no stored customer, stops the
-- migration (nothing changes). Both tables are rebuilt: DuckDB adds neither a NOT NULL nor a
-- UNIQUE constraint to a column filled in the same transaction.
SELECT error('customers holds a customer_id twice')
WHERE (SELECT count(DISTINCT customer_id) FROM customers) <> (SELECT count(*) FROM customers);

-- Numbered on the id alone, then joined: sorting whole rows took about 1 s more per million.
CREATE TEMP TABLE customer_numbers AS
SELECT customer_id, row_number() OVER (ORDER BY customer_id)::UINTEGER AS customer_no
FROM customers;

CREATE TABLE customers_numbered (
    customer_no UINTEGER NOT NULL UNIQUE,
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
INSERT INTO customers_numbered
SELECT n.customer_no, c.customer_id, c.email, c.first_name, c.last_name, c.language, c.status,
       c.contract_end, c.iban_hint, c.phone_hint, c.fingerprint, c.key_id, c.updated_at
FROM customers c JOIN customer_numbers n USING (customer_id);

CREATE TABLE customer_keys_numbered (
    customer_no UINTEGER NOT NULL,
    kind key_kind NOT NULL,
    k1 UBIGINT NOT NULL,
    k2 UBIGINT NOT NULL,
    key_id VARCHAR NOT NULL
);
INSERT INTO customer_keys_numbered
SELECT n.customer_no, k.kind, k.k1, k.k2, k.key_id
FROM customer_keys k JOIN customer_numbers n USING (customer_id);
-- Ids are unique (checked above), so every key lost by the join is a key of no customer.
SELECT error('customer_keys holds a key of no stored customer')
WHERE (SELECT count(*) FROM customer_keys) <> (SELECT count(*) FROM customer_keys_numbered);

DROP TABLE customer_numbers;
DROP TABLE customer_keys;
DROP TABLE customers;
ALTER TABLE customers_numbered RENAME TO customers;
ALTER TABLE customer_keys_numbered RENAME TO customer_keys;
