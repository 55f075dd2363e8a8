"""The demo's CAB: a weekly meeting with an agenda, an escalated approval, and an emergency with
its exception, controls, deployment and post-mortem due; loaded idempotently by seed_demo."""

from __future__ import annotations

import io
from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from approvals.gate import evaluate_gate
from approvals.models import ApprovalStage, EmergencyException, Release
from changes.models import AgendaItem, CabMeeting, Review


def test_the_demo_cab_has_its_meeting_escalation_and_emergency(db):
    call_command("seed_demo", stdout=io.StringIO())
    counts = (AgendaItem.objects.count(), CabMeeting.objects.count(), Review.objects.count())
    call_command("seed_demo_cab", stdout=io.StringIO())

    assert (AgendaItem.objects.count(), CabMeeting.objects.count(), Review.objects.count()) == (
        counts
    )
    meeting = CabMeeting.objects.order_by("starts_at").first()
    assert meeting.starts_at.astimezone(meeting.zone).strftime("%a %H:%M") == "Tue 14:00"
    assert set(meeting.items.values_list("kind", flat=True)) >= {
        "escalated_approval",
        "emergency_review",
        "post_mortem",
    }
    escalated = ApprovalStage.objects.get(escalated_at__isnull=False)
    assert escalated.request.release.change.ref == "CHG0031337"
    assert "carol" in escalated.eligible_approvers.values_list("username", flat=True)

    emergency = EmergencyException.objects.get(change__ref="CHG0031333")
    assert emergency.in_force_at(timezone.now())
    assert emergency.controls == ["extra_monitoring", "rollback_plan", "post_deploy_verification"]
    hotfix = Release.objects.get(change__ref="CHG0031333")
    assert evaluate_gate(hotfix).status == "approved"
    post_mortem = Review.objects.get(change__ref="CHG0031333", kind="post_mortem")
    deployed = hotfix.deployments.get().created_at
    assert post_mortem.due_at == deployed + timedelta(hours=72)
