-- Per-minute aggregates per (service, fingerprint, level, release, environment): exact counts
-- of every event, including those whose bodies were shed, and distinct users as uniq states.
--
-- The sink inserts one plain row per processed record into event_minutes_input (Null engine:
-- nothing is stored there) and the materialized view folds each insert block into states:
--   events        max(minute_count): the stream stage's exact cumulative count for the key
--                 after this event, so the max is the count and a replay cannot raise it;
--   legacy_events uniqExact(event_id) of records that carry no minute_count (agents that
--                 predate the contract): exact and replay-safe, at the cost of an id set;
--   users         uniq(user_hash): adding a hash twice changes nothing.
-- A key's count is events + finalizeAggregation(legacy_events) after FINAL.
--
-- ORDER BY starts with fingerprint, then minute: an issue's timeline is one contiguous key
-- range; PARTITION BY day prunes time ranges and lets FINAL work per partition.
CREATE TABLE IF NOT EXISTS {database}.event_minutes
(
    minute        DateTime('UTC'),
    service       LowCardinality(String),
    fingerprint   String,
    level         LowCardinality(String),
    release       LowCardinality(String),
    environment   LowCardinality(String),
    events        SimpleAggregateFunction(max, UInt64),
    legacy_events AggregateFunction(uniqExact, String),
    users         AggregateFunction(uniq, UInt64),
    INDEX service_set service TYPE set(256) GRANULARITY 4
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(minute)
ORDER BY (fingerprint, minute, service, level, release, environment)
TTL minute + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1;
CREATE TABLE IF NOT EXISTS {database}.event_minutes_input
(
    minute       DateTime('UTC'),
    service      String,
    fingerprint  String,
    level        String,
    release      String,
    environment  String,
    minute_count UInt64,
    event_id     String,
    user_hash    UInt64,
    has_user     UInt8
)
ENGINE = Null;
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.event_minutes_mv
TO {database}.event_minutes
AS SELECT
    minute, service, fingerprint, level, release, environment,
    max(minute_count) AS events,
    uniqExactStateIf(event_id, minute_count = 0) AS legacy_events,
    uniqStateIf(user_hash, has_user = 1) AS users
FROM {database}.event_minutes_input
GROUP BY minute, service, fingerprint, level, release, environment;
