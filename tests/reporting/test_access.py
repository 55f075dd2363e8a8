"""Who opens the auditors' pages: auditors by session or bearer token, nobody else."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from governance.authority.models import Role, RoleAssignment
from tests import factories

pytestmark = pytest.mark.django_db

HOME = "/reports/"


def bearer(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {factories.token_for(user)}"}


def test_an_auditor_signed_in_opens_the_reports(client, auditor):
    client.force_login(auditor)
    response = client.get(HOME)
    assert response.status_code == 200
    assert b">Reports</a>" in response.content  # the navigation offers them too


def test_an_auditor_with_a_token_opens_the_reports(client, auditor):
    assert client.get(HOME, **bearer(auditor)).status_code == 200


def test_anonymous_browsers_are_sent_to_sign_in(client):
    response = client.get(HOME)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer ", "Basic dXNlcjpwYXNz"])
def test_a_bad_token_is_401_with_the_api_error(client, header):
    response = client.get(HOME, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("fixture", ["requester", "approver", "cab_member", "administrator"])
def test_people_who_are_not_auditors_get_403(client, request, fixture):
    person = request.getfixturevalue(fixture)
    client.force_login(person)
    assert client.get(HOME).status_code == 403
    assert client.get(HOME, **bearer(person)).status_code == 403
    assert b">Reports</a>" not in client.get("/").content


def test_an_expired_auditor_grant_opens_nothing(client, auditor):
    RoleAssignment.objects.filter(user=auditor, role=Role.AUDITOR).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    client.force_login(auditor)
    assert client.get(HOME).status_code == 403


def test_a_deactivated_auditors_token_is_refused(client, auditor):
    headers = bearer(auditor)
    auditor.is_active = False
    auditor.save(update_fields=["is_active"])
    assert client.get(HOME, **headers).status_code == 401


def test_a_scoped_auditor_is_an_auditor_but_not_of_the_whole_organisation(service):
    from reporting.access import holds_auditor_role, is_organisation_auditor

    person = factories.UserFactory()
    factories.grant(person, Role.AUDITOR, service)
    assert holds_auditor_role(person)
    assert not is_organisation_auditor(person)


def test_the_api_schema_documents_the_exports(client, administrator):
    client.force_login(administrator)
    schema = client.get("/api/schema/?format=json").json()

    for path in (
        "/reports/compliance.csv",
        "/reports/compliance.pdf",
        "/reports/exports/{id}/",
        "/reports/exports/{id}/download",
        "/reports/releases/{id}/evidence.json",
        "/reports/releases/{id}/evidence.pdf",
        "/reports/ledger.jsonl",
        "/reports/ledger/public-key.pem",
        "/reports/ledger/verify_ledger.py",
    ):
        assert schema["paths"][path]["get"]["tags"] == ["reports"], path
    assert {"bearerAuth": []} in schema["paths"]["/reports/ledger.jsonl"]["get"]["security"]
    assert "cookieAuth" in schema["components"]["securitySchemes"]
