-- issue_minutes: the counts of event_minutes, alone, in a table laid out for reading one
-- issue over its whole life (issue detail: its release / environment / level split, first
-- and last minute).
--
-- Same keys and the same count per key as event_minutes: one row per minute key
-- (minute, service, fingerprint, level, release, environment), events = the max of the
-- stream stage's cumulative minute_count, so replays change nothing and the split stays
-- exact; records without minute_count (legacy) add a row with events 0, as in event_minutes
-- (their counts stay in event_minutes_legacy), so first and last minute are the same too.
-- What differs is the layout. event_minutes is partitioned by day, so one issue over 30 days
-- is 30 reads in 30 parts, each pulling a granule of other issues' rows along; it also
-- carries the users and legacy states. Here PARTITION BY month: an issue's month is one
-- contiguous key range, and the rows hold nothing but the key and the count. The key puts
-- level, release and environment right after the fingerprint (the same columns as
-- event_minutes' key, in another order, so the same rows collapse): within an issue they
-- come in long runs, which is what makes grouping by them cheap (bench/bench_queries.py,
-- the top issue's 480,000 minute keys: 120 ms grouped in event_minutes' key order, 46 ms in
-- this one, same load; docs/storage.md, "Issue detail"). A time range within an issue
-- cannot skip granules by minute; the month partitions still prune it. FINAL merges per
-- month partition (the minute is in the key, so partitions never share a key). Retention
-- drops whole month parts once every row is older than 400 days.
CREATE TABLE IF NOT EXISTS {database}.issue_minutes
(
    minute      DateTime('UTC'),
    service     LowCardinality(String),
    fingerprint String,
    level       LowCardinality(String),
    release     LowCardinality(String),
    environment LowCardinality(String),
    events      SimpleAggregateFunction(max, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (fingerprint, level, release, environment, minute, service)
TTL minute + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1;
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.issue_minutes_mv
TO {database}.issue_minutes
AS SELECT
    minute, service, fingerprint, level, release, environment,
    max(minute_count) AS events
FROM {database}.event_minutes_input
GROUP BY minute, service, fingerprint, level, release, environment;
-- Backfill from event_minutes (the view exists first, so nothing falls in between; a key in
-- both gets the max of the same counts, so running this again changes nothing).
INSERT INTO {database}.issue_minutes
    (minute, service, fingerprint, level, release, environment, events)
SELECT minute, service, fingerprint, level, release, environment, events
FROM {database}.event_minutes;
