"""The CAB's secondary review of an emergency: justified, or not justified with actions; by a
CAB member of the service other than the declarer and the change's author, once."""

from __future__ import annotations

import pytest

from approvals import services
from approvals.emergencies.exceptions import (
    EmergencyConflict,
    EmergencyForbidden,
    InvalidEmergency,
)
from approvals.emergencies.services import declare_emergency, record_secondary_review
from governance.models import LedgerEntry, Role
from tests import factories
from tests.approvals.emergencies.helpers import counts, exception_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def emergency(org, service, release_manager):
    return declare_emergency(
        actor=release_manager,
        service=service,
        title="Hotfix",
        justification="Payments fail.",
        outage="Checkout down.",
        controls=["extra_monitoring"],
    )


def test_a_cab_member_records_it_justified(emergency, cab_member):
    reviewed = record_secondary_review(
        emergency=emergency, actor=cab_member, outcome="justified", notes=""
    )

    assert (reviewed.secondary_review, reviewed.reviewed_by) == ("justified", cab_member)
    assert reviewed.reviewed_at is not None
    entry = LedgerEntry.objects.get(kind="emergency.reviewed")
    assert (entry.subject, entry.actor) == (f"change:{emergency.change_id}", "carol")
    assert entry.payload == {"emergency": emergency.pk, "outcome": "justified", "notes": ""}


def test_not_justified_needs_the_actions(emergency, cab_member):
    before, row = counts(), exception_row(emergency)
    with pytest.raises(InvalidEmergency) as refused:
        record_secondary_review(
            emergency=emergency, actor=cab_member, outcome="not_justified", notes=" "
        )
    assert refused.value.fields == {"notes": ["Name the actions to take."]}
    assert (counts(), exception_row(emergency)) == (before, row)

    reviewed = record_secondary_review(
        emergency=emergency,
        actor=cab_member,
        outcome="not_justified",
        notes="Could have waited for the 14:00 window; train the on-call on the normal path.",
    )
    assert reviewed.secondary_review == "not_justified"


def test_an_unknown_outcome_is_refused(emergency, cab_member):
    before = counts()
    with pytest.raises(InvalidEmergency):
        record_secondary_review(emergency=emergency, actor=cab_member, outcome="meh", notes="")
    assert counts() == before


@pytest.mark.parametrize("who", ["release_manager", "approver", "auditor", "administrator"])
def test_only_cab_members_review(emergency, who, request):
    actor = request.getfixturevalue(who)
    before, row = counts(), exception_row(emergency)

    with pytest.raises(EmergencyForbidden):
        record_secondary_review(emergency=emergency, actor=actor, outcome="justified", notes="")

    assert (counts(), exception_row(emergency)) == (before, row)


def test_the_declarer_never_reviews_their_own_emergency(org, service, cab_member):
    factories.grant(cab_member, Role.RELEASE_MANAGER, service)
    emergency = declare_emergency(
        actor=cab_member,
        service=service,
        title="Hotfix",
        justification="Payments fail.",
        outage="Checkout down.",
        controls=["extra_monitoring"],
    )
    before, row = counts(), exception_row(emergency)

    with pytest.raises(EmergencyForbidden) as refused:
        record_secondary_review(
            emergency=emergency, actor=cab_member, outcome="justified", notes=""
        )

    assert (
        refused.value.message == "You declared this emergency; another CAB member must review it."
    )
    assert (counts(), exception_row(emergency)) == (before, row)


def test_the_author_of_a_change_declared_an_emergency_never_reviews_it(
    org, service, production, pipeline_bot, release_manager, cab_member
):
    """carol's pipeline run asks for the change; frank declares it an emergency; carol, on the
    CAB, would judge her own change."""
    release, _ = services.request_approval(
        data=factories.release_input(
            service, production, change_type="emergency", triggered_by="carol"
        ),
        actor=pipeline_bot,
    )
    emergency = declare_emergency(
        actor=release_manager,
        service=service,
        title="",
        justification="Payments fail.",
        outage="Checkout down.",
        controls=["extra_monitoring"],
        change=release.change,
    )
    assert (emergency.change.author, emergency.declared_by) == (cab_member, release_manager)
    before, row = counts(), exception_row(emergency)

    with pytest.raises(EmergencyForbidden) as refused:
        record_secondary_review(
            emergency=emergency, actor=cab_member, outcome="justified", notes=""
        )

    assert refused.value.message == (
        f"You wrote {release.change.ref}; another CAB member must review its emergency."
    )
    assert (counts(), exception_row(emergency)) == (before, row)


def test_a_cab_member_of_another_service_may_not_review(emergency, other_service):
    elsewhere = factories.UserFactory(username="cid")
    factories.grant(elsewhere, Role.CAB_MEMBER, other_service)
    with pytest.raises(EmergencyForbidden):
        record_secondary_review(emergency=emergency, actor=elsewhere, outcome="justified", notes="")


def test_it_is_recorded_once(emergency, cab_member, other_cab_member):
    record_secondary_review(emergency=emergency, actor=cab_member, outcome="justified", notes="")
    before, row = counts(), exception_row(emergency)

    with pytest.raises(EmergencyConflict) as refused:
        record_secondary_review(
            emergency=emergency, actor=other_cab_member, outcome="not_justified", notes="No."
        )

    assert refused.value.message == "The CAB already reviewed this emergency: Justified."
    assert (counts(), exception_row(emergency)) == (before, row)
