"""Give the demo organisation four months of approval history, so its metrics pages have
something to show: releases to every environment with their requests, stages, decisions and
deployments, drawn from a fixed seed, then the rollups refreshed.

The rows are written directly, with the timestamps of the past they describe (the services
would stamp them now). Idempotent: a second run finds its releases and adds none.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

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


@dataclass
class Cast:
    """Who and where the history happens: the demo's people and environments."""

    rng: random.Random
    requester: User
    approvers: list[User]
    cab: list[User]
    environments: dict[str, Environment]


def _holders(role: str) -> list[User]:
    grants = RoleAssignment.objects.filter(role=role).values("user")
    return list(User.objects.filter(pk__in=grants).order_by("username"))


class Command(BaseCommand):
    help = "Four months of approval history for the demo organisation's metrics pages."

    def handle(self, *args, **options) -> None:
        if ChangeRecord.objects.filter(ref__startswith=PREFIX).exists():
            self.stdout.write("Demo metrics history: already present.")
            return
        cast = Cast(
            rng=random.Random(20260701),
            requester=User.objects.get(username="ci-bot"),
            approvers=_holders(Role.APPROVER),
            cab=_holders(Role.CAB_MEMBER),
            environments={env.slug: env for env in Environment.objects.all()},
        )
        services = list(Service.objects.order_by("slug"))
        now = timezone.now()
        with transaction.atomic():
            for number in range(RELEASES):
                # Spread evenly over the period, at a random hour of the working day.
                ago = timedelta(days=DAYS * (1 - number / RELEASES), hours=cast.rng.random() * 8)
                _release(cast, number, now - ago, cast.rng.choice(services))
        rebuilt = refresh_metrics()
        self.stdout.write(f"Demo metrics history: {RELEASES} releases, {rebuilt} in the rollups.")


def _release(cast: Cast, number: int, requested: datetime, service: Service) -> None:
    """One release, its request through every stage to an outcome, and its deployment."""
    rng = cast.rng
    environment = rng.choices(["dev", "staging", "production"], weights=[3, 3, 4])[0]
    change = ChangeRecord.objects.create(
        ref=f"{PREFIX}{number:04d}",
        type=rng.choices(["standard", "normal", "emergency"], weights=[3, 6, 1])[0],
        title=f"{service.name} update",
        author=cast.requester,
    )
    release = Release.objects.create(
        service=service,
        environment=cast.environments[environment],
        version=f"3.{number // 20}.{number % 20}",
        image=f"registry.example.com/{service.slug}",
        digest="sha256:" + hashlib.sha256(f"demo-metrics-{number}".encode()).hexdigest(),
        change=change,
        requested_by=cast.requester,
        created_at=requested,
    )
    outcome = rng.choices(["approved", "rejected", "withdrawn", "expired"], weights=[82, 6, 7, 5])[
        0
    ]
    approval = ApprovalRequest.objects.create(
        release=release, requested_at=requested, expires_at=requested + timedelta(days=7)
    )
    decided = _stages(cast, approval, STAGES[environment], outcome, service.tier == 1)
    ApprovalRequest.objects.filter(pk=approval.pk).update(status=outcome, decided_at=decided)
    if outcome == "approved":
        _deploy(cast, release, decided, rushed=decided - requested < timedelta(hours=1))
    elif rng.random() < 0.1:
        unapproved = decided + timedelta(hours=2)
        Release.objects.filter(pk=release.pk).update(unapproved_deployment_at=unapproved)


def _stages(cast: Cast, approval, plan: list, outcome: str, busy: bool) -> datetime:
    """The plan's stages one after the other; returns when the last one closed."""
    clock = approval.requested_at
    for position, (key, name, sla, typical) in enumerate(plan, start=1):
        # Tier-1 services wait longer: their owners are busier.
        wait = timedelta(hours=cast.rng.expovariate(1 / (typical * (1.8 if busy else 1))))
        status = "approved"
        if position == len(plan) and outcome != "approved":
            status = "rejected" if outcome == "rejected" else "cancelled"
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
        clock += wait
        if status != "cancelled":
            Decision.objects.create(
                request=approval,
                stage=stage,
                approver=cast.rng.choice(cast.cab if key == "cab" else cast.approvers),
                verdict="approve" if status == "approved" else "reject",
                rationale="Reviewed.",
                digest=approval.release.digest,
                created_at=clock,
            )
    return clock


def _deploy(cast: Cast, release: Release, approved: datetime, *, rushed: bool) -> None:
    """Deployed half an hour after approval; rushed approvals fail a little more often."""
    status = "succeeded"
    if cast.rng.random() < (0.25 if rushed else 0.08):
        status = cast.rng.choice(["failed", "rolled_back"])
    Deployment.objects.create(
        release=release,
        status=status,
        reported_by=cast.requester,
        digest=release.digest,
        created_at=approved + timedelta(minutes=30),
    )
