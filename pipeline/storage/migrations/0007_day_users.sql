-- event_day_users: the distinct-user states of event_days, alone, in a table laid out for
-- reading the users of a few issues over a long range (top issues, issue detail).
--
-- Same rows and states as event_days.users (one uniq state per fingerprint, day, service),
-- so every users number stays what it was: uniq states merge the same whichever table they
-- come from, a replayed row adds the same hashes again, and no FINAL is needed.
-- What differs is the layout. event_days is partitioned by day (its counts need FINAL, which
-- then merges per day), so the 30 days of one issue are 30 reads in 30 parts, each pulling a
-- granule of other issues' states along. Here PARTITION BY month and ORDER BY
-- (fingerprint, day, service): an issue's month of days is one contiguous key range, and
-- granules of 64 rows keep the neighbours read along small (bench/bench_queries.py, 50 issues
-- over 30 days: 133 ms from event_days, ~90 ms from here; docs/storage.md).
-- Retention drops whole month parts once every row is older than 400 days.
CREATE TABLE IF NOT EXISTS {database}.event_day_users
(
    day         DateTime('UTC'),
    fingerprint String,
    service     LowCardinality(String),
    users       AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (fingerprint, day, service)
TTL day + INTERVAL 400 DAY
SETTINGS index_granularity = 64, ttl_only_drop_parts = 1;
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.event_day_users_mv
TO {database}.event_day_users
AS SELECT
    toStartOfDay(minute) AS day, fingerprint, service,
    uniqStateIf(user_hash, has_user = 1) AS users
FROM {database}.event_minutes_input
GROUP BY day, fingerprint, service;
-- Backfill from event_days (the view exists first, so nothing falls in between; a state in
-- both is a union of the same hashes, so running this again changes nothing).
INSERT INTO {database}.event_day_users (day, fingerprint, service, users)
SELECT day, fingerprint, service, users
FROM {database}.event_days;
