"""CAB fixtures: a release waiting for its CAB stage, meetings, members in and out of scope."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import services
from approvals.emergencies.models import EmergencyException
from approvals.models import ApprovalStage
from approvals.services.escalation import escalate_overdue_stages
from changes.cab.models import CabMeeting
from changes.models import ChangeRecord, Review
from governance.models import Role
from tests import factories


@pytest.fixture
def cab_release(production_release, approver, second_approver):
    """dave's production release with both service approvals in: its CAB stage is open."""
    factories.decide(production_release, approver)
    factories.decide(production_release, second_approver)
    stage = ApprovalStage.objects.get(request__release=production_release, approvers="cab")
    assert stage.status == ApprovalStage.Status.ACTIVE
    return production_release


@pytest.fixture
def cab_stage(cab_release):
    return ApprovalStage.objects.get(request__release=cab_release, approvers="cab")


@pytest.fixture
def second_cab_member(db):
    user = factories.UserFactory(username="cecil", first_name="Cecil")
    factories.grant(user, Role.CAB_MEMBER)
    return user


@pytest.fixture
def billing_cab_member(other_service):
    """Sits on the CAB for billing only: payments work is out of their scope."""
    user = factories.UserFactory(username="bella", first_name="Bella")
    factories.grant(user, Role.CAB_MEMBER, other_service)
    return user


def make_meeting(*members, quorum: int = 1, services=(), starts_in=timedelta(days=1), **extra):
    """A scheduled one-off meeting built directly (its creation service is tested on its own)."""
    start = timezone.now() + starts_in
    meeting = CabMeeting.objects.create(
        title=extra.pop("title", "Weekly CAB"),
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        quorum=quorum,
        **extra,
    )
    meeting.members.set(members)
    meeting.services.set(services)
    return meeting


@pytest.fixture
def meeting(cab_member, second_cab_member):
    return make_meeting(cab_member, second_cab_member, quorum=2)


_refs = itertools.count(1)


def escalate_all() -> int:
    """Run the escalation sweep as if a month had passed: every open stage is overdue."""
    return escalate_overdue_stages(now=timezone.now() + timedelta(days=30))


def work_for(service, requester, approvers, count: int = 1) -> None:
    """`count` items of every kind of the CAB queue on `service`: escalated and CAB approvals,
    a high-risk change, an emergency awaiting review, an overdue PIR and a post-mortem due."""
    production = factories.environment("production")
    now = timezone.now()
    for _ in range(count):
        services.request_approval(
            data=factories.release_input(service, production), actor=requester
        )
    # Only these first stages are open yet: the sweep escalates them and nothing else.
    escalate_all()
    for n in range(count):
        release, _ = services.request_approval(
            data=factories.release_input(service, production), actor=requester
        )
        for person in approvers:
            factories.decide(release, person)
        change = ChangeRecord.objects.create(
            ref=f"CHG-{service.slug}-{next(_refs)}",
            title=f"Rewrite {n + 1}",
            risk="high",
            state="assess",
        )
        change.services.set([service])
        fix = ChangeRecord.objects.create(
            ref=f"EMG-{service.slug}-{next(_refs)}", type="emergency", title="Fix"
        )
        EmergencyException.objects.create(
            change=fix,
            service=service,
            declared_by=requester,
            justification="Outage",
            outage="Checkout failing",
            ends_at=now + timedelta(hours=4),
        )
        _review(change, service, "post_implementation", now - timedelta(days=1), release.pk)
        _review(fix, service, "post_mortem", now + timedelta(days=2), None)


def _review(change, service, kind: str, due, release_id) -> Review:
    trigger = "deployment_failed" if kind == "post_implementation" else "emergency"
    return Review.objects.create(
        kind=kind,
        trigger=trigger,
        change=change,
        service=service,
        release_id=release_id,
        summary=f"Opened for {change.ref}",
        due_at=due,
    )
