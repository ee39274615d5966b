-- The pepper's key id is kept once per artifact instead of on every leak_keys row: every key
-- of an artifact is hashed with the same pepper (one ingest, or one rotation, writes them all),
-- and the per-row VARCHAR cost about 10-15 % of the time to insert leaked keys.
ALTER TABLE artifacts ADD COLUMN key_id VARCHAR;
UPDATE artifacts SET key_id = k.key_id
FROM (SELECT artifact_no, min(key_id) AS key_id FROM leak_keys GROUP BY artifact_no) AS k
WHERE artifacts.artifact_no = k.artifact_no;
ALTER TABLE leak_keys DROP COLUMN key_id;
