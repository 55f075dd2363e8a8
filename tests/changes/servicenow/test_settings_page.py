"""/changes/integrations/servicenow/: administrators only; the token is shown once, then only
its last four characters.

Permission matrix: anonymous → sign-in redirect; no role, approver, release manager, auditor →
403 (and a POST changes nothing); administrator → 200.
"""

from __future__ import annotations

import pytest

from changes.incidents.models import ExternalServiceMapping
from changes.servicenow.models import ServiceNowConfig, ServiceNowRecord
from changes.servicenow.services import token_matches
from governance.ledger.models import LedgerEntry
from tests import factories
from tests.changes.servicenow.conftest import CI, change_request, push

pytestmark = pytest.mark.django_db
URL = "/changes/integrations/servicenow/"


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
    token = client.post(URL, {"action": "token", "token-reason": "setup"})
    mapping = client.post(
        URL,
        {
            "action": "mapping",
            "mapping-external_id": CI,
            "mapping-service": "payments-api",
            "mapping-reason": "setup",
        },
    )

    assert page.status_code == expected
    if expected != 200:
        assert (token.status_code, mapping.status_code) == (expected, expected)
        assert ServiceNowConfig.objects.count() == 0
        assert ExternalServiceMapping.objects.count() == 0
        assert LedgerEntry.objects.count() == before


def test_an_administrator_issues_a_token_seen_once(org, administrator):
    client = signed_in(administrator)

    response = client.post(URL, {"action": "token", "token-reason": "Connecting ServiceNow"})

    assert response.status_code == 200
    token = response.context["token"]
    assert token_matches(token)
    assert token in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    again = client.get(URL).content.decode()
    assert token not in again and f"…{token[-4:]}" in again
    entry = LedgerEntry.objects.get(kind="integration.configured")
    assert (entry.actor, entry.payload["reason"]) == ("ada", "Connecting ServiceNow")


def test_an_administrator_maps_a_ci_and_sees_the_records_applied(org, administrator, service):
    client = signed_in(administrator)

    response = client.post(
        URL,
        {
            "action": "mapping",
            "mapping-external_id": CI,
            "mapping-service": "payments-api",
            "mapping-reason": "Payments CI",
        },
    )

    assert response.status_code == 302
    assert ExternalServiceMapping.objects.get(source="servicenow", external_id=CI).service == (
        service
    )
    token = client.post(URL, {"action": "token", "token-reason": "x"}).context["token"]
    push(factories.SignInClient(), change_request(), token)
    page = client.get(URL).content.decode()
    assert "CHG0030001" in page and "2026-12-01 09:00:00" in page
    assert ServiceNowRecord.objects.count() == 1


@pytest.mark.parametrize(
    "data",
    [
        {"action": "token", "token-reason": ""},
        {
            "action": "mapping",
            "mapping-external_id": "not a sys_id",
            "mapping-service": "payments-api",
            "mapping-reason": "x",
        },
        {
            "action": "mapping",
            "mapping-external_id": CI,
            "mapping-service": "nope",
            "mapping-reason": "x",
        },
        {"action": "other"},
    ],
)
def test_bad_input_is_a_form_error_and_writes_nothing(org, administrator, data):
    before = LedgerEntry.objects.count()

    response = signed_in(administrator).post(URL, data)

    assert response.status_code == 400
    assert ServiceNowConfig.objects.count() == 0
    assert ExternalServiceMapping.objects.count() == 0
    assert LedgerEntry.objects.count() == before


def test_the_administration_menu_links_the_servicenow_page(client, administrator):
    client.force_login(administrator)

    page = client.get("/changes/integrations/pagerduty/").content.decode()

    assert f'href="{URL}"' in page


def test_the_page_costs_the_same_queries_for_one_mapping_and_record_as_for_many(
    org, administrator, service, other_service
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from changes.incidents.services import map_external_service
    from changes.servicenow.services import apply_record

    client = signed_in(administrator)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(URL).status_code == 200
        return len(captured)

    map_external_service(source="servicenow", external_id=CI, service=service, actor="t")
    apply_record("change_request", change_request())
    one = queries()
    for index in range(1, 12):
        map_external_service(
            source="servicenow", external_id=f"{index:032x}", service=other_service, actor="t"
        )
        apply_record(
            "change_request",
            change_request(sys_id=f"{index:032x}", number=f"CHG00400{index:02d}"),
        )

    assert queries() == one
