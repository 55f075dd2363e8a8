"""ServiceNow incidents feed Signoff's incidents; priorities 1 and 2 hold releases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from approvals.gate import evaluate_gate
from approvals.models import Release
from changes.incidents.models import Incident
from governance.ledger.models import LedgerEntry
from tests import factories
from tests.changes.servicenow.conftest import display_all, incident, push

pytestmark = pytest.mark.django_db
STATES = {
    "1": "triggered",
    "2": "acknowledged",
    "3": "acknowledged",
    "6": "resolved",
    "7": "resolved",
    "8": "resolved",
}


def gate(release: Release) -> dict:
    return evaluate_gate(Release.objects.for_gate().get(pk=release.pk)).as_dict()


@pytest.fixture
def approved_release(production_release, approver, second_approver, cab_member):
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)
    return production_release


@pytest.mark.parametrize("shape", ["plain", "display_value=all"])
def test_an_incident_is_recorded_on_the_mapped_service(client, token, service, shape):
    record = incident()
    body = record if shape == "plain" else display_all(record, {"priority": "1 - Critical"})

    response = push(client, {"table": "incident", "record": body}, token)

    assert response.status_code == 200
    assert response.json()["status"] == "created"
    found = Incident.objects.get()
    assert (found.source, found.external_id, found.title) == (
        "servicenow",
        "INC0010001",
        "Payments API returns 500s",
    )
    assert (found.status, found.priority, found.severity, found.urgency) == (
        "triggered",
        "P1",
        1,
        "high",
    )
    assert list(found.services.all()) == [service]
    assert found.opened_at == datetime(2026, 12, 1, 9, 55, tzinfo=UTC)
    assert found.external_url.endswith("/incident.do?sys_id=9d385017c611228701d22104cc95c371")
    entry = LedgerEntry.objects.get(kind="incident.opened")
    assert (entry.actor, entry.payload["services"]) == ("servicenow", ["payments-api"])


@pytest.mark.parametrize(("code", "status"), STATES.items())
@pytest.mark.parametrize("shape", ["plain", "display_value=all"])
def test_every_incident_state_code_maps_to_a_status(client, token, code, status, shape):
    record = incident(state=code)
    push(client, record if shape == "plain" else display_all(record), token)

    assert Incident.objects.get().status == status


@pytest.mark.parametrize(
    ("priority", "stored", "blocking"),
    [
        ("1", ("P1", 1, "high"), True),
        ("2", ("P2", 2, "high"), True),
        ("3", ("P3", 3, "low"), False),
        ("4", ("P4", 4, "low"), False),
        ("5", ("P5", 5, "low"), False),
    ],
)
def test_priorities_one_and_two_block(client, token, priority, stored, blocking):
    push(client, incident(priority=priority), token)

    found = Incident.objects.get()
    assert (found.priority, found.severity, found.urgency) == stored
    assert found.is_blocking is blocking


@pytest.mark.parametrize("priority", ["1", "2"])
def test_a_servicenow_p1_or_p2_on_a_mapped_service_holds_the_gate_until_resolved(
    client, token, approved_release, priority
):
    assert gate(approved_release)["status"] == "approved"

    push(client, display_all(incident(priority=priority)), token)

    answer = gate(approved_release)
    assert answer["status"] == "blocked"
    assert answer["reasons"] == [
        f"Open incident ServiceNow INC0010001 (P{priority}, triggered): “Payments API returns "
        "500s” holds releases to high-risk environments until it is resolved; approvals count "
        "once it is."
    ]
    push(
        client, incident(priority=priority, state="6", sys_updated_on="2026-12-01 11:00:00"), token
    )
    assert gate(approved_release)["status"] == "approved"


def test_a_p3_does_not_hold_the_gate(client, token, approved_release):
    push(client, incident(priority="3"), token)

    assert gate(approved_release)["status"] == "approved"


def test_an_incident_on_an_unmapped_ci_is_kept_but_holds_nothing(client, token, approved_release):
    push(client, incident(cmdb_ci={"link": "", "value": "0123456789abcdef0123456789abcdef"}), token)

    assert Incident.objects.get().services.count() == 0
    assert gate(approved_release)["status"] == "approved"


def test_the_same_incident_version_twice_writes_nothing(client, token):
    push(client, incident(), token)
    before = LedgerEntry.objects.count()

    response = push(client, display_all(incident()), token)

    assert response.json()["status"] == "unchanged"
    assert LedgerEntry.objects.count() == before


def test_an_older_incident_version_is_stale(client, token):
    push(client, incident(state="6", sys_updated_on="2026-12-01 12:00:00"), token)

    response = push(client, incident(state="1", sys_updated_on="2026-12-01 11:00:00"), token)

    assert response.json()["status"] == "stale"
    assert Incident.objects.get().status == "resolved"


def test_progress_is_ledgered_as_an_update(client, token):
    push(client, incident(), token)

    response = push(client, incident(state="2", sys_updated_on="2026-12-01 10:05:00"), token)

    assert response.json()["status"] == "updated"
    entry = LedgerEntry.objects.get(kind="incident.updated")
    assert entry.payload["changed"] == {"status": ["triggered", "acknowledged"]}
    assert Incident.objects.get().acknowledged_at is not None


def test_a_newer_version_saying_nothing_new_is_unchanged(client, token):
    push(client, incident(), token)
    before = LedgerEntry.objects.count()

    response = push(client, incident(sys_updated_on="2026-12-01 10:30:00"), token)

    assert response.json()["status"] == "unchanged"
    assert LedgerEntry.objects.count() == before
