"""Authenticating provider hooks, in constant time.

GitHub signs the raw body: `X-Hub-Signature-256: sha256=<HMAC-SHA256 hex>` under the webhook
secret (the older `X-Hub-Signature`, SHA-1, is never enough on its own). GitLab sends the
secret token itself in `X-Gitlab-Token`; Signoff keeps only its SHA-256 and compares digests.
"""

from __future__ import annotations

import hashlib
import hmac


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def valid_github_signature(header: str, body: bytes, secret: str) -> bool:
    """Whether `header` is the body's SHA-256 signature under `secret`."""
    if not secret or not header:
        return False
    return hmac.compare_digest(header.strip().encode(), github_signature(secret, body).encode())


def valid_gitlab_token(token: str, token_digest: str) -> bool:
    """Whether `token` is the one whose SHA-256 (hex) is stored."""
    if not token or not token_digest:
        return False
    offered = hashlib.sha256(token.encode()).hexdigest()
    return hmac.compare_digest(offered.encode(), token_digest.encode())
