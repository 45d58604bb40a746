-- Columns the stream-agents contract adds, and what keeps the events table lean and safe.
-- sample_rate: bodies kept by server-side sampling can be re-weighted by 1 / sample_rate.
-- user_hash: the 63-bit user hash the stream stage computed (0 = no user).
-- The constraint makes ClickHouse itself refuse an event_id no client would send; such a
-- row goes to the dead-letter topic (the sink bisects a refused batch down to the row).
-- ttl_only_drop_parts: partitions are days, so retention drops whole parts, no rewrites.
-- The bloom filter makes `WHERE event_id = ...` skip granules (the key starts with fingerprint).
ALTER TABLE {database}.events
    ADD COLUMN IF NOT EXISTS sample_rate Float32 DEFAULT 1 AFTER payload,
    ADD COLUMN IF NOT EXISTS user_hash UInt64 DEFAULT 0 AFTER sample_rate;
ALTER TABLE {database}.events
    ADD CONSTRAINT IF NOT EXISTS event_id_length CHECK length(event_id) BETWEEN 1 AND 128;
ALTER TABLE {database}.events
    ADD INDEX IF NOT EXISTS event_id_bloom event_id TYPE bloom_filter(0.01) GRANULARITY 4;
ALTER TABLE {database}.events MODIFY SETTING ttl_only_drop_parts = 1;
