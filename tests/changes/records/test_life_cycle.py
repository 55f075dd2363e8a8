"""A change record's life cycle: its releases move it, people move it by hand, the ledger keeps
every step, and nothing moves it backwards except a new release waiting for approval."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import services
from changes.records.exceptions import ChangeConflict, ChangeForbidden, InvalidChange
from changes.records.models import ChangeRecord
from changes.records.services import ChangeInput, move_change, open_change, update_change
from governance.models import LedgerEntry
from tests import factories

pytestmark = pytest.mark.django_db


def approve_fully(release, *people):
    for person in people:
        factories.decide(release, person)


def moves(change: ChangeRecord) -> list[tuple[str, str]]:
    entries = LedgerEntry.objects.filter(subject=f"change:{change.pk}", kind="change.state_changed")
    return [(e.payload["from"], e.payload["to"]) for e in entries.order_by("seq")]


def deploy(release, actor, status="succeeded"):
    services.record_deployment(release=release, actor=actor, status=status)


def test_a_release_waiting_for_approval_puts_its_new_change_in_authorise(production_release):
    change = ChangeRecord.objects.get(pk=production_release.change_id)

    assert change.state == "authorise"
    assert list(change.services.values_list("slug", flat=True)) == ["payments-api"]
    assert moves(change) == [("new", "authorise")]


def test_approval_schedules_the_change_and_deployments_take_it_to_implement_then_review(
    org, service, staging, production, pipeline_bot, approver, second_approver, cab_member
):
    ref = "CHG7000001"
    to_staging, _ = services.request_approval(
        data=factories.release_input(service, staging, change_ref=ref), actor=pipeline_bot
    )
    to_production, _ = services.request_approval(
        data=factories.release_input(service, production, change_ref=ref), actor=pipeline_bot
    )
    change = ChangeRecord.objects.get(ref=ref)
    assert change.state == "authorise"

    approve_fully(to_staging, approver)
    assert ChangeRecord.objects.get(ref=ref).state == "authorise"  # production still waits
    approve_fully(to_production, approver, second_approver, cab_member)
    assert ChangeRecord.objects.get(ref=ref).state == "scheduled"

    deploy(to_staging, pipeline_bot)
    assert ChangeRecord.objects.get(ref=ref).state == "implement"
    deploy(to_production, pipeline_bot)
    assert ChangeRecord.objects.get(ref=ref).state == "review"

    assert moves(change) == [
        ("new", "authorise"),
        ("authorise", "scheduled"),
        ("scheduled", "implement"),
        ("implement", "review"),
    ]


def test_a_failed_deployment_does_not_move_the_change(
    production_release, pipeline_bot, approver, second_approver, cab_member
):
    approve_fully(production_release, approver, second_approver, cab_member)

    deploy(production_release, pipeline_bot, status="failed")

    assert ChangeRecord.objects.get(pk=production_release.change_id).state == "scheduled"


def test_a_new_release_waiting_takes_a_scheduled_change_back_to_authorise(
    org, service, staging, pipeline_bot, approver
):
    ref = "CHG7000002"
    first, _ = services.request_approval(
        data=factories.release_input(service, staging, change_ref=ref), actor=pipeline_bot
    )
    approve_fully(first, approver)
    assert ChangeRecord.objects.get(ref=ref).state == "scheduled"

    services.request_approval(
        data=factories.release_input(service, staging, change_ref=ref), actor=pipeline_bot
    )

    assert ChangeRecord.objects.get(ref=ref).state == "authorise"


def test_a_rejected_release_leaves_the_change_for_a_person_to_decide(production_release, approver):
    factories.decide(production_release, approver, verdict="reject", rationale="Not now.")

    change = ChangeRecord.objects.get(pk=production_release.change_id)
    assert change.state == "authorise"
    assert moves(change) == [("new", "authorise")]


def test_an_ended_change_is_never_moved_by_its_releases(
    production_release, requester, approver, second_approver, cab_member
):
    change = ChangeRecord.objects.get(pk=production_release.change_id)
    move_change(change=change, to="cancelled", actor=requester, reason="Postponed.")

    approve_fully(production_release, approver, second_approver, cab_member)

    assert ChangeRecord.objects.get(pk=change.pk).state == "cancelled"


def test_a_change_mirrored_from_servicenow_is_not_moved_by_its_releases(
    org, service, staging, pipeline_bot, approver
):
    mirrored = ChangeRecord.objects.create(
        ref="CHG0030001", title="From ServiceNow", source="servicenow", state="scheduled"
    )
    release, _ = services.request_approval(
        data=factories.release_input(service, staging, change_ref=mirrored.ref), actor=pipeline_bot
    )

    approve_fully(release, approver)

    assert ChangeRecord.objects.get(pk=mirrored.pk).state == "scheduled"
    assert moves(mirrored) == []


# --- By hand ---------------------------------------------------------------------------------


def new_change(actor, service, **fields) -> ChangeRecord:
    return open_change(
        data=ChangeInput(title="Rotate the payments database", services=[service], **fields),
        actor=actor,
    )


def test_a_release_manager_opens_a_change_with_a_generated_ref(org, requester, service):
    start = timezone.now() + timedelta(days=3)
    change = new_change(
        requester,
        service,
        risk="high",
        planned_start=start,
        planned_end=start + timedelta(hours=2),
        time_zone="Europe/Paris",
        backout_plan="Restore last night's snapshot.",
    )

    assert (change.ref, change.state, change.author, change.risk) == (
        "SO-CHG-000001",
        "new",
        requester,
        "high",
    )
    assert new_change(requester, service).ref == "SO-CHG-000002"
    entry = LedgerEntry.objects.filter(subject=f"change:{change.pk}").get()
    assert entry.kind == "change.opened"
    assert entry.payload["services"] == ["payments-api"]
    assert entry.payload["backout_plan"] == "Restore last night's snapshot."


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"planned_start": timezone.now()}, "planned_end"),
        (
            {"planned_start": timezone.now(), "planned_end": timezone.now() - timedelta(hours=1)},
            "planned_end",
        ),
    ],
)
def test_a_change_that_cannot_be_saved_is_refused_whole(org, requester, service, fields, field):
    before = (ChangeRecord.objects.count(), LedgerEntry.objects.count())

    with pytest.raises(InvalidChange) as refused:
        new_change(requester, service, **fields)

    assert field in refused.value.fields
    assert (ChangeRecord.objects.count(), LedgerEntry.objects.count()) == before


def test_only_release_managers_of_every_service_and_administrators_write_changes(
    org, requester, approver, administrator, service, other_service
):
    before = LedgerEntry.objects.count()
    with pytest.raises(ChangeForbidden):
        new_change(approver, service)
    with pytest.raises(ChangeForbidden):  # dave manages payments-api, not the other service
        open_change(
            data=ChangeInput(title="Both", services=[service, other_service]), actor=requester
        )
    assert (ChangeRecord.objects.count(), LedgerEntry.objects.count()) == (0, before)

    assert new_change(administrator, other_service).author == administrator


def test_an_edit_is_ledgered_with_what_changed(org, requester, service):
    change = new_change(requester, service)

    update_change(
        change=change,
        data=ChangeInput(title="Rotate the payments database", services=[service], risk="high"),
        actor=requester,
    )

    entry = LedgerEntry.objects.filter(subject=f"change:{change.pk}", kind="change.updated").get()
    assert entry.payload["changed"] == {"risk": {"from": "moderate", "to": "high"}}
    assert ChangeRecord.objects.get(pk=change.pk).risk == "high"


def test_people_move_a_change_only_along_its_life_cycle(org, requester, service):
    change = new_change(requester, service)

    with pytest.raises(ChangeConflict, match="can move to assess, cancelled by hand"):
        move_change(change=change, to="closed", actor=requester, reason="Done?")
    move_change(change=change, to="assess", actor=requester, reason="Ready for assessment.")
    move_change(change=change, to="scheduled", actor=requester, reason="No release needed.")
    move_change(change=change, to="implement", actor=requester, reason="Started.")
    move_change(change=change, to="review", actor=requester, reason="Done.")
    with pytest.raises(InvalidChange, match="close code"):
        move_change(change=change, to="closed", actor=requester, reason="Went well.")
    move_change(
        change=change, to="closed", actor=requester, reason="Went well.", close_code="successful"
    )

    change.refresh_from_db()
    assert (change.state, change.close_code, change.close_notes) == (
        "closed",
        "successful",
        "Went well.",
    )
    assert change.closed_at is not None
    with pytest.raises(ChangeConflict):
        update_change(
            change=change, data=ChangeInput(title="Reopened", services=[service]), actor=requester
        )


def test_a_move_needs_a_reason_and_the_authority(org, requester, approver, service):
    change = new_change(requester, service)
    before = LedgerEntry.objects.count()

    with pytest.raises(InvalidChange):
        move_change(change=change, to="assess", actor=requester, reason="  ")
    with pytest.raises(ChangeForbidden):
        move_change(change=change, to="cancelled", actor=approver, reason="I don't like it.")

    assert ChangeRecord.objects.get(pk=change.pk).state == "new"
    assert LedgerEntry.objects.count() == before


def test_a_mirrored_change_is_changed_in_its_itsm_tool_only(org, requester, service):
    mirrored = ChangeRecord.objects.create(ref="CHG0030002", title="x", source="servicenow")
    mirrored.services.add(service)

    with pytest.raises(ChangeConflict, match="mirrored from ServiceNow"):
        move_change(change=mirrored, to="cancelled", actor=requester, reason="No.")
