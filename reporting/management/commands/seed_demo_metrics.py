"""Give the demo organisation four months of approval history, so its metrics pages have
something to show: releases to every environment with their requests, stages, decisions and
deployments, drawn from a fixed seed, then the rollups refreshed.

The rows are written directly, with the timestamps of the past they describe (the services
would stamp them now). Idempotent: a second run finds its releases and adds none.
"""

from __future__ import annotations

import hashlib
import random
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalRequest, ApprovalStage, Decision, Deployment, Release
from changes.models import ChangeRecord
from governance.models import Environment, Role, RoleAssignment, Service, User
from reporting.metrics.rollups import refresh_metrics

RELEASES = 360
DAYS = 120
PREFIX = "DEMO-M"
# (stage key, name, SLA hours, typical wait in hours) per environment.
STAGES = {
    "dev": [("owners", "Service owners", 8, 1.5)],
    "staging": [("owners", "Service owners", 8, 3)],
    "production": [("owners", "Service owners", 8, 5), ("cab", "Change Advisory Board", 24, 14)],
}


class Command(BaseCommand):
    help = "Four months of approval history for the demo organisation's metrics pages."

    def handle(self, *args, **options) -> None:
        if ChangeRecord.objects.filter(ref__startswith=PREFIX).exists():
            self.stdout.write("Demo metrics history: already present.")
            return
        rng = random.Random(20260701)
        approvers = list(
            User.objects.filter(
                pk__in=RoleAssignment.objects.filter(role=Role.APPROVER).values("user")
            )
        )
        cab = list(
            User.objects.filter(
                pk__in=RoleAssignment.objects.filter(role=Role.CAB_MEMBER).values("user")
            )
        )
        requester = User.objects.get(username="ci-bot")
        services = list(Service.objects.order_by("slug"))
        environments = {env.slug: env for env in Environment.objects.all()}
        now = timezone.now()
        with transaction.atomic():
            for number in range(RELEASES):
                requested = now - timedelta(
                    days=DAYS * (1 - number / RELEASES), hours=rng.random() * 8
                )
                _release(
                    rng,
                    number,
                    requested,
                    rng.choice(services),
                    environments,
                    requester,
                    approvers,
                    cab,
                )
        rebuilt = refresh_metrics()
        self.stdout.write(
            f"Demo metrics history: {RELEASES} releases; {rebuilt} rebuilt in the rollups."
        )


def _release(rng, number, requested, service, environments, requester, approvers, cab) -> None:
    env_slug = rng.choices(["dev", "staging", "production"], weights=[3, 3, 4])[0]
    change = ChangeRecord.objects.create(
        ref=f"{PREFIX}{number:04d}",
        type=rng.choices(["standard", "normal", "emergency"], weights=[3, 6, 1])[0],
        title=f"{service.name} update",
        author=requester,
    )
    release = Release.objects.create(
        service=service,
        environment=environments[env_slug],
        version=f"3.{number // 20}.{number % 20}",
        image=f"registry.example.com/{service.slug}",
        digest="sha256:" + hashlib.sha256(f"demo-metrics-{number}".encode()).hexdigest(),
        change=change,
        requested_by=requester,
        created_at=requested,
    )
    outcome = rng.choices(["approved", "rejected", "withdrawn", "expired"], weights=[82, 6, 7, 5])[
        0
    ]
    # Tier-1 services wait longer: their owners are busier.
    slowness = 1.8 if service.tier == 1 else 1.0
    clock = requested
    approval = ApprovalRequest.objects.create(
        release=release, requested_at=requested, expires_at=requested + timedelta(days=7)
    )
    plan = STAGES[env_slug]
    for position, (key, name, sla, typical) in enumerate(plan, start=1):
        wait = timedelta(hours=rng.expovariate(1 / (typical * slowness)))
        last = position == len(plan)
        status = (
            "approved"
            if outcome == "approved" or not last
            else ("rejected" if outcome == "rejected" else "cancelled")
        )
        stage = ApprovalStage.objects.create(
            request=approval,
            position=position,
            key=key,
            name=name,
            approvers=key,
            sla_hours=sla,
            due_at=clock + timedelta(hours=sla),
            status=status,
            activated_at=clock,
            completed_at=clock + wait,
        )
        if status in ("approved", "rejected"):
            who = rng.choice(cab if key == "cab" else approvers)
            Decision.objects.create(
                request=approval,
                stage=stage,
                approver=who,
                verdict="approve" if status == "approved" else "reject",
                rationale="Reviewed.",
                digest=release.digest,
                created_at=clock + wait,
            )
        clock += wait
    ApprovalRequest.objects.filter(pk=approval.pk).update(status=outcome, decided_at=clock)
    if outcome == "approved":
        # Rushed approvals fail a little more often in this demo.
        risk = 0.25 if clock - requested < timedelta(hours=1) else 0.08
        status = "succeeded"
        if rng.random() < risk:
            status = rng.choice(["failed", "rolled_back"])
        Deployment.objects.create(
            release=release,
            status=status,
            reported_by=requester,
            digest=release.digest,
            created_at=clock + timedelta(minutes=30),
        )
    elif rng.random() < 0.1:
        Release.objects.filter(pk=release.pk).update(
            unapproved_deployment_at=clock + timedelta(hours=2)
        )
