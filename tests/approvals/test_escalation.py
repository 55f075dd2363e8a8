"""Chasing open stages: reminders before they are due, the CAB once they are overdue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from approvals import services
from approvals.exceptions import NotEligible, SelfApprovalForbidden
from approvals.gate import build_snapshot
from approvals.models import ApprovalRequest, ApprovalStage, Release
from changes.models import AgendaItem, CabMeeting
from governance.ledger import services as ledger
from governance.models import LedgerEntry, Notification, Policy, Role
from governance.policy.services import publish_policy
from tests import factories
from tests.approvals.test_concurrency import run_together

pytestmark = pytest.mark.django_db


@pytest.fixture
def staging_release(org, service, staging, requester, pipeline_bot) -> Release:
    """A staging release: one stage, one approval, 24 hours' SLA."""
    release, _ = services.request_approval(
        data=factories.release_input(service, staging, triggered_by="dave"), actor=pipeline_bot
    )
    return release


@pytest.fixture
def meeting(db, cab_member) -> CabMeeting:
    """The CAB's next meeting, three days from now, covering every service."""
    starts = timezone.now() + timedelta(days=3)
    meeting = CabMeeting.objects.create(
        title="Weekly CAB", starts_at=starts, ends_at=starts + timedelta(hours=1)
    )
    meeting.members.add(cab_member)
    return meeting


def _stage(release: Release) -> ApprovalStage:
    return ApprovalStage.objects.get(request__release=release, status="active")


def _ledger(kind: str) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(kind=kind).order_by("seq"))


def test_an_opened_stage_is_reminded_halfway_and_escalated_at_its_sla(staging_release):
    stage = _stage(staging_release)

    assert stage.due_at == stage.activated_at + timedelta(hours=24)
    assert stage.remind_at == stage.activated_at + timedelta(hours=12)
    assert stage.escalate_at == stage.due_at
    assert (stage.reminded_at, stage.escalated_at) == (None, None)


def test_a_policy_sets_its_own_reminder_and_escalation_times(org, service, staging, pipeline_bot):
    source = (
        "rules:\n  - id: staging\n    when: 'true'\n    require:\n      stages:\n"
        "        - {key: service, approvers: service_approvers, sla_hours: 24,"
        " remind_hours: 2, escalate_hours: 30}\n"
    )
    publish_policy(policy_obj=Policy.objects.get(slug="default"), source=source, actor=None)
    release, _ = services.request_approval(
        data=factories.release_input(service, staging), actor=pipeline_bot
    )
    stage = _stage(release)

    assert stage.remind_at == stage.activated_at + timedelta(hours=2)
    assert stage.escalate_at == stage.activated_at + timedelta(hours=30)


def test_reminders_go_to_the_approvers_who_have_not_decided_once(
    org, service, production, approver, second_approver, pipeline_bot
):
    release, _ = services.request_approval(
        data=factories.release_input(service, production, triggered_by="dave"), actor=pipeline_bot
    )
    factories.decide(release, approver)
    stage = _stage(release)
    Notification.objects.all().delete()

    reminded = services.remind_due_stages(now=stage.remind_at + timedelta(minutes=1))

    assert reminded == 1
    assert list(Notification.objects.values_list("recipient__username", flat=True)) == ["bob"]
    notice = Notification.objects.get()
    assert notice.subject == (
        f"Reminder: {release} waits for Service approval (1 of 2 approvals, "
        f"due {stage.due_at:%Y-%m-%d %H:%M} UTC)"
    )
    assert notice.url == f"/approvals/releases/{release.pk}/"
    [entry] = _ledger("stage.reminded")
    assert entry.payload == {"stage": "service", "people": ["bob"]}
    assert _stage(release).reminded_at == stage.remind_at + timedelta(minutes=1)
    # A second sweep finds nothing to do.
    assert services.remind_due_stages(now=stage.remind_at + timedelta(hours=1)) == 0
    assert Notification.objects.count() == 1


def test_nothing_is_reminded_before_its_time(staging_release):
    stage = _stage(staging_release)
    before = Notification.objects.count()

    assert services.remind_due_stages(now=stage.remind_at - timedelta(seconds=1)) == 0
    assert Notification.objects.count() == before
    assert _ledger("stage.reminded") == []


def test_an_overdue_stage_goes_to_the_cab_once(staging_release, cab_member, meeting):
    stage = _stage(staging_release)
    now = stage.escalate_at + timedelta(minutes=5)
    Notification.objects.all().delete()

    assert services.escalate_overdue_stages(now=now) == 1

    stage.refresh_from_db()
    assert stage.escalated_at == now
    assert set(stage.eligible_approvers.values_list("username", flat=True)) == {
        "alice",
        "bob",
        "carol",
    }
    [notice] = Notification.objects.all()
    assert notice.recipient == cab_member
    assert notice.subject == (
        f"Escalated to the CAB: Service approval of {staging_release} "
        f"(due {stage.due_at:%Y-%m-%d %H:%M} UTC); on the agenda of {meeting}"
    )
    [item] = AgendaItem.objects.all()
    assert (item.meeting, item.key, item.kind) == (
        meeting,
        f"stage:{stage.pk}",
        "escalated_approval",
    )
    assert item.release_id == staging_release.pk
    [entry] = _ledger("stage.escalated")
    assert entry.payload["cab_members"] == ["carol"]
    assert entry.payload["cab_meeting"] == meeting.pk
    # The gate's answer names the CAB member among those who may approve now, and the
    # snapshot is what a rebuild from the rows gives.
    staging_release.approval.refresh_from_db()
    assert "carol" in staging_release.approval.gate_snapshot["stages"][0]["waiting"]
    assert staging_release.approval.gate_snapshot == build_snapshot(staging_release.approval)
    # Idempotent: a second sweep changes nothing.
    counts = factories.state_counts()
    assert services.escalate_overdue_stages(now=now + timedelta(hours=1)) == 0
    assert factories.state_counts() == counts


def test_a_cab_member_hears_of_many_escalations_in_one_message(
    org, service, staging, pipeline_bot, cab_member, meeting
):
    releases = [
        services.request_approval(
            data=factories.release_input(service, staging), actor=pipeline_bot
        )[0]
        for _ in range(3)
    ]
    later = max(_stage(r).escalate_at for r in releases) + timedelta(minutes=1)
    Notification.objects.all().delete()

    assert services.escalate_overdue_stages(now=later) == 3

    [notice] = Notification.objects.filter(recipient=cab_member)
    assert notice.subject == "Escalated to the CAB: 3 approvals"
    assert notice.url == "/approvals/"
    for release in releases:
        assert f"{settings.SITE_URL}/approvals/releases/{release.pk}/" in notice.body
    assert len(_ledger("stage.escalated")) == 3


def test_a_reminder_is_not_sent_once_escalation_is_due(staging_release):
    stage = _stage(staging_release)

    assert services.remind_due_stages(now=stage.escalate_at + timedelta(minutes=1)) == 0


def test_an_escalated_stage_may_be_decided_by_a_cab_member(staging_release, cab_member):
    stage = _stage(staging_release)
    with pytest.raises(NotEligible):
        factories.decide(staging_release, cab_member)
    assert not ApprovalStage.objects.decidable_by(cab_member).exists()

    services.escalate_overdue_stages(now=stage.escalate_at + timedelta(minutes=1))

    assert list(ApprovalStage.objects.decidable_by(cab_member)) == [stage]
    decision = factories.decide(staging_release, cab_member)
    assert (decision.approver, decision.on_behalf_of) == (cab_member, None)
    assert factories.approval_snapshot(staging_release)["status"] == "approved"


def test_escalation_never_lets_the_requester_decide(org, service, staging, requester, pipeline_bot):
    factories.grant(requester, Role.CAB_MEMBER)
    release, _ = services.request_approval(
        data=factories.release_input(service, staging, triggered_by="dave"), actor=pipeline_bot
    )
    stage = _stage(release)

    services.escalate_overdue_stages(now=stage.escalate_at + timedelta(minutes=1))

    assert requester not in _stage(release).eligible_approvers.all()
    with factories.nothing_changes(release), pytest.raises(SelfApprovalForbidden):
        factories.decide(release, requester)


def test_dual_control_still_holds_for_cab_members_of_an_escalated_stage(
    production_release, approver, cab_member
):
    """carol decides the escalated service stage; she may not then count in the CAB stage."""
    factories.decide(production_release, approver)
    stage = _stage(production_release)
    services.escalate_overdue_stages(now=stage.escalate_at + timedelta(minutes=1))
    production_release.approval.refresh_from_db()
    assert production_release.approval.gate_snapshot == build_snapshot(production_release.approval)
    factories.decide(production_release, cab_member)
    assert _stage(production_release).key == "cab"

    with factories.nothing_changes(production_release), pytest.raises(NotEligible) as refused:
        factories.decide(production_release, cab_member)
    assert "Dual control" in str(refused.value)


def test_re_resolving_approvers_keeps_the_cab_on_an_escalated_stage(staging_release, cab_member):
    stage = _stage(staging_release)
    services.escalate_overdue_stages(now=stage.escalate_at + timedelta(minutes=1))

    services.reresolve_open_stages()

    assert cab_member in _stage(staging_release).eligible_approvers.all()


def test_decided_and_closed_requests_are_not_chased(staging_release, approver, meeting):
    stage = _stage(staging_release)
    factories.decide(staging_release, approver)
    later = stage.escalate_at + timedelta(hours=1)

    assert services.remind_due_stages(now=later) == 0
    assert services.escalate_overdue_stages(now=later) == 0
    assert AgendaItem.objects.count() == 0


def test_without_a_meeting_the_escalation_waits_in_the_cab_queue(staging_release, cab_member):
    stage = _stage(staging_release)

    services.escalate_overdue_stages(now=stage.escalate_at + timedelta(minutes=1))

    assert AgendaItem.objects.count() == 0
    [entry] = _ledger("stage.escalated")
    assert entry.payload["cab_meeting"] is None
    assert "no CAB meeting is scheduled" in Notification.objects.get(recipient=cab_member).body


def test_the_ledger_still_verifies_after_a_sweep(staging_release, meeting):
    stage = _stage(staging_release)
    services.escalate_overdue_stages(now=stage.escalate_at + timedelta(minutes=1))

    assert ledger.verify()[1] is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_escalate_each_stage_once(
    org, service, staging, pipeline_bot, cab_member, meeting
):
    releases = [
        services.request_approval(
            data=factories.release_input(service, staging), actor=pipeline_bot
        )[0]
        for _ in range(6)
    ]
    later = max(_stage(r).escalate_at for r in releases) + timedelta(minutes=1)
    Notification.objects.all().delete()

    results = run_together(
        lambda: services.escalate_overdue_stages(now=later),
        lambda: services.escalate_overdue_stages(now=later),
    )

    assert all(isinstance(done, int) for done in results) and sum(results) == 6
    assert len(_ledger("stage.escalated")) == 6
    assert AgendaItem.objects.filter(meeting=meeting).count() == 6
    # One message per worker's batch at most, never one stage told twice.
    assert 1 <= Notification.objects.filter(recipient=cab_member).count() <= 2
    assert ledger.verify()[1] is None


def test_the_release_page_and_the_cab_members_queue_show_the_escalation(
    client, staging_release, cab_member
):
    stage = _stage(staging_release)
    services.escalate_overdue_stages(now=stage.escalate_at + timedelta(minutes=1))
    client.force_login(cab_member)

    page = client.get(f"/approvals/releases/{staging_release.pk}/").content.decode()
    queue = client.get("/approvals/").content.decode()

    assert "escalated to the CAB" in page
    assert f"/approvals/releases/{staging_release.pk}/" in queue
    assert "escalated to the CAB" in queue


def test_a_snapshot_that_does_not_line_up_is_rebuilt_whole(staging_release, cab_member):
    """A request whose stored snapshot lacks its stages (an import, a repair) is rebuilt."""
    stage = _stage(staging_release)
    ApprovalRequest.objects.filter(pk=staging_release.approval.pk).update(gate_snapshot={})

    services.escalate_overdue_stages(now=stage.escalate_at + timedelta(minutes=1))

    staging_release.approval.refresh_from_db()
    assert staging_release.approval.gate_snapshot == build_snapshot(staging_release.approval)
    assert "carol" in staging_release.approval.gate_snapshot["stages"][0]["waiting"]
