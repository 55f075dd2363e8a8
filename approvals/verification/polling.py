"""Polling the health URLs of deployments inside their verification window.

Set-based and bounded: one query finds at most BATCH due deployments; each is claimed with a
conditional UPDATE on the `next_check_at` that was read, so of two workers reading the same row
only one wins it (the other's UPDATE matches nothing). The claim moves `next_check_at` past
CLAIM_LEASE, so the HTTP calls run outside any transaction and a worker that dies mid-poll only
delays that deployment by the lease. Results are then recorded under a row lock (services).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import requests
from django.utils import timezone

from approvals.models import Deployment
from approvals.verification.services import HealthResult, close_window, record_polls

BATCH = 50
CONNECT_TIMEOUT = 3
READ_TIMEOUT = 5
# Longer than a round of polls can take for a service with a handful of URLs.
CLAIM_LEASE = timedelta(minutes=2)


def verify_due(now: datetime | None = None) -> int:
    """Poll the due deployments (BATCH at most) and close windows that have ended; returns how
    many deployments this worker handled."""
    now = now or timezone.now()
    handled = 0
    with requests.Session() as session:
        for deployment in claim_due(now):
            handled += 1
            if deployment.verify_until <= now:
                close_window(deployment_id=deployment.pk, now=now)
                continue
            urls = deployment.release.service.health_urls or []
            results = [poll(session, url) for url in urls]
            record_polls(deployment_id=deployment.pk, results=results, now=now)
    return handled


def claim_due(now: datetime) -> list[Deployment]:
    """The due deployments this worker won, with their service (for its health URLs)."""
    seen = list(
        Deployment.objects.filter(
            verification=Deployment.Verification.VERIFYING, next_check_at__lte=now
        )
        .order_by("next_check_at", "pk")
        .values_list("pk", "next_check_at")[:BATCH]
    )
    won = [pk for pk, seen_at in seen if claim(pk, seen_at, now)]
    return list(
        Deployment.objects.filter(pk__in=won)
        .select_related("release__service")
        .order_by("next_check_at", "pk")
    )


def claim(deployment_id: int, seen_at: datetime, now: datetime) -> bool:
    """Take one deployment for this worker: true only if nobody moved it since it was read."""
    updated = Deployment.objects.filter(
        pk=deployment_id, verification=Deployment.Verification.VERIFYING, next_check_at=seen_at
    ).update(next_check_at=now + CLAIM_LEASE)
    return updated == 1


def poll(session: requests.Session, url: str) -> HealthResult:
    """GET one health URL: healthy only on a 2xx answer; redirects, other codes, timeouts and
    unreachable hosts are failures, described for the release page and the ledger."""
    try:
        response = session.get(
            url,
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            allow_redirects=False,
            stream=True,  # the status is all that counts: the body is never read
            headers={"User-Agent": "Signoff-Verification/1"},
        )
    except requests.Timeout:
        return HealthResult(False, f"no answer within {CONNECT_TIMEOUT + READ_TIMEOUT} s", url)
    except requests.RequestException as exc:
        return HealthResult(False, f"could not be reached ({type(exc).__name__})", url)
    with response:
        answer = f"answered {response.status_code} {response.reason}".strip()
        return HealthResult(200 <= response.status_code < 300, answer, url)
