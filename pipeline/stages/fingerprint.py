"""Stage 2: group a decoded event: fingerprint, variant, title, culprit, category.

The result travels with the event in ``record["_meta"]`` onto the topic keyed by fingerprint.
The first event of a fingerprint in this process also carries the issue's MinHash signature
(``_meta.signature``, ``stages/similar.py``), which the sink stores for similar-issue queries.
"""

from __future__ import annotations

from typing import Any

from pipeline.grouping import GroupingConfig, group_event
from pipeline.stages.decode import DecodedEvent
from pipeline.stages.similar import SignatureMemo, signature

SIGNATURES = SignatureMemo()


def enrich(decoded: DecodedEvent, config: GroupingConfig, received_at: float) -> dict[str, Any]:
    """The event with its grouping result under ``_meta``; the dict is reused, not copied."""
    result = group_event(decoded.event, config)
    record = decoded.event
    record["_meta"] = {
        "ts": decoded.ts,
        "received_at": received_at,
        "fingerprint": result.fingerprint,
        "secondary_fingerprints": list(result.secondary_fingerprints),
        "grouping_variant": result.grouping_variant,
        "title": result.title,
        "culprit": result.culprit,
        "category": result.category,
    }
    if SIGNATURES.first(result.fingerprint):
        record["_meta"]["signature"] = {
            "fingerprint": result.fingerprint,
            "minhash": signature(result.components, result.title),
        }
    return record
