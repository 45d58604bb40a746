"""Webhook signatures: HMAC-SHA256 over ``<timestamp>.<body>``.

The notifier sends two headers with every generic-webhook request:

    X-Errorstream-Timestamp: 1764754800            (Unix seconds when the request was signed)
    X-Errorstream-Signature: sha256=<hex digest>    (HMAC-SHA256(secret, b"1764754800." + body))

A receiver recomputes the digest over the raw body bytes it received, compares in constant
time, and rejects timestamps too far from its clock (a replayed request). ``verify`` below is
that check; docs/notify.md shows it standalone for receivers that do not import errorstream.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Errorstream-Signature"
TIMESTAMP_HEADER = "X-Errorstream-Timestamp"
DEFAULT_TOLERANCE = 300.0


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Errorstream-Signature`` value for ``body`` signed at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify(
    secret: str,
    timestamp_header: str,
    signature_header: str,
    body: bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """True when the headers sign ``body`` with ``secret`` and the timestamp is within
    ``tolerance`` seconds of ``now``."""
    try:
        timestamp = int(timestamp_header)
    except (TypeError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), signature_header or "")
