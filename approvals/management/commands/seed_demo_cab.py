"""The demo's CAB at work (idempotent): a weekly meeting with its agenda, an overdue approval
already escalated to the CAB, and an emergency with its exception, compensating controls, a
deployment and the post-mortem due. Run after seed_demo_releases (called from seed_demo)."""

from __future__ import annotations

from datetime import time, timedelta

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from approvals import services
from approvals.cab.services import prepare_cab_meetings
from approvals.emergencies.services import declare_emergency
from approvals.models import ApprovalStage, EmergencyException, Release
from changes.cab.models import CabSchedule
from changes.cab.recurrence import Rule
from changes.cab.services import ScheduleInput, save_schedule
from governance.models import User

HOTFIX = "CHG0031333"  # seed_demo_releases' emergency hotfix of payments-api
OVERDUE = "CHG0031337"  # its pending "Instant payouts" release to production


class Command(BaseCommand):
    help = "Give the demo CAB a weekly meeting, an escalated approval and an emergency."

    def handle(self, *args, **options) -> None:
        now = timezone.now()
        self._schedule()
        self._emergency()
        self._escalation(now)
        counts = prepare_cab_meetings(now=now)
        self.stdout.write(f"Demo CAB: {counts}.")

    def _schedule(self) -> None:
        if CabSchedule.objects.filter(name="Weekly CAB").exists():
            return
        save_schedule(
            data=ScheduleInput(
                name="Weekly CAB",
                rule=Rule("weekly", ("TU",)),
                first_day=timezone.localdate(),
                local_time=time(14, 0),
                time_zone="Europe/London",
                duration_minutes=60,
                quorum=2,
                members=list(User.objects.filter(username__in=["carol", "trent"])),
            ),
            actor=User.objects.get(username="admin"),
        )

    def _emergency(self) -> None:
        release = Release.objects.select_related("service", "change").get(change__ref=HOTFIX)
        if EmergencyException.objects.filter(change=release.change).exists():
            return
        declare_emergency(
            actor=User.objects.get(username="dave"),
            service=release.service,
            title=release.change.title,
            justification="Refunds are paid twice when the acquirer retries; every retry costs "
            "money and the fix is one guarded line.",
            outage="Duplicate refunds on retry since 09:10 UTC (INC0099812 at the acquirer).",
            controls=["extra_monitoring", "rollback_plan", "post_deploy_verification"],
            control_notes="Payments lead on the bridge during the rollout.",
            change=release.change,
        )
        # Deployed inside its exception: the post-mortem opens, due 72 hours later.
        bot = User.objects.get(username="ci-bot")
        services.record_deployment(release=release, actor=bot, status="succeeded")

    def _escalation(self, now) -> None:
        """The Instant payouts approval was asked ten hours ago and nobody decided it: the
        sweep beat runs every five minutes escalates its overdue stage to the CAB."""
        stage = ApprovalStage.objects.filter(
            request__release__change__ref=OVERDUE, status=ApprovalStage.Status.ACTIVE
        ).first()
        if stage is None or stage.escalated_at is not None:
            return
        opened = now - timedelta(hours=10)
        with transaction.atomic():
            ApprovalStage.objects.filter(pk=stage.pk).update(
                activated_at=opened,
                due_at=opened + timedelta(hours=stage.sla_hours or 8),
                remind_at=opened + timedelta(hours=(stage.sla_hours or 8) / 2),
                escalate_at=opened + timedelta(hours=stage.sla_hours or 8),
                reminded_at=opened + timedelta(hours=(stage.sla_hours or 8) / 2),
            )
        services.escalate_overdue_stages(now=now)
