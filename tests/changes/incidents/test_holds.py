"""Open blocking incidents hold releases to high-risk environments, live, until resolved."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals import services as approvals
from approvals.context import policy_context
from approvals.gate import evaluate_gate
from approvals.models import Release
from tests import factories
from tests.approvals.emergencies.helpers import declare_for
from tests.changes.incidents.conftest import open_incident, set_status

pytestmark = pytest.mark.django_db


def gate(release: Release) -> dict:
    return evaluate_gate(Release.objects.for_gate().get(pk=release.pk)).as_dict()


def request(service, environment, actor, **overrides) -> Release:
    release, _ = approvals.request_approval(
        data=factories.release_input(service, environment, **overrides), actor=actor
    )
    return release


@pytest.fixture
def approved_release(production_release, approver, second_approver, cab_member):
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)
    return production_release


def test_an_open_p1_on_the_service_blocks_its_production_release_naming_it(approved_release):
    incident = open_incident(approved_release.service, external_id="INC-7")

    answer = gate(approved_release)

    assert answer["status"] == "blocked"
    assert answer["reasons"] == [
        "Open incident API INC-7 (P1, triggered): “Database failover” holds releases to "
        "high-risk environments until it is resolved; approvals count once it is."
    ]
    assert incident.is_blocking


def test_resolution_reopens_the_gate_by_itself(approved_release):
    incident = open_incident(approved_release.service)
    assert gate(approved_release)["status"] == "blocked"

    set_status(incident, "acknowledged")
    assert gate(approved_release)["status"] == "blocked"
    set_status(incident, "resolved")

    assert gate(approved_release)["status"] == "approved"


def test_approvals_given_while_held_count_once_the_incident_is_resolved(
    production_release, approver, second_approver, cab_member
):
    incident = open_incident(production_release.service)

    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)

    assert gate(production_release)["status"] == "blocked"
    set_status(incident, "resolved")
    assert gate(production_release)["status"] == "approved"


@pytest.mark.parametrize(
    ("priority", "urgency", "blocked"),
    [("P1", "low", True), ("P2", "high", True), ("P2", "low", False), ("", "low", False)],
)
def test_the_threshold_is_priority_p1_or_high_urgency(
    production_release, priority, urgency, blocked
):
    open_incident(production_release.service, priority=priority, urgency=urgency)

    assert (gate(production_release)["status"] == "blocked") is blocked


@pytest.mark.parametrize(
    ("priority", "urgency", "blocked"),
    [("P2", "low", True), ("P3", "low", False), ("P3", "high", False), ("P1", "", True)],
)
def test_the_threshold_is_a_setting(production_release, settings, priority, urgency, blocked):
    settings.SIGNOFF_INCIDENT_BLOCKING_PRIORITY = 2
    settings.SIGNOFF_INCIDENT_BLOCKING_URGENCY = "none"
    incident = open_incident(production_release.service, priority=priority, urgency=urgency)

    assert (gate(production_release)["status"] == "blocked") is blocked
    assert incident.is_blocking is blocked
    assert policy_context(production_release, [])["incidents"]["open_blocking"] == int(blocked)


def test_releases_to_lower_risk_environments_are_not_held(org, service, staging, pipeline_bot):
    release = request(service, staging, pipeline_bot)
    open_incident(service)

    assert gate(release)["status"] == "pending"


def test_an_incident_on_a_service_it_depends_on_holds_the_release(
    production_release, other_service
):
    production_release.service.depends_on.add(other_service)
    open_incident(other_service, external_id="INC-DB")

    answer = gate(production_release)

    assert answer["status"] == "blocked"
    assert "INC-DB" in answer["reasons"][0]


def test_an_incident_on_a_service_that_depends_on_it_does_not(production_release, other_service):
    other_service.depends_on.add(production_release.service)
    open_incident(other_service)

    assert gate(production_release)["status"] == "pending"


def test_an_emergency_change_is_held_by_no_incident_only_inside_its_exception(
    org, service, production, pipeline_bot
):
    incident = open_incident(service)
    other = open_incident(service, external_id="INC-OTHER")
    fix = request(
        service, production, pipeline_bot, change_type="emergency", change_incident=incident
    )
    declared_at = timezone.now()
    declare_for(fix, hours=2, now=declared_at, incident=incident)

    inside = evaluate_gate(Release.objects.for_gate().get(pk=fix.pk), now=declared_at)
    after = evaluate_gate(
        Release.objects.for_gate().get(pk=fix.pk), now=declared_at + timedelta(hours=2)
    )

    assert fix.change.incident == incident
    assert inside.status == "pending"
    assert after.status == "blocked"
    assert [incident.external_id in r for r in after.reasons] == [False, True, False]
    assert [other.external_id in r for r in after.reasons] == [False, False, True]


def test_an_emergency_change_never_declared_is_held_by_every_incident(
    org, service, production, pipeline_bot
):
    incident = open_incident(service)
    linked = request(
        service, production, pipeline_bot, change_type="emergency", change_incident=incident
    )

    answer = gate(linked)

    assert answer["status"] == "blocked"
    assert answer["reasons"][0] == (
        f"Change {linked.change.ref} is an emergency change without a declared emergency; "
        "declare the emergency (it grants a time-bound exception) or request under a normal "
        "change."
    )
    assert [incident.external_id in r for r in answer["reasons"]] == [False, True]


def test_a_normal_change_linked_to_the_incident_is_still_held(
    org, service, production, pipeline_bot
):
    incident = open_incident(service)
    release = request(service, production, pipeline_bot, change_incident=incident)

    assert gate(release)["status"] == "blocked"


def test_the_gate_reads_a_constant_number_of_queries_whatever_the_incidents(
    production_release, other_service, django_assert_num_queries
):
    release = Release.objects.for_gate().get(pk=production_release.pk)
    with CaptureQueriesContext(connection) as none:
        evaluate_gate(release)
    production_release.service.depends_on.add(other_service)
    for index in range(8):
        open_incident(production_release.service if index % 2 else other_service)

    release = Release.objects.for_gate().get(pk=production_release.pk)
    with django_assert_num_queries(len(none)):
        answer = evaluate_gate(release)

    assert answer.status == "blocked"
    assert len(answer.reasons) == 5  # at most five incidents are named


def test_policies_see_incident_counts(production_release, other_service):
    production_release.service.depends_on.add(other_service)
    open_incident(production_release.service, priority="P1")
    open_incident(other_service, priority="P2", urgency="low")
    set_status(open_incident(production_release.service, priority="P3"), "resolved")
    open_incident(other_service, priority="")

    context = policy_context(Release.objects.for_write().get(pk=production_release.pk))

    assert context["incidents"] == {
        "open": 3,
        "open_blocking": 2,
        "last_7_days": {"P1": 1, "P2": 1, "P3": 1, "P4": 0, "P5": 0, "unknown": 1, "total": 4},
        "last_30_days": {"P1": 1, "P2": 1, "P3": 1, "P4": 0, "P5": 0, "unknown": 1, "total": 4},
    }


def test_the_release_request_can_name_the_incident_its_change_fixes(
    org, service, api, pipeline_bot
):
    incident = open_incident(service)
    body = factories.release_body(
        change={"ref": "CHG-FIX-1", "type": "emergency", "incident": incident.pk}
    )

    response = api(pipeline_bot).post("/api/v1/releases/", body)

    assert response.status_code == 201, response.json()
    assert Release.objects.get(pk=response.json()["id"]).change.incident == incident
    # Not declared an emergency (yet): blocked, saying how to go on.
    assert response.json()["gate"]["status"] == "blocked"
    assert response.json()["gate"]["reasons"][0].startswith(
        "Change CHG-FIX-1 is an emergency change without a declared emergency"
    )


def test_naming_an_unknown_incident_is_a_400_that_writes_nothing(org, service, api, pipeline_bot):
    body = factories.release_body(change={"ref": "CHG-FIX-2", "type": "emergency", "incident": 999})

    with factories.nothing_changes():
        response = api(pipeline_bot).post("/api/v1/releases/", body)

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"change": {"incident": ["No incident 999."]}}


def test_naming_another_incident_for_an_existing_change_is_refused(org, service, api, pipeline_bot):
    first, second = open_incident(service), open_incident(service)
    client = api(pipeline_bot)
    change = {"ref": "CHG-FIX-3", "type": "emergency", "incident": first.pk}
    assert (
        client.post("/api/v1/releases/", factories.release_body(change=change)).status_code == 201
    )

    with factories.nothing_changes():
        response = client.post(
            "/api/v1/releases/",
            factories.release_body(change={**change, "incident": second.pk}),
        )

    assert response.status_code == 400
    assert "CHG-FIX-3" in response.json()["error"]["message"]
