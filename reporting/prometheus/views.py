"""Prometheus `/metrics`: gauges and counters of the approval process, behind a token.

Prometheus authenticates with a static bearer token (`authorization: {credentials: ...}` in a
scrape config), never with a session: the token is SIGNOFF_METRICS_TOKEN (or the file named by
SIGNOFF_METRICS_TOKEN_FILE). Without one configured the endpoint is off and answers 404, so a
fresh installation publishes nothing. A missing or wrong token gets 401 and no metric; wrong
tokens count towards the API's per-address limit of failed tokens (then 429), like API tokens.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from governance.identity.authentication import FailedTokenThrottle, client_ip
from reporting.prometheus.collectors import SignoffCollector

CHALLENGE = 'Bearer realm="signoff-metrics"'


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """The exposition format Prometheus asks for (Accept), computed afresh for each scrape."""
    expected = getattr(settings, "SIGNOFF_METRICS_TOKEN", None)
    if not expected:
        return _plain("Metrics are off: SIGNOFF_METRICS_TOKEN is not set.", 404)
    refused = _refused(request, expected)
    if refused:
        return refused
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SignoffCollector())
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry), content_type=content_type)


def _refused(request: HttpRequest, expected: str) -> HttpResponse | None:
    """401 for a missing or wrong token, 429 for an address over the failed-token limit."""
    throttle = FailedTokenThrottle(client_ip(request))
    # Checked before the token: a blocked address learns nothing, not even from a good guess.
    wait = throttle.retry_after()
    if wait is not None:
        response = _plain("Too many failed token attempts from your address.", 429)
        response["Retry-After"] = str(wait)
        return response
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _challenge("Send Authorization: Bearer <the metrics token>.", "")
    if not _same(token.strip(), expected):
        throttle.record_failure()
        return _challenge("The metrics token is not the one configured.", "invalid_token")
    return None


def _same(offered: str, expected: str) -> bool:
    # Digests compared in constant time: the answer's timing says nothing about how much of
    # the token matched, nor how long it is.
    return hmac.compare_digest(_digest(offered), _digest(expected))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _challenge(message: str, error: str) -> HttpResponse:
    response = _plain(message, 401)
    response["WWW-Authenticate"] = f'{CHALLENGE}, error="{error}"' if error else CHALLENGE
    return response


def _plain(message: str, status: int) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
