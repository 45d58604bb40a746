-- Issue workflow (docs/issues.md): who owns an issue and how urgent it is, the audit trail
-- of every command, and the MinHash signatures the similar-issues query compares.
--
-- issues gains the snapshot fields the agent now keeps: priority (high / medium / low),
-- where it came from (auto = computed, manual = set by a person), the assignee and, on the
-- last snapshot of a merged-away issue, the issue it was merged into. Older rows read the
-- defaults. The same ALTER runs on chDB and on a server.
ALTER TABLE {database}.issues
    ADD COLUMN IF NOT EXISTS priority LowCardinality(String) DEFAULT 'medium' AFTER resolved_in_release,
    ADD COLUMN IF NOT EXISTS priority_source LowCardinality(String) DEFAULT 'auto' AFTER priority,
    ADD COLUMN IF NOT EXISTS assignee String DEFAULT '' AFTER priority_source,
    ADD COLUMN IF NOT EXISTS merged_into String DEFAULT '' AFTER assignee;

-- One row per (issue, command): the agent's snapshot after a command carries its audit
-- entry; a replayed snapshot has the same command_id, so the row is kept once.
CREATE TABLE IF NOT EXISTS {database}.issue_audit
(
    fingerprint String,
    command_id  String,
    at          DateTime64(3, 'UTC'),
    actor       String,
    action      LowCardinality(String),
    reason      String CODEC(ZSTD(3)),
    source      LowCardinality(String),
    details     String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
ORDER BY (fingerprint, command_id);

-- One MinHash signature per fingerprint (pipeline/stages/similar.py), from the first event
-- a decoder saw of it; a decoder restart sends it again: the same values, kept once.
CREATE TABLE IF NOT EXISTS {database}.issue_signatures
(
    fingerprint String,
    minhash     Array(UInt32)
)
ENGINE = ReplacingMergeTree
ORDER BY fingerprint;
