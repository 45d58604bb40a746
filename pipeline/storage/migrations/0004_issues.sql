-- Latest state per issue: the stream stage's snapshot with the highest version wins
-- (ReplacingMergeTree(version)), so replays and out-of-order snapshots change nothing.
-- A few thousand to a few million rows: ORDER BY fingerprint, no partitions.
CREATE TABLE IF NOT EXISTS {database}.issues
(
    fingerprint         String,
    service             LowCardinality(String),
    title               String CODEC(ZSTD(3)),
    culprit             String CODEC(ZSTD(3)),
    category            LowCardinality(String),
    status              LowCardinality(String),
    first_seen          DateTime64(3, 'UTC'),
    last_seen           DateTime64(3, 'UTC'),
    count               UInt64,
    users               UInt64,
    levels              Array(LowCardinality(String)),
    resolved_at         Nullable(DateTime64(3, 'UTC')),
    resolved_in_release String,
    version             UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY fingerprint;
