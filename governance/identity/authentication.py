"""Bearer-token authentication for the pipeline API, and who a request comes from.

Failed bearer tokens are counted per client address in the cache: after
API_TOKEN_FAILURE_LIMIT failures within API_TOKEN_FAILURE_WINDOW_SECONDS the address gets 429 for
one window, whatever token it sends. Sign-in forms are guarded by django-axes, which asks
`client_ip` for the same address.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from governance.identity.tokens import authenticate_token

logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or the one the trusted reverse proxies forwarded.

    Each trusted proxy appends the address it received the request from to X-Forwarded-For, so
    behind N of them the client is the Nth entry from the right; anything further left is
    whatever the client chose to send and is never believed.
    """
    hops = settings.SIGNOFF_TRUSTED_PROXIES
    if hops:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        forwarded = [entry.strip() for entry in forwarded if entry.strip()]
        if len(forwarded) >= hops and _valid_ip(forwarded[-hops]):
            return forwarded[-hops]
    remote = request.META.get("REMOTE_ADDR", "")
    return remote if _valid_ip(remote) else None


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class FailedTokenThrottle:
    """Counts failed bearer tokens per address; blocks the address for a window at the limit.

    The counter is created with `cache.add` (atomic "set if absent", carrying the window as its
    expiry) and bumped with `cache.incr` (atomic in Redis), so concurrent failures from several
    web processes are never lost.
    """

    def __init__(self, address: str | None) -> None:
        self.counter_key = f"api-token-failures:{address or 'unknown'}"
        self.blocked_key = f"api-token-blocked:{address or 'unknown'}"

    def retry_after(self) -> int | None:
        """Seconds until the address may try again, or None when it is not blocked.

        Fails open: with the cache (Redis) unreachable, tokens are still checked one by one, and
        pipelines asking the gate must not all fail because a rate limit cannot count.
        """
        try:
            until = cache.get(self.blocked_key)
        except Exception:
            logger.warning("Token throttle unavailable (cache unreachable)", exc_info=True)
            return None
        if until is None or until <= time.time():
            return None
        return math.ceil(until - time.time())

    def record_failure(self) -> None:
        try:
            self._count_failure()
        except Exception:
            logger.warning("Could not count a failed token (cache unreachable)", exc_info=True)

    def _count_failure(self) -> None:
        window = settings.API_TOKEN_FAILURE_WINDOW_SECONDS
        cache.add(self.counter_key, 0, timeout=window)
        try:
            failures = cache.incr(self.counter_key)
        except ValueError:  # the window expired between add and incr: start a new one
            cache.add(self.counter_key, 1, timeout=window)
            failures = 1
        if failures >= settings.API_TOKEN_FAILURE_LIMIT:
            # add, not set: the block's end stays where the first process to reach the limit put it.
            cache.add(self.blocked_key, time.time() + window, timeout=window)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` with a token from `manage.py issue_token`."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header:
            return None
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        throttle = FailedTokenThrottle(client_ip(request))
        # Checked before the token: a blocked address learns nothing, not even from a good guess.
        wait = throttle.retry_after()
        if wait is not None:
            raise exceptions.Throttled(
                wait=wait, detail="Too many failed token attempts from your address."
            )
        key = key.strip()
        if not key or " " in key:
            throttle.record_failure()
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        token = authenticate_token(key)
        if token is None:
            throttle.record_failure()
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired token.")
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}
