"""A small approval history with exact timestamps, written as rows, whose metrics the tests
compute by hand.

Third quarter of 2026, two services (payments-api of Payments, search of Discovery), one stage
"Service owners" with a 4-hour SLA in every request:

R1  payments-api production, normal, approved by alice after 2 h; deployed, succeeded
R2  payments-api production, normal, approved by alice after 6 h; rolled back
R3  payments-api staging, standard, approved by alice after 0.5 h; succeeded
R4  search production, normal, approved by bob after 30 h; never deployed
R5  search staging, standard, approved by bob after 3 h; deployment failed
R6  search production, normal, approved by bob after 80 h; verification failed
R7  payments-api production, withdrawn after 5 h
R8  payments-api production, expired after 48 h
R9  search production, rejected after 1 h, then asked again by R10
R10 search production, pending since 29 Sep, its stage open and overdue
R11 search staging, pending, expired on 15 Aug with nobody deciding (never decided)
R12 payments-api production, rejected after 2 h, deployed anyway on 5 Sep (unapproved)

Plus an emergency declared on payments-api (10 Aug) and a freeze override confirmed for R1
(1 Sep).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from approvals.models import ApprovalRequest, ApprovalStage, Decision, Deployment, Release
from changes.models import ChangeRecord, Freeze, FreezeOverride
from governance.models import User
from tests import factories
from tests.reporting.test_emergencies import declare

PERIOD = {"start": "2026-07-01", "end": "2026-09-30"}
SLA = timedelta(hours=4)
_numbers = itertools.count(1)


def at(day: str, clock: str = "09:00") -> datetime:
    return datetime.fromisoformat(f"2026-{day}T{clock}").replace(tzinfo=UTC)


@dataclass
class History:
    releases: dict[str, Release]
    alice: User
    bob: User


def release(
    service,
    environment,
    requester,
    *,
    requested: datetime,
    hours: float | None,
    status: str,
    change_type: str = "normal",
    previous: Release | None = None,
    expires: datetime | None = None,
) -> Release:
    """A release with its request closed `hours` after `requested` (None: still pending)."""
    number = next(_numbers)
    change = ChangeRecord.objects.create(
        ref=f"CHG-M{number:04d}", type=change_type, title="Metrics history", author=requester
    )
    made = Release.objects.create(
        service=service,
        environment=environment,
        version=f"1.{number}",
        image=f"registry.example.com/{service.slug}",
        digest=factories.digest(f"metrics-{number}"),
        change=change,
        requested_by=requester,
        created_at=requested,
        previous=previous,
    )
    decided = requested + timedelta(hours=hours) if hours is not None else None
    ApprovalRequest.objects.create(
        release=made,
        status=status,
        requested_at=requested,
        decided_at=decided,
        expires_at=expires or requested + timedelta(days=2),
    )
    return made


def owners_stage(made: Release, *, status: str, completed: datetime | None) -> ApprovalStage:
    """The "Service owners" stage, active from the request, due four hours later."""
    activated = made.approval.requested_at
    return ApprovalStage.objects.create(
        request=made.approval,
        position=1,
        key="owners",
        name="Service owners",
        approvers="service_owners",
        sla_hours=4,
        due_at=activated + SLA,
        status=status,
        activated_at=activated,
        completed_at=completed,
    )


def approve(made: Release, approver: User) -> None:
    """Approved by `approver` the moment the request was decided."""
    approval = made.approval
    stage = owners_stage(made, status=ApprovalStage.Status.APPROVED, completed=approval.decided_at)
    Decision.objects.create(
        request=approval,
        stage=stage,
        approver=approver,
        verdict="approve",
        rationale="Fine.",
        digest=made.digest,
        created_at=approval.decided_at,
    )


def deploy(made: Release, reporter: User, status: str, verification: str = "") -> None:
    Deployment.objects.create(
        release=made,
        status=status,
        reported_by=reporter,
        digest=made.digest,
        verification=verification,
        created_at=made.approval.decided_at + timedelta(hours=1),
    )


def build(production, staging, requester: User, alice: User, bob: User) -> History:
    """Write the history of the module docstring; returns its releases by name."""
    payments = factories.ServiceFactory(
        slug="payments-api", team=factories.TeamFactory(slug="payments", name="Payments")
    )
    search = factories.ServiceFactory(
        slug="search", team=factories.TeamFactory(slug="discovery", name="Discovery")
    )
    approved = ApprovalRequest.Status.APPROVED
    plan = [
        ("R1", payments, production, "07-06", 2, "normal", alice),
        ("R2", payments, production, "07-13", 6, "normal", alice),
        ("R3", payments, staging, "07-20", 0.5, "standard", alice),
        ("R4", search, production, "08-03", 30, "normal", bob),
        ("R5", search, staging, "08-10", 3, "standard", bob),
        ("R6", search, production, "08-17", 80, "normal", bob),
    ]
    made = {}
    for name, service, environment, day, hours, change_type, approver in plan:
        made[name] = release(
            service,
            environment,
            requester,
            requested=at(day),
            hours=hours,
            status=approved,
            change_type=change_type,
        )
        approve(made[name], approver)
    deploy(made["R1"], requester, Deployment.Status.SUCCEEDED)
    deploy(made["R2"], requester, Deployment.Status.ROLLED_BACK)
    deploy(made["R3"], requester, Deployment.Status.SUCCEEDED)
    deploy(made["R5"], requester, Deployment.Status.FAILED)
    deploy(made["R6"], requester, Deployment.Status.SUCCEEDED, verification="failed")
    Status = ApprovalRequest.Status
    made["R7"] = release(
        payments, production, requester, requested=at("09-01"), hours=5, status=Status.WITHDRAWN
    )
    made["R8"] = release(
        payments, production, requester, requested=at("09-02"), hours=48, status=Status.EXPIRED
    )
    made["R9"] = release(
        search, production, requester, requested=at("09-07"), hours=1, status=Status.REJECTED
    )
    made["R10"] = release(
        search,
        production,
        requester,
        requested=at("09-29"),
        hours=None,
        status=Status.PENDING,
        previous=made["R9"],
        expires=datetime(2099, 1, 1, tzinfo=UTC),
    )
    owners_stage(made["R10"], status=ApprovalStage.Status.ACTIVE, completed=None)
    made["R11"] = release(
        search,
        staging,
        requester,
        requested=at("08-13"),
        hours=None,
        status=Status.PENDING,
        expires=at("08-15"),
    )
    made["R12"] = release(
        payments, production, requester, requested=at("09-03"), hours=2, status=Status.REJECTED
    )
    Release.objects.filter(pk=made["R12"].pk).update(unapproved_deployment_at=at("09-05"))
    declare(payments, at("08-10"))
    _override(made["R1"], production, alice, bob)
    return History(made, alice, bob)


def _override(made: Release, production, asked: User, confirmed: User) -> None:
    freeze = Freeze.objects.create(
        name="Quarter close",
        starts_at=at("08-31"),
        ends_at=at("09-03"),
        reason="Quarter close.",
        created_by=asked,
    )
    freeze.environments.add(production)
    FreezeOverride.objects.create(
        freeze=freeze,
        release_id=made.pk,
        release_label=str(made),
        reason="Fix for the close itself.",
        requested_by=asked,
        requested_at=at("09-01", "08:00"),
        confirmed_by=confirmed,
        confirmed_at=at("09-01", "08:30"),
        expires_at=at("09-02"),
    )
