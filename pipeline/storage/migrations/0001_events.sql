-- Raw events, one row per stored event body.
-- PARTITION BY day: retention drops whole parts; time-range queries prune partitions.
-- ORDER BY (fingerprint, timestamp, event_id): one issue's events over a time range are one
-- contiguous range of the primary index; event_id last makes a replayed event a duplicate key
-- that ReplacingMergeTree collapses (queries that must be exact before merges use FINAL).
CREATE TABLE IF NOT EXISTS {database}.events
(
    event_id         String,
    timestamp        DateTime64(3, 'UTC'),
    received_at      DateTime64(3, 'UTC'),
    service          LowCardinality(String),
    environment      LowCardinality(String),
    release          LowCardinality(String),
    level            LowCardinality(String),
    platform         LowCardinality(String),
    logger           LowCardinality(String),
    fingerprint      String,
    grouping_variant LowCardinality(String),
    title            String CODEC(ZSTD(3)),
    culprit          String CODEC(ZSTD(3)),
    category         LowCardinality(String),
    exception_type   LowCardinality(String),
    message          String CODEC(ZSTD(3)),
    user_id          String,
    tags             Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    payload          String CODEC(ZSTD(6))
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(timestamp)
ORDER BY (fingerprint, timestamp, event_id)
TTL toDateTime(timestamp) + INTERVAL {retention_days} DAY
SETTINGS index_granularity = 8192;
