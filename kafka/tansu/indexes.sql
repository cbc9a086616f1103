-- An index tansu 0.6's SQLite storage engine does not create. Its fetch
-- reads each record's headers with `header_fetch.sql`, a join on
-- header (topition, offset_id) — with no index there, every fetched record
-- scans the whole header table of every topic, so a fetch costs more the
-- more the broker holds (with CloudEvents headers, seven rows per record).
-- The project's scripts and tests apply this file once tansu has created
-- its schema; it is idempotent and tansu's own DDL leaves it alone.
-- Redpanda and Kafka are not affected.
create index if not exists header_by_record on header (topition, offset_id);
