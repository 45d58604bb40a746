-- Rollups of the per-minute aggregates for long ranges (docs/storage.md, "Rollups"), all fed
-- by materialized views from event_minutes_input, the table the sink already writes.
--
-- event_minutes_legacy: the legacy_events states of event_minutes (records without
-- minute_count), alone. Almost always empty, so a query adds legacy counts by reading this
-- table instead of deserializing one (empty) uniqExact state per row of event_minutes.
-- Same key and partitions as event_minutes; uniqExact states merge, so it is exact and
-- replay-safe without FINAL.
CREATE TABLE IF NOT EXISTS {database}.event_minutes_legacy
(
    minute        DateTime('UTC'),
    service       LowCardinality(String),
    fingerprint   String,
    level         LowCardinality(String),
    release       LowCardinality(String),
    environment   LowCardinality(String),
    legacy_events AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(minute)
ORDER BY (fingerprint, minute, service, level, release, environment)
TTL minute + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1;
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.event_minutes_legacy_mv
TO {database}.event_minutes_legacy
AS SELECT
    minute, service, fingerprint, level, release, environment,
    uniqExactState(event_id) AS legacy_events
FROM {database}.event_minutes_input
WHERE minute_count = 0
GROUP BY minute, service, fingerprint, level, release, environment;
-- event_hours / event_days: one row per (fingerprint, period, service); level, release and
-- environment are folded into the row, and counts stay exact and replay-safe because the row
-- keeps one entry PER MINUTE KEY:
--   counts  maxMap over {sipHash64(minute, level, release, environment) -> minute_count}:
--           the max of the stream stage's cumulative count is the minute key's count,
--           exactly as event_minutes.events; a replay brings the same entry again. The row's
--           count is arraySum(mapValues(counts)) after FINAL. Records without minute_count
--           add no entry (their count is in event_minutes_legacy). UInt32 values: a minute
--           key would need 4.29e9 events in one minute to reach the limit (saturates).
--   users   uniq(user_hash) states of every record, as in event_minutes.
-- ORDER BY (fingerprint, period, service): an issue's totals and the users of the top issues
-- are one short key range each; a top-N reads the whole time range anyway. PARTITION BY day,
-- for both: a time range prunes to its days (the key starts with fingerprint, so within a
-- partition a day filter cannot skip granules), and FINAL only has merging to do in the
-- partitions with recent inserts, today's, not in a month of rows (the period is in the key,
-- so do_not_merge_across_partitions_select_final is safe); retention drops whole parts.
-- Small granules: rows are wide (maps, uniq states), and the users of 50 issues should not
-- read whole 8192-row granules of states.
CREATE TABLE IF NOT EXISTS {database}.event_hours
(
    hour        DateTime('UTC'),
    fingerprint String,
    service     LowCardinality(String),
    counts      SimpleAggregateFunction(maxMap, Map(UInt64, UInt32)),
    users       AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(hour)
ORDER BY (fingerprint, hour, service)
TTL hour + INTERVAL 400 DAY
SETTINGS index_granularity = 1024, ttl_only_drop_parts = 1;
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.event_hours_mv
TO {database}.event_hours
AS SELECT
    toStartOfHour(minute) AS hour, fingerprint, service,
    maxMapIf(map(sipHash64(minute, level, release, environment),
                 toUInt32(least(minute_count, 4294967295))),
             minute_count > 0) AS counts,
    uniqStateIf(user_hash, has_user = 1) AS users
FROM {database}.event_minutes_input
GROUP BY hour, fingerprint, service;
CREATE TABLE IF NOT EXISTS {database}.event_days
(
    day         DateTime('UTC'),
    fingerprint String,
    service     LowCardinality(String),
    counts      SimpleAggregateFunction(maxMap, Map(UInt64, UInt32)),
    users       AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(day)
ORDER BY (fingerprint, day, service)
TTL day + INTERVAL 400 DAY
SETTINGS index_granularity = 256, ttl_only_drop_parts = 1;
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.event_days_mv
TO {database}.event_days
AS SELECT
    toStartOfDay(minute) AS day, fingerprint, service,
    maxMapIf(map(sipHash64(minute, level, release, environment),
                 toUInt32(least(minute_count, 4294967295))),
             minute_count > 0) AS counts,
    uniqStateIf(user_hash, has_user = 1) AS users
FROM {database}.event_minutes_input
GROUP BY day, fingerprint, service;
-- Backfill what event_minutes held before the views existed. The views are created first,
-- so nothing falls in between; a row that is in both is the same entry (max) or the same ids
-- and users (state union), so the backfill is exact, and safe to run again.
INSERT INTO {database}.event_minutes_legacy
    (minute, service, fingerprint, level, release, environment, legacy_events)
SELECT minute, service, fingerprint, level, release, environment, legacy_events
FROM {database}.event_minutes
WHERE finalizeAggregation(legacy_events) > 0;
INSERT INTO {database}.event_hours (hour, fingerprint, service, counts, users)
SELECT toStartOfHour(minute) AS hour, fingerprint, service,
       maxMapIf(map(sipHash64(minute, level, release, environment),
                    toUInt32(least(events, 4294967295))),
                events > 0) AS counts,
       uniqMergeState(users) AS users
FROM {database}.event_minutes
GROUP BY hour, fingerprint, service;
INSERT INTO {database}.event_days (day, fingerprint, service, counts, users)
SELECT toStartOfDay(hour) AS day, fingerprint, service,
       maxMap(counts) AS counts, uniqMergeState(users) AS users
FROM {database}.event_hours
GROUP BY day, fingerprint, service;
