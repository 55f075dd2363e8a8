"""Declaring and ending an emergency: who may, what it needs, what it writes and who hears."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.emergencies.exceptions import (
    EmergencyConflict,
    EmergencyForbidden,
    InvalidEmergency,
)
from approvals.emergencies.models import EmergencyException
from approvals.emergencies.services import declare_emergency, end_emergency
from changes.cab.models import AgendaItem, CabMeeting
from changes.records.models import ChangeRecord
from changes.records.services import ChangeInput, move_change, open_change
from governance.models import LedgerEntry, Notification
from governance.notifications.models import OutboundEvent
from tests.approvals.emergencies.conftest import open_incident
from tests.approvals.emergencies.helpers import counts, exception_row

pytestmark = pytest.mark.django_db


def declare(actor, service, **overrides) -> EmergencyException:
    values = {
        "actor": actor,
        "service": service,
        "title": "Roll back the checkout fee change",
        "justification": "Every card payment fails since 09:12.",
        "outage": "Checkout returns 500 for every card payment.",
        "controls": ["extra_monitoring", "rollback_plan"],
        "control_notes": "The payments lead watches the dashboards.",
    }
    values.update(overrides)
    return declare_emergency(**values)


def test_a_release_manager_declares_an_emergency_change_with_its_exception(
    org, service, release_manager, cab_member
):
    service.owners.add(cab_member.__class__.objects.get(username="alice"))
    now = timezone.now()

    emergency = declare(release_manager, service, now=now)

    change = emergency.change
    assert (change.type, change.state, change.author, change.title) == (
        "emergency",
        "authorise",
        release_manager,
        "Roll back the checkout fee change",
    )
    assert list(change.services.all()) == [service]
    assert (emergency.starts_at, emergency.ends_at) == (now, now + timedelta(hours=4))
    assert emergency.controls == ["extra_monitoring", "rollback_plan"]
    assert emergency.enhanced_monitoring is True
    assert emergency.secondary_review == ""
    entry = LedgerEntry.objects.get(kind="emergency.declared")
    assert entry.subject == f"change:{change.pk}"
    assert entry.actor == "frank"
    assert entry.payload["ends_at"] == (now + timedelta(hours=4)).isoformat()
    told = set(Notification.objects.values_list("recipient__username", flat=True))
    assert told == {"alice", "carol"}  # the owner and the CAB member, not the declarer
    event = OutboundEvent.objects.get(kind="emergency.declared")
    assert event.subject == f"change:{change.ref}"
    assert event.payload["declared_by"] == "frank"
    assert event.payload["controls"] == ["extra_monitoring", "rollback_plan"]


def test_an_administrator_declares_for_the_policy_length_or_fewer_hours(
    org, service, administrator
):
    emergency = declare(administrator, service, hours=2)

    assert emergency.ends_at - emergency.starts_at == timedelta(hours=2)


@pytest.mark.parametrize("who", ["auditor", "outsider", "approver", "cab_member"])
def test_only_release_managers_and_administrators_declare(org, service, who, request):
    before = counts()

    with pytest.raises(EmergencyForbidden):
        declare(request.getfixturevalue(who), service)

    assert counts() == before


def test_a_release_manager_of_another_service_may_not_declare(org, other_service, requester):
    # dave is a release manager of payments-api and web-frontend, not of billing.
    before = counts()
    with pytest.raises(EmergencyForbidden):
        declare(requester, other_service)
    assert counts() == before


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"justification": "  "}, "justification", "Say why this cannot wait"),
        ({"outage": ""}, "incident", "Link an open incident"),
        ({"controls": ["prayer"]}, "controls", "Unknown control(s): prayer;"),
        ({"controls": [], "control_notes": ""}, "controls", "Choose at least one"),
        ({"hours": 5}, "hours", "Between 1 and 4 hours"),
        ({"hours": 0}, "hours", "Between 1 and 4 hours"),
        ({"title": ""}, "title", "Required."),
    ],
)
def test_bad_declarations_name_the_field_and_write_nothing(
    org, service, release_manager, overrides, field, message
):
    before = counts()

    with pytest.raises(InvalidEmergency) as refused:
        declare(release_manager, service, **overrides)

    assert refused.value.fields[field][0].startswith(message)
    assert counts() == before


def test_notes_alone_are_enough_controls(org, service, release_manager):
    emergency = declare(release_manager, service, controls=[], control_notes="Two on the call.")

    assert (emergency.controls, emergency.control_notes) == ([], "Two on the call.")


def test_the_incident_must_be_open_on_the_service_or_a_dependency(
    org, service, other_service, release_manager
):
    elsewhere = open_incident(other_service, external_id="INC-BILLING")
    before = counts()
    with pytest.raises(InvalidEmergency) as refused:
        declare(release_manager, service, incident=elsewhere, outage="")
    assert refused.value.fields["incident"] == [
        "Incident API INC-BILLING is not open on payments-api or a service it depends on."
    ]
    assert counts() == before

    service.depends_on.add(other_service)
    emergency = declare(release_manager, service, incident=elsewhere, outage="")

    assert emergency.incident == elsewhere


def test_an_existing_change_of_the_service_is_marked_emergency(org, service, release_manager):
    change = open_change(
        data=ChangeInput(title="Hotfix", services=[service]), actor=release_manager
    )

    emergency = declare(release_manager, service, change=change, title="")

    change.refresh_from_db()
    assert emergency.change == change
    assert (change.type, change.state) == ("emergency", "authorise")
    assert ChangeRecord.objects.count() == 1


def test_an_ended_or_foreign_or_used_change_is_refused(
    org, service, other_service, release_manager, administrator
):
    foreign = open_change(
        data=ChangeInput(title="Other", services=[other_service]), actor=administrator
    )
    ended = open_change(data=ChangeInput(title="Old", services=[service]), actor=administrator)
    move_change(change=ended, to="cancelled", actor=administrator, reason="Not needed")
    used = declare(release_manager, service).change
    before = counts()

    for change, message in (
        (foreign, "does not affect"),
        (ended, "has ended (cancelled)"),
        (used, "already had an emergency"),
    ):
        with pytest.raises(InvalidEmergency) as refused:
            declare(release_manager, service, change=change)
        assert message in refused.value.fields["change"][0]
    assert counts() == before


def test_it_goes_on_the_next_cab_meeting_covering_the_service(org, service, release_manager):
    now = timezone.now()
    meeting = CabMeeting.objects.create(
        title="Weekly CAB",
        starts_at=now + timedelta(days=2),
        ends_at=now + timedelta(days=2, hours=1),
    )
    CabMeeting.objects.create(
        title="Past", starts_at=now - timedelta(days=2), ends_at=now - timedelta(days=2, hours=-1)
    )

    emergency = declare(release_manager, service, now=now)

    item = AgendaItem.objects.get()
    assert (item.meeting, item.key, item.kind, item.change) == (
        meeting,
        f"emergency:{emergency.pk}",
        "emergency_review",
        emergency.change,
    )


def test_without_a_meeting_it_waits_in_the_cab_queue(org, service, release_manager):
    emergency = declare(release_manager, service)

    assert AgendaItem.objects.count() == 0
    assert list(EmergencyException.objects.filter(secondary_review="")) == [emergency]


def test_the_declarer_ends_the_exception_early(org, service, release_manager):
    declared_at = timezone.now() - timedelta(hours=1)
    emergency = declare(release_manager, service, now=declared_at)
    now = timezone.now()

    ended = end_emergency(emergency=emergency, actor=release_manager, reason="Fixed.", now=now)

    assert ended.ends_at == now
    assert not ended.in_force_at(now)
    entry = LedgerEntry.objects.get(kind="emergency.ended")
    assert entry.payload == {
        "emergency": emergency.pk,
        "ended_at": now.isoformat(),
        "reason": "Fixed.",
    }


@pytest.mark.parametrize("who", ["auditor", "outsider", "cab_member", "approver"])
def test_others_may_not_end_it(org, service, release_manager, who, request):
    emergency = declare(release_manager, service)
    before, row = counts(), exception_row(emergency)

    with pytest.raises(EmergencyForbidden):
        end_emergency(emergency=emergency, actor=request.getfixturevalue(who), reason="No.")

    assert (counts(), exception_row(emergency)) == (before, row)


def test_an_ended_exception_cannot_end_again_and_a_reason_is_needed(
    org, service, release_manager, administrator
):
    emergency = declare(release_manager, service)
    with pytest.raises(InvalidEmergency):
        end_emergency(emergency=emergency, actor=administrator, reason=" ")
    end_emergency(emergency=emergency, actor=administrator, reason="Over.")
    before, row = counts(), exception_row(emergency)

    with pytest.raises(EmergencyConflict):
        end_emergency(emergency=emergency, actor=administrator, reason="Again.")

    assert (counts(), exception_row(emergency)) == (before, row)
