"""A meeting from its agenda to its outcomes: quorum, decisions by the member who records
them, refusals that save nothing, emergencies judged, open items carried to the next meeting."""

from __future__ import annotations

import base64
from datetime import timedelta

import pyotp
import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from approvals.cab.services import prepare_cab_meetings, record_item_outcome
from approvals.cab.tasks import prepare_cab_meetings_task
from approvals.emergencies.models import EmergencyException
from approvals.exceptions import InvalidTransition, SelfApprovalForbidden, StepUpRequired
from approvals.models import ApprovalRequest, ApprovalStage, Decision
from changes.cab import services as cab
from changes.cab.exceptions import MeetingNotOpen, NotAMember, OutcomeNotAllowed, QuorumNotMet
from changes.cab.models import AgendaItem, CabMeeting
from changes.models import ChangeRecord
from governance.models import LedgerEntry, Role
from tests import factories
from tests.approvals.cab.conftest import escalate_all, make_meeting

pytestmark = pytest.mark.django_db


def _open_with_quorum(meeting, *people):
    for person in people:
        cab.mark_attendance(meeting=meeting, actor=person, present=True)
    cab.open_meeting(meeting=meeting, actor=people[0])
    meeting.refresh_from_db()
    return meeting


def _stage_item(meeting, stage, release):
    item, _ = cab.add_agenda_item(
        meeting=meeting,
        key=f"stage:{stage.pk}",
        kind=AgendaItem.Kind.CAB_APPROVAL,
        title="payments-api to production",
        release_id=release.pk,
    )
    return item


def test_approval_outcome_is_a_decision_by_the_member_who_records_it(
    meeting, cab_member, second_cab_member, cab_release, cab_stage
):
    item = _stage_item(meeting, cab_stage, cab_release)
    _open_with_quorum(meeting, cab_member, second_cab_member)

    record_item_outcome(
        item=item, actor=cab_member, outcome="approved", minutes="Backout plan reviewed; go."
    )

    decision = Decision.objects.get(stage=cab_stage)
    assert (decision.approver, decision.verdict, decision.channel) == (cab_member, "approve", "cab")
    assert decision.rationale == "Backout plan reviewed; go."
    item.refresh_from_db()
    assert (item.outcome, item.recorded_by, item.minutes) == (
        "approved",
        cab_member,
        "Backout plan reviewed; go.",
    )
    assert ApprovalStage.objects.get(pk=cab_stage.pk).status == ApprovalStage.Status.APPROVED
    kinds = list(
        LedgerEntry.objects.filter(subject=f"cab_meeting:{meeting.pk}")
        .order_by("seq")
        .values_list("kind", flat=True)
    )
    assert kinds == [
        "cab.agenda_item_added",
        "cab.attendance",
        "cab.attendance",
        "cab.meeting_opened",
        "cab.outcome_recorded",
    ]


def test_rejected_outcome_rejects_the_release(
    meeting, cab_member, second_cab_member, cab_release, cab_stage
):
    item = _stage_item(meeting, cab_stage, cab_release)
    _open_with_quorum(meeting, cab_member, second_cab_member)

    record_item_outcome(item=item, actor=second_cab_member, outcome="rejected", minutes="No.")

    assert cab_release.approval.__class__.objects.get(pk=cab_release.approval.pk).status == (
        ApprovalRequest.Status.REJECTED
    )
    assert Decision.objects.get(stage=cab_stage).approver == second_cab_member


def test_the_releases_requester_cannot_approve_it_in_a_meeting(
    meeting, cab_member, cab_release, cab_stage, requester
):
    # dave requested the release; he also sits on the CAB and this meeting.
    factories.grant(requester, Role.CAB_MEMBER)
    meeting.members.add(requester)
    item = _stage_item(meeting, cab_stage, cab_release)
    _open_with_quorum(meeting, requester, cab_member)
    entries = LedgerEntry.objects.count()

    with pytest.raises(SelfApprovalForbidden):
        record_item_outcome(item=item, actor=requester, outcome="approved", minutes="Mine, fine.")

    item.refresh_from_db()
    assert (item.outcome, item.minutes, item.recorded_by) == ("", "", None)
    assert not Decision.objects.filter(stage=cab_stage).exists()
    assert LedgerEntry.objects.count() == entries


def test_no_outcome_without_the_quorum_present(
    meeting, cab_member, second_cab_member, cab_release, cab_stage
):
    item = _stage_item(meeting, cab_stage, cab_release)
    cab.mark_attendance(meeting=meeting, actor=cab_member, present=True)
    cab.open_meeting(meeting=meeting, actor=cab_member)
    entries = LedgerEntry.objects.count()

    with pytest.raises(QuorumNotMet) as refused:
        record_item_outcome(item=item, actor=cab_member, outcome="approved", minutes="Go.")

    assert refused.value.message == (
        "The quorum is 2 members present and 1 are: no outcome can be recorded until enough "
        "members mark themselves present."
    )
    item.refresh_from_db()
    assert item.outcome == ""
    assert not Decision.objects.filter(stage=cab_stage).exists()
    assert LedgerEntry.objects.count() == entries


def test_no_outcome_before_the_meeting_is_opened(meeting, cab_member, second_cab_member):
    item, _ = cab.add_agenda_item(meeting=meeting, key="manual:1", kind="other", title="Talk")
    cab.mark_attendance(meeting=meeting, actor=cab_member, present=True)
    cab.mark_attendance(meeting=meeting, actor=second_cab_member, present=True)

    with pytest.raises(MeetingNotOpen):
        cab.record_outcome(item=item, actor=cab_member, outcome="reviewed", minutes="Seen.")


def test_outsiders_and_absent_members_record_nothing(
    meeting, cab_member, second_cab_member, outsider, db
):
    third = factories.UserFactory(username="cora")
    factories.grant(third, Role.CAB_MEMBER)
    meeting.members.add(third)
    item, _ = cab.add_agenda_item(meeting=meeting, key="manual:1", kind="other", title="Talk")
    _open_with_quorum(meeting, cab_member, second_cab_member)

    with pytest.raises(NotAMember):
        cab.record_outcome(item=item, actor=outsider, outcome="reviewed", minutes="Seen.")
    with pytest.raises(NotAMember, match="Mark yourself present"):
        cab.record_outcome(item=item, actor=third, outcome="reviewed", minutes="Seen.")
    item.refresh_from_db()
    assert item.outcome == ""


def test_an_outcome_must_fit_the_item_and_have_minutes(meeting, cab_member, second_cab_member):
    item, _ = cab.add_agenda_item(meeting=meeting, key="review:9", kind="post_mortem", title="PM")
    _open_with_quorum(meeting, cab_member, second_cab_member)

    with pytest.raises(OutcomeNotAllowed, match="Minutes are required"):
        cab.record_outcome(item=item, actor=cab_member, outcome="reviewed", minutes="  ")
    with pytest.raises(OutcomeNotAllowed) as refused:
        cab.record_outcome(item=item, actor=cab_member, outcome="approved", minutes="Yes.")
    assert refused.value.message == (
        "A post-mortem takes one of: reviewed, deferred, needs information."
    )
    cab.record_outcome(item=item, actor=cab_member, outcome="reviewed", minutes="Root cause ok.")
    with pytest.raises(OutcomeNotAllowed, match="recorded already"):
        cab.record_outcome(item=item, actor=second_cab_member, outcome="deferred", minutes="x")


def test_deferred_and_open_items_go_to_the_next_meeting_when_it_closes(
    meeting, cab_member, second_cab_member
):
    later = make_meeting(
        cab_member, second_cab_member, quorum=2, starts_in=timedelta(days=8), title="Next CAB"
    )
    deferred, _ = cab.add_agenda_item(meeting=meeting, key="change:1", kind="other", title="A")
    reviewed, _ = cab.add_agenda_item(meeting=meeting, key="change:2", kind="other", title="B")
    cab.add_agenda_item(meeting=meeting, key="change:3", kind="other", title="C")
    _open_with_quorum(meeting, cab_member, second_cab_member)
    cab.record_outcome(item=deferred, actor=cab_member, outcome="deferred", minutes="Need data.")
    cab.record_outcome(item=reviewed, actor=cab_member, outcome="reviewed", minutes="Fine.")

    cab.close_meeting(meeting=meeting, actor=second_cab_member, notes="Short meeting.")

    meeting.refresh_from_db()
    assert (meeting.status, meeting.notes) == (CabMeeting.Status.CLOSED, "Short meeting.")
    carried = list(later.items.order_by("position").values_list("key", "title", "outcome"))
    assert carried == [("change:1", "A", ""), ("change:3", "C", "")]
    assert "(deferred). Minutes then: Need data." in later.items.get(key="change:1").detail
    closed = LedgerEntry.objects.get(kind="cab.meeting_closed")
    assert closed.payload["carried_over"] == ["change:1", "change:3"]
    assert closed.payload["to_meeting"] == later.pk


def test_emergency_review_outcome_goes_through_the_secondary_review(
    meeting, cab_member, second_cab_member, service, requester, production
):
    change = ChangeRecord.objects.create(ref="CHG9000001", type="emergency", title="Hotfix")
    emergency = EmergencyException.objects.create(
        change=change,
        service=service,
        declared_by=requester,
        justification="Payments down",
        outage="Card payments failing",
        ends_at=timezone.now() + timedelta(hours=4),
    )
    item, _ = cab.add_agenda_item(
        meeting=meeting,
        key=f"emergency:{emergency.pk}",
        kind=AgendaItem.Kind.EMERGENCY_REVIEW,
        title="Emergency CHG9000001",
    )
    _open_with_quorum(meeting, cab_member, second_cab_member)

    record_item_outcome(
        item=item, actor=cab_member, outcome="justified", minutes="Outage was real."
    )

    emergency.refresh_from_db()
    assert (emergency.secondary_review, emergency.reviewed_by) == ("justified", cab_member)
    assert emergency.secondary_review_notes == "Outage was real."


def test_a_member_adds_an_item_by_hand(meeting, cab_member, outsider):
    item = cab.add_item_by_hand(
        meeting=meeting, actor=cab_member, title="Storage renewal", detail="", change=None
    )
    assert (item.kind, item.added_by, item.title) == ("other", cab_member, "Storage renewal")
    with pytest.raises(NotAMember):
        cab.add_item_by_hand(meeting=meeting, actor=outsider, title="X", detail="", change=None)


def test_prepare_is_idempotent(meeting, cab_release, cab_stage):
    first = prepare_cab_meetings(now=timezone.now())
    second = prepare_cab_meetings(now=timezone.now())

    assert first["items_added"] == 1
    assert second == {"meetings_created": 0, "items_added": 0}
    assert list(meeting.items.values_list("key", "kind", "release_id")) == [
        (f"stage:{cab_stage.pk}", "cab_approval", cab_release.pk)
    ]


def test_an_escalated_stage_is_decided_in_the_meeting_by_a_member(
    meeting, cab_member, second_cab_member, production_release
):
    escalate_all()
    stage = ApprovalStage.objects.get(request__release=production_release, position=1)
    assert stage.escalated_at is not None
    prepare_cab_meetings(now=timezone.now())
    item = meeting.items.get(key=f"stage:{stage.pk}")
    assert (item.kind, item.release_id) == ("escalated_approval", production_release.pk)
    _open_with_quorum(meeting, cab_member, second_cab_member)

    record_item_outcome(item=item, actor=second_cab_member, outcome="approved", minutes="Late, ok.")

    decision = Decision.objects.get(stage=stage)
    assert (decision.approver, decision.channel) == (second_cab_member, "cab")


def test_an_item_whose_stage_has_closed_cannot_be_approved(
    meeting, cab_member, second_cab_member, cab_release, cab_stage
):
    # The item names the first stage, which both service approvers have completed since.
    first = ApprovalStage.objects.get(request__release=cab_release, position=1)
    item = _stage_item(meeting, first, cab_release)
    _open_with_quorum(meeting, cab_member, second_cab_member)

    with pytest.raises(InvalidTransition, match="no longer open"):
        record_item_outcome(item=item, actor=cab_member, outcome="approved", minutes="Go.")
    assert not Decision.objects.filter(stage=cab_stage).exists()


def test_not_justified_needs_the_actions_and_goes_to_the_emergency(
    meeting, cab_member, second_cab_member, service, requester
):
    change = ChangeRecord.objects.create(ref="CHG9000002", type="emergency", title="Hotfix")
    emergency = EmergencyException.objects.create(
        change=change,
        service=service,
        declared_by=requester,
        justification="Thought it was down",
        outage="Dashboards red",
        ends_at=timezone.now() + timedelta(hours=4),
    )
    item, _ = cab.add_agenda_item(
        meeting=meeting,
        key=f"emergency:{emergency.pk}",
        kind=AgendaItem.Kind.EMERGENCY_REVIEW,
        title="Emergency CHG9000002",
    )
    _open_with_quorum(meeting, cab_member, second_cab_member)

    record_item_outcome(
        item=item,
        actor=cab_member,
        outcome="not_justified",
        minutes="Monitoring fault, no outage. Actions: Dave adds alert runbook by Friday.",
    )

    emergency.refresh_from_db()
    assert emergency.secondary_review == "not_justified"
    item.refresh_from_db()
    assert item.get_outcome_display() == "Not justified (actions set)"


def test_each_item_goes_on_the_next_meeting_covering_its_service_within_a_week(
    cab_member, second_cab_member, service, other_service, cab_release, cab_stage
):
    billing = make_meeting(cab_member, services=[other_service], starts_in=timedelta(hours=2))
    payments = make_meeting(cab_member, services=[service], starts_in=timedelta(days=2))
    later = make_meeting(cab_member, services=[service], starts_in=timedelta(days=5))

    prepare_cab_meetings(now=timezone.now())

    assert not billing.items.exists()
    assert list(payments.items.values_list("key", flat=True)) == [f"stage:{cab_stage.pk}"]
    assert not later.items.exists()


def test_meetings_more_than_a_week_away_get_no_agenda_yet(cab_member, cab_release, cab_stage):
    far = make_meeting(cab_member, starts_in=timedelta(days=9))

    assert prepare_cab_meetings(now=timezone.now())["items_added"] == 0
    assert not far.items.exists()

    prepare_cab_meetings(now=timezone.now() + timedelta(days=3))
    assert far.items.get().key == f"stage:{cab_stage.pk}"


def test_a_stage_asking_for_step_up_needs_the_members_code(
    meeting, cab_member, second_cab_member, cab_release, cab_stage
):
    ApprovalStage.objects.filter(pk=cab_stage.pk).update(step_up=True)
    device = TOTPDevice.objects.create(user=cab_member, name="phone", confirmed=True)
    item = _stage_item(meeting, cab_stage, cab_release)
    _open_with_quorum(meeting, cab_member, second_cab_member)
    entries = LedgerEntry.objects.count()

    with pytest.raises(StepUpRequired):
        record_item_outcome(item=item, actor=cab_member, outcome="approved", minutes="Go.")
    assert LedgerEntry.objects.count() == entries
    item.refresh_from_db()
    assert item.outcome == ""

    code = pyotp.TOTP(base64.b32encode(device.bin_key).decode()).now()
    record_item_outcome(
        item=item, actor=cab_member, outcome="approved", minutes="Go.", step_up_code=code
    )
    assert Decision.objects.get(stage=cab_stage).step_up_method == "totp"


def test_the_beat_task_prepares_meetings_and_agendas(meeting, cab_release, cab_stage):
    assert prepare_cab_meetings_task() == {"meetings_created": 0, "items_added": 1}
    assert meeting.items.get().key == f"stage:{cab_stage.pk}"
