"""PagerDuty V3 webhook signatures: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`.

Each `v1=` entry is HMAC-SHA256 of the raw body with one of the subscription's secrets; during a
rotation PagerDuty sends one per secret, and we may hold both the old and the new one.
"""

from __future__ import annotations

import hashlib
import hmac

MAX_SIGNATURES = 10


def pagerduty_signature(secret: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def valid_pagerduty_signature(header: str, body: bytes, secrets: list[str]) -> bool:
    """Whether any `v1=` entry matches any secret, compared in constant time."""
    entries = [part.strip() for part in header.split(",")][:MAX_SIGNATURES]
    offered = [entry for entry in entries if entry.startswith("v1=")]
    expected = [pagerduty_signature(secret, body) for secret in secrets]
    # Every pair is compared (no early exit), so timing says nothing about which one matched.
    matches = [
        hmac.compare_digest(entry.encode(), wanted.encode())
        for entry in offered
        for wanted in expected
    ]
    return any(matches)
