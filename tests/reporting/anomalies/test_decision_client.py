"""Every decision records where it came from: the client address (as the trusted proxies report
it) and a fingerprint of the browser, never the User-Agent itself."""

from __future__ import annotations

import hashlib

import pytest
from django.urls import reverse

from approvals.models import Decision
from tests import factories

pytestmark = pytest.mark.django_db
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"


def fingerprint(user_agent: str) -> str:
    return hashlib.sha256(user_agent.encode()).hexdigest()[:16]


def test_a_decision_in_the_browser_records_the_address_and_a_browser_fingerprint(
    client, production_release, approver
):
    client.force_login(approver)
    client.post(
        reverse("approvals:release_decide", args=[production_release.pk]),
        {"verdict": "approve", "rationale": "Reviewed the diff"},
        REMOTE_ADDR="198.51.100.7",
        HTTP_USER_AGENT=BROWSER,
    )
    decision = Decision.objects.get()
    assert (decision.client_address, decision.client_device) == (
        "198.51.100.7",
        fingerprint(BROWSER),
    )
    assert BROWSER not in str(Decision.objects.values().get())


def test_an_api_decision_behind_a_trusted_proxy_records_the_forwarded_address(
    settings, api, production_release, approver
):
    settings.SIGNOFF_TRUSTED_PROXIES = 1
    response = api(approver).post(
        f"/api/v1/releases/{production_release.pk}/decisions/",
        {"decision": "approve", "rationale": "Reviewed.", "digest": production_release.digest},
        HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.5",
        HTTP_USER_AGENT="curl/8.5",
    )
    assert response.status_code == 201
    decision = Decision.objects.get()
    # The entry the client wrote itself (6.6.6.6) is never believed.
    assert (decision.client_address, decision.client_device) == (
        "203.0.113.5",
        fingerprint("curl/8.5"),
    )


def test_a_decision_without_a_client_keeps_the_fields_empty(production_release, approver):
    decision = factories.decide(production_release, approver)
    assert (decision.client_address, decision.client_device) == (None, "")
