"""/changes/integrations/pagerduty/: administrators only; secrets never shown back whole.

Permission matrix: anonymous → sign-in redirect; no role, approver, release manager, auditor →
403 (and a POST changes nothing); administrator → 200.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from changes.incidents import services
from changes.incidents.models import ExternalServiceMapping, IntegrationConfig
from governance.ledger.models import LedgerEntry
from tests import factories

pytestmark = pytest.mark.django_db
URL = "/changes/integrations/pagerduty/"
SECRET = "page-secret-0123456789abcd"


def signed_in(user):
    client = factories.SignInClient()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        (None, 302),
        ("outsider", 403),
        ("approver", 403),
        ("requester", 403),
        ("auditor", 403),
        ("administrator", 200),
    ],
)
def test_permission_matrix(request, org, administrator, persona, expected):
    user = request.getfixturevalue(persona) if persona else None
    client = signed_in(user)
    before = LedgerEntry.objects.count()

    page = client.get(URL)
    post = client.post(
        URL,
        {"action": "secrets", "secrets-secrets": SECRET, "secrets-reason": "setup"},
    )

    assert page.status_code == expected
    if expected != 200:
        assert post.status_code == expected
        assert IntegrationConfig.objects.count() == 0
        assert LedgerEntry.objects.count() == before


def test_an_administrator_rotates_secrets_and_sees_only_their_ends(org, administrator):
    client = signed_in(administrator)

    response = client.post(
        URL,
        {
            "action": "secrets",
            "secrets-secrets": f"{SECRET}\nnew-secret-abcdefgh99999",
            "secrets-reason": "Rotating",
        },
    )

    assert response.status_code == 302
    assert IntegrationConfig.objects.get().secrets == [SECRET, "new-secret-abcdefgh99999"]
    body = client.get(URL).content.decode()
    assert "…abcd" in body and "…9999" in body
    assert SECRET not in body and "new-secret" not in body
    entry = LedgerEntry.objects.get(kind="integration.configured")
    assert (entry.actor, entry.payload["reason"]) == ("ada", "Rotating")


def test_an_administrator_maps_a_pagerduty_service(org, administrator, service):
    response = signed_in(administrator).post(
        URL,
        {
            "action": "mapping",
            "mapping-external_id": "P1AB2CD",
            "mapping-service": "payments-api",
            "mapping-reason": "Payments on-call",
        },
    )

    assert response.status_code == 302
    assert ExternalServiceMapping.objects.get().service == service


@pytest.mark.parametrize(
    "data",
    [
        {"action": "secrets", "secrets-secrets": "short", "secrets-reason": "x"},
        {"action": "secrets", "secrets-secrets": SECRET, "secrets-reason": ""},
        {
            "action": "mapping",
            "mapping-external_id": "bad id",
            "mapping-service": "payments-api",
            "mapping-reason": "x",
        },
        {
            "action": "mapping",
            "mapping-external_id": "P1",
            "mapping-service": "nope",
            "mapping-reason": "x",
        },
        {"action": "other"},
    ],
)
def test_bad_input_is_a_form_error_and_writes_nothing(org, administrator, data):
    services.configure_integration(source="pagerduty", secrets=[SECRET], actor="t")
    before = LedgerEntry.objects.count()

    response = signed_in(administrator).post(URL, data)

    assert response.status_code == 400
    assert IntegrationConfig.objects.get().secrets == [SECRET]
    assert ExternalServiceMapping.objects.count() == 0
    assert LedgerEntry.objects.count() == before


def test_the_administration_menu_links_the_pagerduty_page(client, administrator):
    client.force_login(administrator)

    page = client.get(reverse("governance:role_list")).content.decode()

    assert f'href="{URL}"' in page
