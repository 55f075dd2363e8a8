"""POST /api/v1/emergencies/ and GET /api/v1/emergencies/<id>/: the permission matrix, bad
input answered with field errors and nothing written."""

from __future__ import annotations

import pytest

from approvals.emergencies.models import EmergencyException
from changes.records.models import ChangeRecord
from tests.approvals.emergencies.conftest import open_incident
from tests.approvals.emergencies.helpers import counts

pytestmark = pytest.mark.django_db

URL = "/api/v1/emergencies/"


def body(**overrides) -> dict:
    values = {
        "service": "payments-api",
        "title": "Hotfix checkout",
        "justification": "Every card payment fails.",
        "outage": "Checkout returns 500.",
        "controls": ["extra_monitoring", "rollback_plan"],
        "control_notes": "",
        "hours": 2,
    }
    values.update(overrides)
    return values


def test_a_release_manager_declares_through_the_api(api, org, service, release_manager):
    incident = open_incident(service, external_id="INC-42")

    response = api(release_manager).post(URL, body(incident=incident.pk, outage=""))

    assert response.status_code == 201, response.json()
    data = response.json()
    emergency = EmergencyException.objects.get()
    assert data["id"] == emergency.pk
    assert data["change"] == emergency.change.ref
    assert data["ends_at"] == emergency.ends_at.isoformat().replace("+00:00", "Z")
    assert (data["in_force"], data["incident"], data["service"]) == (
        True,
        incident.pk,
        "payments-api",
    )
    assert data["url"] == f"/approvals/emergencies/{emergency.pk}/"


def test_an_existing_change_is_named_by_its_ref(api, org, service, release_manager, pipeline_bot):
    from approvals import services
    from tests import factories

    services.request_approval(
        data=factories.release_input(
            service, factories.environment("production"), change_ref="CHG-77"
        ),
        actor=pipeline_bot,
    )

    response = api(release_manager).post(URL, body(change="CHG-77", title=""))

    assert response.status_code == 201, response.json()
    assert response.json()["change"] == "CHG-77"
    assert ChangeRecord.objects.get(ref="CHG-77").type == "emergency"


def test_anonymous_callers_get_401(api, org):
    before = counts()
    assert api().post(URL, body()).status_code == 401
    assert api().get(f"{URL}1/").status_code == 401
    assert counts() == before


@pytest.mark.parametrize("who", ["outsider", "approver", "auditor", "cab_member"])
def test_people_who_may_not_declare_get_403_and_nothing_is_written(api, org, who, request):
    before = counts()

    response = api(request.getfixturevalue(who)).post(URL, body())

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "emergency_forbidden"
    assert counts() == before


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"hours": 9}, "hours"),
        ({"hours": "two"}, "hours"),
        ({"controls": ["prayer"]}, "controls"),
        ({"controls": "extra_monitoring"}, "controls"),
        ({"controls": [], "control_notes": ""}, "controls"),
        ({"outage": ""}, "incident"),
        ({"incident": 999, "outage": ""}, "incident"),
        ({"justification": ""}, "justification"),
        ({"service": "nope"}, "service"),
        ({"change": "CHG-NONE"}, "change"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(
    api, org, release_manager, overrides, field
):
    before = counts()

    response = api(release_manager).post(URL, body(**overrides))

    assert response.status_code == 400
    error = response.json()["error"]
    assert field in error["fields"], error
    assert error["message"]
    assert counts() == before


@pytest.mark.parametrize(
    "who, status", [("outsider", 404), ("other_service_approver", 404), ("approver", 200)]
)
def test_reading_one_needs_to_see_its_service(
    api, org, release_manager, other_service_approver, who, status, request
):
    created = api(release_manager).post(URL, body()).json()

    response = api(request.getfixturevalue(who)).get(f"{URL}{created['id']}/")

    assert response.status_code == status
    if status == 200:
        assert response.json()["change"] == created["change"]
        assert response.json()["controls"] == ["extra_monitoring", "rollback_plan"]
        assert response.json()["secondary_review"] == ""


def test_the_schema_documents_the_endpoints(client, org, administrator):
    client.force_login(administrator)
    schema = client.get("/api/schema/").content.decode()

    assert "/api/v1/emergencies/" in schema
    assert "/api/v1/emergencies/{id}/" in schema
