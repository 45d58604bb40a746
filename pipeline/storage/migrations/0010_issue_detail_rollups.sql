-- Three small tables that let issue detail read a few rows per issue instead of its whole
-- life (docs/storage.md, "Issue detail"): the release / environment / level split per day,
-- the distinct-user states per calendar month, and the latest stored body.
--
-- issue_days: issue_minutes rolled up by day, one row per
-- (fingerprint, level, release, environment, day, service). ``counts`` maps each minute of
-- the day to that minute key's events (the max of the stream stage's cumulative
-- minute_count, as in event_hours / event_days), so a replayed row changes nothing and a
-- row's count after FINAL is arraySum(mapValues(counts)) = the sum of its minute keys' counts
-- in issue_minutes. Records without minute_count (legacy: counted by event_id in
-- event_minutes_legacy) are in ``legacy_events``, the same uniqExact states, so a read of
-- whole days needs no second table: a key's count is the map's sum plus
-- uniqExactMerge(legacy_events) (an event_id belongs to one minute key). first_minute /
-- last_minute are the earliest and latest minute with a record, legacy ones included, as
-- issue_minutes has them. The top issue of bench/bench_queries.py: 387,559 minute keys in
-- issue_minutes, 900 rows here. Same partitioning and key order as issue_minutes (the day is
-- in the key, so FINAL merges per month partition).
CREATE TABLE IF NOT EXISTS {database}.issue_days
(
    day          DateTime('UTC'),
    service      LowCardinality(String),
    fingerprint  String,
    level        LowCardinality(String),
    release      LowCardinality(String),
    environment  LowCardinality(String),
    counts       SimpleAggregateFunction(maxMap, Map(UInt32, UInt32)),
    legacy_events AggregateFunction(uniqExact, String),
    first_minute SimpleAggregateFunction(min, DateTime('UTC')),
    last_minute  SimpleAggregateFunction(max, DateTime('UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (fingerprint, level, release, environment, day, service)
TTL day + INTERVAL 400 DAY
SETTINGS index_granularity = 256, ttl_only_drop_parts = 1;
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.issue_days_mv
TO {database}.issue_days
AS SELECT
    toStartOfDay(minute) AS day, service, fingerprint, level, release, environment,
    maxMapIf(map(toUInt32(minute), toUInt32(least(minute_count, 4294967295))),
             minute_count > 0) AS counts,
    uniqExactStateIf(event_id, minute_count = 0) AS legacy_events,
    min(minute) AS first_minute,
    max(minute) AS last_minute
FROM {database}.event_minutes_input
GROUP BY day, service, fingerprint, level, release, environment;
-- Backfill from issue_minutes and event_minutes_legacy (the view exists first, so nothing
-- falls in between; maxMap, uniqExact, min and max of the same rows again change nothing, so
-- running this again is harmless).
INSERT INTO {database}.issue_days
    (day, service, fingerprint, level, release, environment, counts, first_minute, last_minute)
SELECT toStartOfDay(minute) AS day, service, fingerprint, level, release, environment,
       maxMapIf(map(toUInt32(minute), toUInt32(least(events, 4294967295))), events > 0),
       min(minute), max(minute)
FROM {database}.issue_minutes
GROUP BY day, service, fingerprint, level, release, environment;
INSERT INTO {database}.issue_days
    (day, service, fingerprint, level, release, environment, legacy_events, first_minute,
     last_minute)
SELECT toStartOfDay(minute) AS day, service, fingerprint, level, release, environment,
       uniqExactMergeState(legacy_events), min(minute), max(minute)
FROM {database}.event_minutes_legacy
GROUP BY day, service, fingerprint, level, release, environment;
-- issue_month_users: the distinct-user states of event_day_users merged per calendar month
-- (one uniq state per fingerprint, month, service; the same hashes, so merged with day
-- states or with each other they give the same numbers). Issue detail reads the months its
-- records fall in (two states for an issue seen over the last 30 days instead of 30). A
-- state is kept until the last day of its month is 400 days old, like that day's rows.
CREATE TABLE IF NOT EXISTS {database}.issue_month_users
(
    month       DateTime('UTC'),
    fingerprint String,
    service     LowCardinality(String),
    users       AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(month)
ORDER BY (fingerprint, month, service)
TTL month + INTERVAL 1 MONTH + INTERVAL 400 DAY
SETTINGS index_granularity = 64, ttl_only_drop_parts = 1;
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.issue_month_users_mv
TO {database}.issue_month_users
AS SELECT
    toDateTime(toStartOfMonth(minute), 'UTC') AS month, fingerprint, service,
    uniqStateIf(user_hash, has_user = 1) AS users
FROM {database}.event_minutes_input
GROUP BY month, fingerprint, service;
INSERT INTO {database}.issue_month_users (month, fingerprint, service, users)
SELECT toDateTime(toStartOfMonth(day), 'UTC') AS month, fingerprint, service, uniqMergeState(users)
FROM {database}.event_day_users
GROUP BY month, fingerprint, service;
-- issue_latest: the latest stored body of each issue (the greatest (timestamp, event_id), as
-- ``ORDER BY timestamp DESC, event_id DESC LIMIT 1`` over events picks it), one small row per
-- issue, so issue detail does not read a granule of other bodies from the events table.
-- Filled from the events table's inserts, so a shed body (no events row) is never the
-- latest; a replayed body is the same argument again. The row expires with the events
-- table's retention (the same TTL on its latest timestamp; migrate.apply_retention changes
-- both), so no body is shown after the events table has dropped it.
CREATE TABLE IF NOT EXISTS {database}.issue_latest
(
    fingerprint String,
    last_at     SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    latest      AggregateFunction(argMax,
                    Tuple(String, String, String, String, String, String, String),
                    Tuple(DateTime64(3, 'UTC'), String))
)
ENGINE = AggregatingMergeTree
ORDER BY fingerprint
TTL toDateTime(last_at) + INTERVAL {retention_days} DAY
SETTINGS index_granularity = 32;
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.issue_latest_mv
TO {database}.issue_latest
AS SELECT
    fingerprint,
    max(timestamp) AS last_at,
    argMaxState((event_id, toString(level), toString(release), toString(environment),
                 message, toString(exception_type), payload),
                (timestamp, event_id)) AS latest
FROM {database}.events
GROUP BY fingerprint;
INSERT INTO {database}.issue_latest (fingerprint, last_at, latest)
SELECT fingerprint, max(timestamp),
       argMaxState((event_id, toString(level), toString(release), toString(environment),
                    message, toString(exception_type), payload),
                   (timestamp, event_id))
FROM {database}.events
GROUP BY fingerprint;
