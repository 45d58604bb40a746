-- Alerts as emitted on the alerts topic. alert_id is deterministic (kind, subject, trigger),
-- so ORDER BY alert_id collapses replays; created_at (wall clock at emission) must not be
-- in the key, it differs between a first delivery and a replay.
CREATE TABLE IF NOT EXISTS {database}.alerts
(
    alert_id     String,
    kind         LowCardinality(String),
    created_at   DateTime64(3, 'UTC'),
    event_time   DateTime64(3, 'UTC'),
    service      LowCardinality(String),
    fingerprint  String,
    title        String CODEC(ZSTD(3)),
    culprit      String CODEC(ZSTD(3)),
    category     LowCardinality(String),
    level        LowCardinality(String),
    environment  LowCardinality(String),
    release      LowCardinality(String),
    event_id     String,
    rule         LowCardinality(String),
    numbers      String CODEC(ZSTD(3)),
    fingerprints Array(String)
)
ENGINE = ReplacingMergeTree
ORDER BY alert_id
TTL toDateTime(created_at) + INTERVAL 400 DAY;
