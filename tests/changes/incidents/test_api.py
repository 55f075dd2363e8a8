"""`POST /api/v1/incidents/`: who may report incidents, what is checked, and that a refusal writes
nothing.

Permission matrix (payments-api; `other_service` is billing):
- anonymous: 401; a wrong token: 401.
- no role (outsider), an approver, an auditor, a CAB member: 400 (a field error on `services`:
  reporting needs the authority to request releases of every service named, as for releases).
- release manager of payments-api (dave), the pipelines' service account, an administrator: 201.
- dave for billing (out of his scope): 400.
"""

from __future__ import annotations

import pytest

from changes.incidents.models import Incident
from governance.ledger.models import LedgerEntry
from tests import factories

pytestmark = pytest.mark.django_db
URL = "/api/v1/incidents/"


def body(**overrides) -> dict:
    values = {
        "external_id": "INC0012",
        "title": "Card authorisations failing",
        "url": "https://status.example.com/incidents/12",
        "priority": "P1",
        "urgency": "high",
        "services": ["payments-api"],
    }
    values.update(overrides)
    return values


def counts() -> tuple[int, int]:
    return Incident.objects.count(), LedgerEntry.objects.count()


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        (None, 401),
        ("outsider", 400),
        ("approver", 400),
        ("auditor", 400),
        ("cab_member", 400),
        ("requester", 201),
        ("pipeline_bot", 201),
        ("administrator", 201),
    ],
)
def test_permission_matrix(request, org, administrator, api, persona, expected):
    user = request.getfixturevalue(persona) if persona else None
    before = counts()

    response = api(user).post(URL, body())

    assert response.status_code == expected, response.json()
    if expected != 201:
        assert counts() == before
        assert set(response.json()["error"]) == {"code", "message", "fields"}


def test_a_release_manager_cannot_report_for_a_service_outside_their_scope(
    org, other_service, api, requester
):
    with factories.nothing_changes():
        response = api(requester).post(URL, body(services=["payments-api", "billing"]))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert "billing" in error["fields"]["services"][0]


def test_reporting_opens_the_incident_and_ledgers_it(org, api, pipeline_bot):
    response = api(pipeline_bot).post(URL, body())

    assert response.status_code == 201
    data = response.json()
    assert {k: data[k] for k in ("source", "external_id", "status", "blocking", "services")} == {
        "source": "api",
        "external_id": "INC0012",
        "status": "triggered",
        "blocking": True,
        "services": ["payments-api"],
    }
    incident = Incident.objects.get(pk=data["id"])
    assert (incident.severity, incident.reported_by) == (1, pipeline_bot)
    entry = LedgerEntry.objects.get(kind="incident.opened", subject=f"incident:{incident.pk}")
    assert entry.actor == "ci-bot"


def test_sending_the_same_external_id_again_updates_it_and_resolves_it(org, api, pipeline_bot):
    client = api(pipeline_bot)
    created = client.post(URL, body()).json()

    response = client.post(URL, body(status="resolved"))

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["status"]) == (created["id"], "resolved")
    assert response.json()["resolved_at"] is not None
    assert LedgerEntry.objects.filter(kind="incident.updated").count() == 1


def test_updating_needs_authority_over_the_services_it_was_reported_on(
    org, other_service, api, pipeline_bot, requester
):
    api(pipeline_bot).post(URL, body(services=["billing"]))

    with factories.nothing_changes():
        response = api(requester).post(URL, body(services=["payments-api"], status="resolved"))

    assert response.status_code == 400
    assert Incident.objects.get().status == "triggered"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"external_id": ""}, "external_id"),
        ({"external_id": "has spaces"}, "external_id"),
        ({"title": ""}, "title"),
        ({"priority": "urgent"}, "priority"),
        ({"urgency": "medium"}, "urgency"),
        ({"status": "closed"}, "status"),
        ({"services": []}, "services"),
        ({"services": ["no-such-service"]}, "services"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"opened_at": "yesterday"}, "opened_at"),
    ],
)
def test_bad_input_is_a_400_with_the_field_and_writes_nothing(
    org, api, pipeline_bot, overrides, field
):
    before = counts()

    response = api(pipeline_bot).post(URL, body(**overrides))

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], list(error["fields"])) == ("invalid", [field])
    assert counts() == before


def test_a_nul_in_the_title_is_refused_before_anything_is_written(org, api, pipeline_bot):
    before = counts()

    response = api(pipeline_bot).post(URL, body(title="bad\u0000title"))

    assert response.status_code == 400
    assert counts() == before


def test_a_bad_token_is_a_401(org, client):
    response = client.post(
        URL, body(), content_type="application/json", HTTP_AUTHORIZATION="Bearer nope"
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"]
